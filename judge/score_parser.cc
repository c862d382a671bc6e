// score_parser.cc: JSON-object search (string-aware brace matching), pattern fallback and linear scaling.
#include "judge/score_parser.h"

#include <re2/re2.h>

#include <cmath>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "nlohmann/json.hpp"

namespace rlj {
namespace {

// How many '{' positions are tried before giving up on finding a JSON object (bounds the work on long prose).
constexpr int kMaxJsonCandidates = 64;

// The end (one past the matching '}') of the balanced object starting at text[begin] == '{', skipping braces
// inside JSON strings; npos when the braces never balance.
size_t MatchingBrace(std::string_view text, size_t begin) {
  int depth = 0;
  bool in_string = false;
  for (size_t i = begin; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') {
        ++i;  // skip the escaped character
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '{') {
      ++depth;
    } else if (c == '}') {
      if (--depth == 0) return i + 1;
    }
  }
  return std::string_view::npos;
}

std::optional<double> NumberFromJson(const nlohmann::json& value) {
  if (value.is_number()) return value.get<double>();
  if (value.is_string()) {
    double number = 0;
    if (absl::SimpleAtod(absl::StripAsciiWhitespace(value.get_ref<const std::string&>()), &number)) return number;
  }
  return std::nullopt;
}

std::string FormatNumber(double value) { return absl::StrCat(value); }

}  // namespace

std::optional<nlohmann::json> FirstJsonObject(std::string_view text) {
  int candidates = 0;
  for (size_t begin = text.find('{'); begin != std::string_view::npos && candidates < kMaxJsonCandidates;
       begin = text.find('{', begin + 1), ++candidates) {
    const size_t end = MatchingBrace(text, begin);
    if (end == std::string_view::npos) continue;
    nlohmann::json parsed = nlohmann::json::parse(text.substr(begin, end - begin), nullptr, /*allow_exceptions=*/false);
    if (parsed.is_object()) return parsed;
  }
  return std::nullopt;
}

std::string TruncateUtf8(std::string_view text, size_t max_bytes) {
  if (text.size() <= max_bytes) return std::string(text);
  size_t end = max_bytes;
  // Step back over continuation bytes (10xxxxxx) so the cut lands before a character's first byte.
  while (end > 0 && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) --end;
  return std::string(text.substr(0, end));
}

ScoreParser::ScoreParser(std::string score_key, std::unique_ptr<re2::RE2> pattern)
    : score_key_(std::move(score_key)), pattern_(std::move(pattern)) {}
ScoreParser::ScoreParser(ScoreParser&&) noexcept = default;
ScoreParser& ScoreParser::operator=(ScoreParser&&) noexcept = default;
ScoreParser::~ScoreParser() = default;

absl::StatusOr<ScoreParser> ScoreParser::Create(std::string score_key, const std::string& score_pattern) {
  std::unique_ptr<re2::RE2> pattern;
  if (!score_pattern.empty()) {
    re2::RE2::Options options;
    options.set_log_errors(false);
    pattern = std::make_unique<re2::RE2>(score_pattern, options);
    if (!pattern->ok()) {
      return absl::InvalidArgumentError(absl::StrCat("score_pattern '", score_pattern, "': ", pattern->error()));
    }
    if (pattern->NumberOfCapturingGroups() < 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("score_pattern '", score_pattern, "' has no capture group for the score"));
    }
  }
  if (score_key.empty() && pattern == nullptr) {
    return absl::InvalidArgumentError("score_key and score_pattern are both empty: nothing to read a score with");
  }
  return ScoreParser(std::move(score_key), std::move(pattern));
}

ParsedScore ScoreParser::Parse(std::string_view answer) const {
  ParsedScore parsed;
  if (std::optional<nlohmann::json> object = FirstJsonObject(answer)) {
    if (!score_key_.empty()) {
      if (auto it = object->find(score_key_); it != object->end()) {
        if (std::optional<double> score = NumberFromJson(*it)) {
          parsed.score = score;
          parsed.found_by = "json";
        }
      }
    }
    for (const char* key : {"rationale", "reason", "explanation"}) {
      auto it = object->find(key);
      if (it != object->end() && it->is_string() && !it->get_ref<const std::string&>().empty()) {
        parsed.rationale = TruncateUtf8(it->get_ref<const std::string&>(), kMaxRationaleBytes);
        break;
      }
    }
  }
  if (!parsed.score && pattern_ != nullptr) {
    std::string capture;
    double score = 0;
    if (re2::RE2::PartialMatch(re2::StringPiece(answer.data(), answer.size()), *pattern_, &capture) &&
        absl::SimpleAtod(absl::StripAsciiWhitespace(capture), &score)) {
      parsed.score = score;
      parsed.found_by = "pattern";
    }
  }
  if (parsed.rationale.empty()) parsed.rationale = TruncateUtf8(answer, kMaxRationaleBytes);
  return parsed;
}

std::string ScoreParser::Describe() const {
  std::string description;
  if (!score_key_.empty()) description = absl::StrCat("a JSON object with key '", score_key_, "'");
  if (pattern_ != nullptr) {
    absl::StrAppend(&description, description.empty() ? "" : " or ", "the pattern '", pattern_->pattern(), "'");
  }
  return description;
}

absl::StatusOr<double> ScaleScore(double score, const ScoreScale& scale) {
  if (!(scale.score_max > scale.score_min)) {
    return absl::InvalidArgumentError(absl::StrCat("score scale [", FormatNumber(scale.score_min), ", ",
                                                   FormatNumber(scale.score_max), "] is empty"));
  }
  if (!std::isfinite(score) || score < scale.score_min || score > scale.score_max) {
    return absl::OutOfRangeError(absl::StrCat("score ", FormatNumber(score), " is outside the scale [",
                                              FormatNumber(scale.score_min), ", ", FormatNumber(scale.score_max), "]"));
  }
  const double fraction = (score - scale.score_min) / (scale.score_max - scale.score_min);
  return scale.reward_min + fraction * (scale.reward_max - scale.reward_min);
}

}  // namespace rlj
