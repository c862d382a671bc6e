// split_regex.h: the pre-tokenizer split patterns of tokenizer.json (written for Oniguruma) run on RE2:
// \s and \S mean Unicode White_Space as in Oniguruma (RE2's are ASCII only), and the one lookahead these
// patterns use, \s+(?!\S) ("a run of spaces, leaving the last one to the next word"), is emulated by trimming
// the match. Other lookarounds are refused.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace re2 {
class RE2;
}

namespace rlj {

class SplitRegex {
 public:
  // `pattern` as written in tokenizer.json; errors name `where`.
  static absl::StatusOr<std::unique_ptr<SplitRegex>> Compile(std::string_view pattern, std::string_view where);
  ~SplitRegex();

  // The successive non-overlapping matches in `text`, leftmost-first as a backtracking engine finds them,
  // as [begin, end) byte offsets.
  std::vector<std::pair<size_t, size_t>> Matches(std::string_view text) const;

  // The RE2 pattern this became (for tests and error messages).
  const std::string& translated() const { return translated_; }

 private:
  SplitRegex() = default;
  std::unique_ptr<re2::RE2> regex_;
  std::string translated_;
  bool has_trailing_space_group_ = false;
};

// Oniguruma's literal-string escape for a tokenizer.json "String" split pattern.
std::string QuoteRegex(std::string_view literal);

}  // namespace rlj
