// score_parser.h: reads a teacher's score out of its free-text answer (a JSON object, fenced or inside
// prose, else a regular expression) and maps it from the teacher's scale onto the reward range.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace re2 {
class RE2;
}

namespace rlj {

// The first substring of `text` that parses as a JSON object (bare, fenced or inside prose), trying a bounded
// number of candidates; group ranking reads its rankings with it too.
std::optional<nlohmann::json> FirstJsonObject(std::string_view text);

// Rationales taken from a whole answer are cut to this many bytes (on a UTF-8 character boundary).
inline constexpr size_t kMaxRationaleBytes = 2000;

struct ParsedScore {
  std::optional<double> score;  // empty when neither the JSON key nor the pattern found one
  std::string rationale;        // a "rationale"/"reason"/"explanation" JSON field, else the answer (truncated)
  std::string found_by;         // "json", "pattern", or "" when there is no score
};

class ScoreParser {
 public:
  // `score_key`: the JSON field holding the score. `score_pattern`: an RE2 expression whose first capture
  // group is the score; empty = no fallback. A pattern that does not compile or has no group is an error.
  static absl::StatusOr<ScoreParser> Create(std::string score_key, const std::string& score_pattern);
  ScoreParser(ScoreParser&&) noexcept;
  ScoreParser& operator=(ScoreParser&&) noexcept;
  ~ScoreParser();

  // The score is the `score_key` field of the first JSON object in `answer` (bare, in ```json fences, or
  // with text around it), given as a number or a numeric string; else the first capture of the pattern.
  ParsedScore Parse(std::string_view answer) const;

  // A short description of what Parse looks for, for error messages.
  std::string Describe() const;

 private:
  ScoreParser(std::string score_key, std::unique_ptr<re2::RE2> pattern);
  std::string score_key_;
  std::unique_ptr<re2::RE2> pattern_;
};

// The teacher's scale and the reward range it maps onto, linearly.
struct ScoreScale {
  double score_min = 0;
  double score_max = 10;
  double reward_min = 0;
  double reward_max = 1;
};

// reward_min + (score - score_min) / (score_max - score_min) * (reward_max - reward_min). A score outside
// [score_min, score_max] (or not finite) is OutOfRange; score_max <= score_min is InvalidArgument.
absl::StatusOr<double> ScaleScore(double score, const ScoreScale& scale);

// The first `max_bytes` bytes of `text`, shortened further so no UTF-8 character is cut in half.
std::string TruncateUtf8(std::string_view text, size_t max_bytes);

}  // namespace rlj
