// stop_matcher.cc: stop ids by table, stop strings by searching the decoded completion.
#include "model/stop_matcher.h"

#include <algorithm>

#include "common/status.h"
#include "common/tokenizer/tokenizer.h"

namespace rlj {

StopMatcher::StopMatcher(const Tokenizer& tokenizer, int64_t vocab, std::span<const int32_t> stop_ids,
                         std::vector<std::string> stop_strings)
    : tokenizer_(tokenizer), is_stop_id_(static_cast<size_t>(vocab), false), stop_strings_(std::move(stop_strings)) {
  const auto mark = [&](int32_t id) {
    if (id >= 0 && id < vocab) is_stop_id_[static_cast<size_t>(id)] = true;
  };
  for (const int32_t id : tokenizer.stop_ids()) mark(id);  // <eos>, <|eot_id|>, ...
  for (const int32_t id : stop_ids) mark(id);
}

absl::StatusOr<std::optional<CompletionEnd>> StopMatcher::Check(std::span<const int32_t> tokens) const {
  if (tokens.empty()) return std::nullopt;
  const int32_t last = tokens.back();
  if (last >= 0 && static_cast<size_t>(last) < is_stop_id_.size() && is_stop_id_[static_cast<size_t>(last)]) {
    CompletionEnd end{FinishReason::kStopToken, "", tokens.size() - 1};
    RLJ_ASSIGN_OR_RETURN(end.text, tokenizer_.Decode(tokens.first(end.text_tokens)));
    return end;
  }
  if (stop_strings_.empty()) return std::nullopt;
  RLJ_ASSIGN_OR_RETURN(std::string text, tokenizer_.Decode(tokens));
  size_t cut = std::string::npos;
  for (const std::string& stop : stop_strings_) cut = std::min(cut, text.find(stop));
  if (cut == std::string::npos) return std::nullopt;
  text.resize(cut);
  RLJ_ASSIGN_OR_RETURN(const size_t kept, TokensBefore(tokens, cut));
  return CompletionEnd{FinishReason::kStopString, std::move(text), kept};
}

absl::StatusOr<CompletionEnd> StopMatcher::AtLength(std::span<const int32_t> tokens) const {
  CompletionEnd end{FinishReason::kLength, "", tokens.size()};
  RLJ_ASSIGN_OR_RETURN(end.text, tokenizer_.Decode(tokens));
  return end;
}

// The tokens that begin before byte `cut` of the decoded text.
absl::StatusOr<size_t> StopMatcher::TokensBefore(std::span<const int32_t> tokens, size_t cut) const {
  size_t kept = tokens.size();
  while (kept > 0) {
    RLJ_ASSIGN_OR_RETURN(const std::string before, tokenizer_.Decode(tokens.first(kept - 1)));
    if (before.size() < cut) break;
    --kept;
  }
  return kept;
}

}  // namespace rlj
