// answer_match.cc: trimming, number extraction and the two match rules.
#include "common/answer_match.h"

#include <cmath>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "common/status.h"

namespace rlj {

std::string_view TrimAnswer(std::string_view text) { return AsStd(absl::StripAsciiWhitespace(AsAbsl(text))); }

std::optional<double> LastNumber(std::string_view text) {
  // Scan from the end for the last run of digits (with '.', ',' inside and an optional leading '-').
  size_t end = text.size();
  while (end > 0 && !absl::ascii_isdigit(static_cast<unsigned char>(text[end - 1]))) --end;
  if (end == 0) return std::nullopt;
  size_t begin = end;
  while (begin > 0) {
    const char c = text[begin - 1];
    if (absl::ascii_isdigit(static_cast<unsigned char>(c))) {
      --begin;
    } else if ((c == '.' || c == ',') && begin >= 2 &&
               absl::ascii_isdigit(static_cast<unsigned char>(text[begin - 2]))) {
      --begin;
    } else {
      break;
    }
  }
  const bool negative = begin > 0 && text[begin - 1] == '-';
  std::string digits;
  for (char c : text.substr(begin, end - begin)) {
    if (c != ',') digits.push_back(c);
  }
  double value = 0;
  if (!absl::SimpleAtod(digits, &value)) return std::nullopt;
  return negative ? -value : value;
}

bool ExactMatch(std::string_view completion, std::string_view reference) {
  return TrimAnswer(completion) == TrimAnswer(reference);
}

bool NumericMatch(std::string_view completion, std::string_view reference, double tolerance) {
  const std::optional<double> expected = LastNumber(reference);
  const std::optional<double> got = LastNumber(completion);
  if (!expected || !got) return false;
  return std::fabs(*expected - *got) <= tolerance;
}

}  // namespace rlj
