// token_sampler.cc: greedy rows take the argmax; sampling rows scale by their temperature, keep their top-k /
// top-p ids (in order of likelihood), and invert their cumulative distribution at their stream's next uniform.
// Each kind of row is done as one batch of tensor operations, and every operation works row by row, so a row's
// draw does not depend on the other rows.
#include "model/token_sampler.h"

#include <ATen/ATen.h>

#include <cmath>
#include <limits>
#include <vector>

#include "absl/strings/str_cat.h"

namespace rlj {
namespace {

constexpr double kInfinity = std::numeric_limits<double>::infinity();

bool Filters(const SamplingParams& params, int64_t vocab) {
  return (params.top_k > 0 && params.top_k < vocab) || params.top_p < 1;
}

// The rows of one kind, their parameters as [m, 1] columns and their uniforms.
struct RowGroup {
  std::vector<int64_t> index;
  std::vector<double> temperature, top_k, top_p, uniform;

  void Add(int64_t row, const SamplingParams& params, int64_t vocab, double u) {
    index.push_back(row);
    temperature.push_back(params.temperature);
    top_k.push_back(params.top_k > 0 && params.top_k < vocab ? params.top_k : vocab);
    top_p.push_back(params.top_p);
    uniform.push_back(u);
  }
  static at::Tensor Column(const std::vector<double>& values, const at::Tensor& like) {
    return at::tensor(values, at::kDouble).view({-1, 1}).to(like.device(), like.scalar_type());
  }
};

// Per row of `scores` [m, V]: the index where the cumulative mass first exceeds u × the row's total. Sums in
// double so that the total of a large vocabulary stays exact enough.
at::Tensor InvertCdf(const at::Tensor& scores, const std::vector<double>& uniform) {
  const at::Tensor cumulative = scores.softmax(-1).to(at::kDouble).cumsum(-1);
  const at::Tensor target = at::tensor(uniform, at::kDouble).view({-1, 1}).to(scores.device()) *
                            cumulative.narrow(1, cumulative.size(1) - 1, 1);
  const at::Tensor index = at::searchsorted(cumulative, target, /*out_int32=*/false, /*right=*/true);
  return index.clamp_max(scores.size(1) - 1).view({-1});
}

// Unfiltered rows: softmax(scores) inverted in id order; `scores` are the group's rows over their temperature.
at::Tensor SampleUnfiltered(const at::Tensor& scores, const RowGroup& group) {
  return InvertCdf(scores, group.uniform);
}

// Filtered rows: sorted by likelihood, cut to each row's top-k then top-p (the most likely id always stays),
// inverted in that order and mapped back to ids.
at::Tensor SampleFiltered(const at::Tensor& scores, const RowGroup& group) {
  auto [sorted, order] = scores.sort(-1, /*descending=*/true);
  const at::Tensor rank = at::arange(sorted.size(1), sorted.options()).view({1, -1});
  sorted.masked_fill_(rank.ge(RowGroup::Column(group.top_k, sorted)), -kInfinity);
  const at::Tensor probs = sorted.softmax(-1);
  const at::Tensor mass_before = probs.cumsum(-1) - probs;
  sorted.masked_fill_(mass_before.ge(RowGroup::Column(group.top_p, probs)), -kInfinity);
  const at::Tensor position = InvertCdf(sorted, group.uniform);
  return order.gather(1, position.view({-1, 1})).view({-1});
}

}  // namespace

absl::Status ValidateSamplingParams(const SamplingParams& params) {
  if (!(params.temperature >= 0) || !std::isfinite(params.temperature)) {
    return absl::InvalidArgumentError(absl::StrCat("temperature must be >= 0 (0 = greedy), got ", params.temperature));
  }
  if (params.top_k < 0) return absl::InvalidArgumentError(absl::StrCat("top_k must be >= 0, got ", params.top_k));
  if (!(params.top_p > 0 && params.top_p <= 1)) {
    return absl::InvalidArgumentError(absl::StrCat("top_p must be in (0, 1], got ", params.top_p));
  }
  return absl::OkStatus();
}

uint64_t SpreadSeed(uint64_t value) {
  uint64_t z = value + 0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

SamplingStream::SamplingStream(const SamplingParams& params, uint64_t seed) : params_(params), engine_(seed) {}

double SamplingStream::NextUniform() { return static_cast<double>(engine_() >> 11) * 0x1.0p-53; }

at::Tensor ChooseTokens(const at::Tensor& logits, int64_t usable_vocab, std::span<SamplingStream* const> rows) {
  const int64_t vocab = std::min<int64_t>(logits.size(1), usable_vocab);
  const at::Tensor usable = logits.narrow(1, 0, vocab);
  RowGroup unfiltered, filtered;
  for (size_t r = 0; r < rows.size(); ++r) {
    const SamplingParams& params = rows[r]->params();
    if (params.temperature == 0) continue;
    RowGroup& group = Filters(params, vocab) ? filtered : unfiltered;
    group.Add(static_cast<int64_t>(r), params, vocab, rows[r]->NextUniform());
  }
  at::Tensor ids = usable.argmax(-1);  // the greedy rows' answer; sampling rows overwrite theirs
  for (const RowGroup* group : {&unfiltered, &filtered}) {
    if (group->index.empty()) continue;
    const at::Tensor index = at::tensor(group->index, at::kLong).to(ids.device());
    const at::Tensor scores = usable.index_select(0, index) / RowGroup::Column(group->temperature, usable);
    ids.index_copy_(0, index, group == &filtered ? SampleFiltered(scores, *group) : SampleUnfiltered(scores, *group));
  }
  return ids;
}

}  // namespace rlj
