// canary_set.h: canaries, samples whose verdict is known in advance (quality.canary_path, JSONL: {"id",
// "prompt", "completion", "reference", "expected_reward"} per line), which the judge mixes into the batches
// it scores to measure its own accuracy.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace rlj {

struct Canary {
  std::string id;
  std::string prompt;
  std::string completion;
  std::string reference;  // may be empty
  double expected_reward = 0;
};

// Every line or an error naming path:line (invalid JSON, a missing or empty id or prompt, a missing completion, a
// non-numeric expected_reward, a duplicate id). Blank lines are skipped; an empty file is an error.
absl::StatusOr<std::vector<Canary>> LoadCanaries(const std::string& path);

}  // namespace rlj
