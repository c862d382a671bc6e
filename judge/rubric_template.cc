// rubric_template.cc: one left-to-right pass over the rubric, substituting the three known placeholders.
#include "judge/rubric_template.h"

#include <array>
#include <utility>

namespace rlj {

std::string RenderRubric(std::string_view rubric, const RubricFields& fields) {
  const std::array<std::pair<std::string_view, std::string_view>, 3> placeholders = {{
      {"{prompt}", fields.prompt},
      {"{completion}", fields.completion},
      {"{reference}", fields.reference},
  }};
  std::string out;
  out.reserve(rubric.size() + fields.prompt.size() + fields.completion.size() + fields.reference.size());
  size_t i = 0;
  while (i < rubric.size()) {
    bool replaced = false;
    if (rubric[i] == '{') {
      for (const auto& [name, value] : placeholders) {
        if (rubric.substr(i, name.size()) == name) {
          out.append(value);
          i += name.size();
          replaced = true;
          break;
        }
      }
    }
    if (!replaced) out.push_back(rubric[i++]);
  }
  return out;
}

}  // namespace rlj
