// canary_set.cc: the canary JSONL loader.
#include "judge/quality/canary_set.h"

#include <cmath>
#include <fstream>
#include <set>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"

namespace rlj {

absl::StatusOr<std::vector<Canary>> LoadCanaries(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("quality.canary_path: cannot open ", path));
  std::vector<Canary> canaries;
  std::set<std::string> ids;
  std::string line;
  int number = 0;
  while (std::getline(in, line)) {
    ++number;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = absl::StrCat(path, ":", number, ": ");
    const nlohmann::json row = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (!row.is_object()) return absl::InvalidArgumentError(where + "not a JSON object");
    Canary canary;
    for (auto [key, field] : {std::pair{"id", &canary.id}, std::pair{"prompt", &canary.prompt}}) {
      const auto it = row.find(key);
      if (it == row.end() || !it->is_string() || it->get<std::string>().empty()) {
        return absl::InvalidArgumentError(absl::StrCat(where, "\"", key, "\" must be a non-empty string"));
      }
      *field = it->get<std::string>();
    }
    // An empty completion is a canary too: a student can answer nothing, and the judge must score that.
    const auto completion = row.find("completion");
    if (completion == row.end() || !completion->is_string()) {
      return absl::InvalidArgumentError(where + "\"completion\" must be a string");
    }
    canary.completion = completion->get<std::string>();
    if (const auto it = row.find("reference"); it != row.end()) {
      if (!it->is_string()) return absl::InvalidArgumentError(where + "\"reference\" must be a string");
      canary.reference = it->get<std::string>();
    }
    const auto expected = row.find("expected_reward");
    if (expected == row.end() || !expected->is_number() || !std::isfinite(expected->get<double>())) {
      return absl::InvalidArgumentError(where + "\"expected_reward\" must be a finite number");
    }
    canary.expected_reward = expected->get<double>();
    if (!ids.insert(canary.id).second) {
      return absl::InvalidArgumentError(absl::StrCat(where, "duplicate id \"", canary.id, "\""));
    }
    canaries.push_back(std::move(canary));
  }
  if (canaries.empty())
    return absl::InvalidArgumentError(absl::StrCat("quality.canary_path: ", path, " has no canaries"));
  return canaries;
}

}  // namespace rlj
