// rubric_scorer.h: rubric mode, shared by the chat teachers: the rubric rendered into a question, and the
// teacher's chat answer read into a verdict (score parsed, checked against the scale, mapped to a reward).
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "judge/chat_teacher.h"
#include "judge/judge_backend.h"
#include "judge/score_parser.h"

namespace rlj {

class RubricScorer {
 public:
  // `section`: the config path for messages ("judge.openai").
  static absl::StatusOr<RubricScorer> Create(const std::string& section, std::string rubric, std::string system_prompt,
                                             const std::string& score_key, const std::string& score_pattern,
                                             ScoreScale scale);

  ChatQuestion Question(const v1::Sample& sample) const;

  // Fills judgement->verdict (reward and components{"score"}, or the error), its rationale, tokens, cost, cache
  // hit and latency, and judgement->raw_response. True when the verdict succeeded.
  bool Read(const ChatAnswer& answer, Judgement* judgement) const;

  // A description of the scale and parsing for cache identities.
  std::string Identity() const;

 private:
  RubricScorer(std::string rubric, std::string system_prompt, ScoreParser parser, ScoreScale scale);
  std::string rubric_;
  std::string system_prompt_;
  ScoreParser parser_;
  ScoreScale scale_;
  std::string identity_;
};

}  // namespace rlj
