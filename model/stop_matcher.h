// stop_matcher.h: when a completion being sampled ends and the text it ends with, for the actor, the teacher,
// eval and generate alike: at a stop id (the tokenizer's <eos> and end-of-turn tokens, and any asked for), at
// a stop string (the text is cut where it begins), or at the length limit.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace rlj {

class Tokenizer;

enum class FinishReason {
  kStopToken,   // a stop id was sampled
  kStopString,  // a stop string appeared in the text
  kLength,      // the length limit (or the context) ran out
};

struct CompletionEnd {
  FinishReason finish = FinishReason::kLength;
  std::string text;        // decoded, without the stop id, cut before the stop string
  size_t text_tokens = 0;  // the leading tokens `text` comes from: the stop id and tokens that begin at or after
                           // the stop string's cut are not among them
};

class StopMatcher {
 public:
  // stop_ids: besides the tokenizer's stop_ids(); ids outside 0..vocab-1 are ignored (validate them first).
  StopMatcher(const Tokenizer& tokenizer, int64_t vocab, std::span<const int32_t> stop_ids,
              std::vector<std::string> stop_strings);

  // tokens: the completion so far, the id just sampled last. Its end when that id ends it, else nullopt.
  absl::StatusOr<std::optional<CompletionEnd>> Check(std::span<const int32_t> tokens) const;
  // The end of a completion the length limit cut.
  absl::StatusOr<CompletionEnd> AtLength(std::span<const int32_t> tokens) const;

 private:
  absl::StatusOr<size_t> TokensBefore(std::span<const int32_t> tokens, size_t cut) const;

  const Tokenizer& tokenizer_;
  std::vector<bool> is_stop_id_;
  std::vector<std::string> stop_strings_;
};

}  // namespace rlj
