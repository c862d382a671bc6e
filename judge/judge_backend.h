// judge_backend.h: the interface every judge backend implements (rule, openai, …), and what one verdict
// carries besides the wire Verdict.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "rlj/v1/judge.pb.h"

namespace rlj {

struct Judgement {
  v1::Verdict verdict;        // sent back to the actor; verdict.error set iff the sample failed
  std::string raw_response;   // the teacher's answer as received (reward log only, never sent back)
};

class JudgeBackend {
 public:
  virtual ~JudgeBackend() = default;

  // "rule", "openai", …: stored with every verdict.
  virtual std::string name() const = 0;

  // Exactly one Judgement per sample, in order. A failure on one sample is an error in its verdict, never
  // a reward of 0 and never a failure of the whole batch. Called concurrently from several threads.
  virtual std::vector<Judgement> Score(const std::vector<v1::Sample>& samples) = 0;
};

}  // namespace rlj
