// answer_match.h: verifiable-answer checks shared by the rule judge and evaluation: exact match after
// trimming, and numeric match of the last number in a completion against the reference.
#pragma once

#include <optional>
#include <string_view>

namespace rlj {

// The completion with surrounding whitespace removed.
std::string_view TrimAnswer(std::string_view text);

// The last number in `text` ("-12", "3.5", "1,234" → 1234), if any.
std::optional<double> LastNumber(std::string_view text);

bool ExactMatch(std::string_view completion, std::string_view reference);

// The last number of the completion is within `tolerance` of the reference's number. A reference that is
// not a number never matches.
bool NumericMatch(std::string_view completion, std::string_view reference, double tolerance);

}  // namespace rlj
