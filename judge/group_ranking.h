// group_ranking.h: the arithmetic of group ranking: a teacher ranks the G completions of one prompt, once
// in the sampled order and once reversed (position bias cancels); each completion's reward comes from its
// average position. Pure functions, separate from any teacher.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace rlj {

// The question: `rank_template` with {prompt}, {reference}, {n} and {completions} ("Answer 1:\n…\n\n"
// numbered in the order given) substituted in one pass.
std::string RenderRankQuestion(std::string_view rank_template, std::string_view prompt, std::string_view reference,
                               const std::vector<std::string_view>& completions);

// The answer's ranking of n answers, best first, as 1-based answer numbers: the `rank_key` array of the first
// JSON object in the answer, else every integer in the text in order. Anything but a permutation of 1..n is
// InvalidArgument saying what was wrong.
absl::StatusOr<std::vector<int>> ParseRanking(std::string_view answer, const std::string& rank_key, int n);

// 0-based position of each item (in sampled order) given the ranking of the forward presentation (answer k
// is item k-1) and of the reversed one (answer k is item n-k).
struct ItemPositions {
  std::vector<int> forward;
  std::vector<int> reversed;
};
ItemPositions PositionsFromRankings(const std::vector<int>& forward_ranking, const std::vector<int>& reversed_ranking);

// reward_i = worst + (best - worst) · (1 - mean_position_i / (n - 1)); n >= 2.
std::vector<double> RewardsFromPositions(const ItemPositions& positions, double best, double worst);

}  // namespace rlj
