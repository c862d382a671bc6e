// group_ranking.cc: rank questions, ranking parsing and position-averaged rewards.
#include "judge/group_ranking.h"

#include <cctype>

#include "absl/strings/str_cat.h"
#include "judge/score_parser.h"
#include "nlohmann/json.hpp"

namespace rlj {
namespace {

using nlohmann::json;

absl::Status CheckPermutation(const std::vector<int>& ranking, int n) {
  if (static_cast<int>(ranking.size()) != n) {
    return absl::InvalidArgumentError(absl::StrCat("the ranking lists ", ranking.size(), " answers, not ", n));
  }
  std::vector<bool> seen(static_cast<size_t>(n) + 1, false);
  for (int label : ranking) {
    if (label < 1 || label > n)
      return absl::InvalidArgumentError(absl::StrCat("the ranking names answer ", label, " of ", n));
    if (seen[static_cast<size_t>(label)])
      return absl::InvalidArgumentError(absl::StrCat("the ranking names answer ", label, " twice"));
    seen[static_cast<size_t>(label)] = true;
  }
  return absl::OkStatus();
}

}  // namespace

std::string RenderRankQuestion(std::string_view rank_template, std::string_view prompt, std::string_view reference,
                               const std::vector<std::string_view>& completions) {
  std::string listed;
  for (size_t i = 0; i < completions.size(); ++i) {
    absl::StrAppend(&listed, "Answer ", i + 1, ":\n", std::string(completions[i]), "\n\n");
  }
  const std::string n = std::to_string(completions.size());
  std::string out;
  size_t i = 0;
  while (i < rank_template.size()) {
    bool replaced = false;
    for (const auto& [name, value] : {std::pair<std::string_view, std::string_view>{"{prompt}", prompt},
                                      {"{reference}", reference},
                                      {"{completions}", listed},
                                      {"{n}", n}}) {
      if (rank_template.compare(i, name.size(), name) == 0) {
        out.append(value);
        i += name.size();
        replaced = true;
        break;
      }
    }
    if (!replaced) out.push_back(rank_template[i++]);
  }
  return out;
}

absl::StatusOr<std::vector<int>> ParseRanking(std::string_view answer, const std::string& rank_key, int n) {
  if (std::optional<json> object = FirstJsonObject(answer)) {
    auto it = object->find(rank_key);
    if (it != object->end() && it->is_array()) {
      std::vector<int> ranking;
      for (const json& item : *it) {
        if (item.is_number_integer()) {
          ranking.push_back(item.get<int>());
        } else if (item.is_string() && !item.get<std::string>().empty() &&
                   std::isdigit(static_cast<unsigned char>(item.get<std::string>()[0]))) {
          ranking.push_back(std::atoi(item.get<std::string>().c_str()));
        } else {
          return absl::InvalidArgumentError(
              absl::StrCat("\"", rank_key, "\" holds ", item.dump(), ", not an answer number"));
        }
      }
      if (absl::Status ok = CheckPermutation(ranking, n); !ok.ok()) return ok;
      return ranking;
    }
  }
  // No usable JSON: every integer in the text, in order ("3 > 1 > 2").
  std::vector<int> ranking;
  for (size_t i = 0; i < answer.size();) {
    if (std::isdigit(static_cast<unsigned char>(answer[i]))) {
      size_t j = i;
      while (j < answer.size() && std::isdigit(static_cast<unsigned char>(answer[j]))) ++j;
      ranking.push_back(std::atoi(std::string(answer.substr(i, std::min<size_t>(j - i, 9))).c_str()));
      i = j;
    } else {
      ++i;
    }
  }
  if (ranking.empty())
    return absl::InvalidArgumentError(absl::StrCat("no ranking in the answer (no \"", rank_key, "\" and no numbers)"));
  if (absl::Status ok = CheckPermutation(ranking, n); !ok.ok()) return ok;
  return ranking;
}

ItemPositions PositionsFromRankings(const std::vector<int>& forward_ranking, const std::vector<int>& reversed_ranking) {
  const int n = static_cast<int>(forward_ranking.size());
  ItemPositions positions;
  positions.forward.assign(static_cast<size_t>(n), 0);
  positions.reversed.assign(static_cast<size_t>(n), 0);
  for (int position = 0; position < n; ++position) {
    positions.forward[static_cast<size_t>(forward_ranking[static_cast<size_t>(position)] - 1)] = position;
    positions.reversed[static_cast<size_t>(n - reversed_ranking[static_cast<size_t>(position)])] = position;
  }
  return positions;
}

std::vector<double> RewardsFromPositions(const ItemPositions& positions, double best, double worst) {
  const size_t n = positions.forward.size();
  std::vector<double> rewards(n, best);
  if (n < 2) return rewards;
  for (size_t i = 0; i < n; ++i) {
    const double mean = (positions.forward[i] + positions.reversed[i]) / 2.0;
    rewards[i] = worst + (best - worst) * (1.0 - mean / static_cast<double>(n - 1));
  }
  return rewards;
}

}  // namespace rlj
