// rubric_template.h: fills a judge rubric's {prompt}, {completion} and {reference} placeholders.
#pragma once

#include <string>
#include <string_view>

namespace rlj {

struct RubricFields {
  std::string_view prompt;
  std::string_view completion;
  std::string_view reference;
};

// Replaces each {prompt}, {completion} and {reference} in `rubric` in one pass: substituted text is never
// scanned again, and every other brace (JSON examples in the rubric) is left as written.
std::string RenderRubric(std::string_view rubric, const RubricFields& fields);

}  // namespace rlj
