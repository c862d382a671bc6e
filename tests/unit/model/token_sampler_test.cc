// token_sampler_test.cc: ChooseTokens: greedy, the usable vocabulary, top-k / top-p, the drawn frequencies
// against the distribution, and a row's draws independent of the rows beside it.
#include "model/token_sampler.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <map>
#include <memory>
#include <set>
#include <vector>

#include "test_util.h"

namespace rlj {
namespace {

using ::rlj::testing::FailsWith;

// n rows of `logits`, as a float32 [n, V] CPU tensor.
torch::Tensor Rows(const std::vector<float>& logits, int n) {
  return torch::tensor(logits, torch::kFloat).view({1, -1}).repeat({n, 1}).contiguous();
}

std::vector<int64_t> Draw(const torch::Tensor& logits, int64_t usable, std::vector<SamplingStream>& streams) {
  std::vector<SamplingStream*> rows;
  for (auto& stream : streams) rows.push_back(&stream);
  const torch::Tensor ids = ChooseTokens(logits, usable, rows);
  return std::vector<int64_t>(ids.data_ptr<int64_t>(), ids.data_ptr<int64_t>() + ids.numel());
}

TEST(TokenSampler, GreedyTakesTheArgmaxWithinTheUsableVocabulary) {
  std::vector<SamplingStream> streams{SamplingStream({0, 0, 1}, 1)};
  EXPECT_EQ(Draw(Rows({0.1f, 2.0f, 0.5f, 9.0f}, 1), 4, streams), std::vector<int64_t>{3});
  // Id 3 is beyond what the tokenizer can decode: never chosen.
  EXPECT_EQ(Draw(Rows({0.1f, 2.0f, 0.5f, 9.0f}, 1), 3, streams), std::vector<int64_t>{1});
  std::vector<SamplingStream> sampling{SamplingStream({1, 0, 1}, 5)};
  for (int i = 0; i < 200; ++i) EXPECT_LT(Draw(Rows({0.1f, 2.0f, 0.5f, 9.0f}, 1), 3, sampling)[0], 3);
}

TEST(TokenSampler, FrequenciesFollowTheTemperedDistribution) {
  const std::vector<float> logits{std::log(0.1f), std::log(0.2f), std::log(0.3f), std::log(0.4f)};
  for (const double temperature : {1.0, 0.5}) {
    std::vector<SamplingStream> streams{SamplingStream({temperature, 0, 1}, 42)};
    std::map<int64_t, int> counts;
    const int draws = 20000;
    for (int i = 0; i < draws; ++i) ++counts[Draw(Rows(logits, 1), 4, streams)[0]];
    double total = 0;
    for (const double p : {0.1, 0.2, 0.3, 0.4}) total += std::pow(p, 1 / temperature);
    for (int id = 0; id < 4; ++id) {
      const double expected = std::pow(0.1 * (id + 1), 1 / temperature) / total;
      // Four standard deviations of a binomial proportion.
      EXPECT_NEAR(counts[id] / static_cast<double>(draws), expected, 4 * std::sqrt(expected * (1 - expected) / draws))
          << "id " << id << " at temperature " << temperature;
    }
  }
}

TEST(TokenSampler, TopKAndTopPKeepOnlyTheMostLikelyIds) {
  const std::vector<float> logits{0.0f, 3.0f, 1.0f, 2.9f, -1.0f};  // ranks: 1, 3, 2, 0, 4
  std::vector<SamplingStream> top_k{SamplingStream({1.5, 2, 1}, 3)};
  std::vector<SamplingStream> top_p{SamplingStream({1, 0, 0.6}, 4)};
  std::vector<SamplingStream> top_one{SamplingStream({1, 1, 1}, 5), SamplingStream({1, 0, 1e-6}, 6)};
  std::set<int64_t> seen_k, seen_p;
  for (int i = 0; i < 400; ++i) {
    seen_k.insert(Draw(Rows(logits, 1), 5, top_k)[0]);
    seen_p.insert(Draw(Rows(logits, 1), 5, top_p)[0]);
    EXPECT_EQ(Draw(Rows(logits, 2), 5, top_one), (std::vector<int64_t>{1, 1}));
  }
  EXPECT_EQ(seen_k, (std::set<int64_t>{1, 3}));
  // p(1) ≈ 0.46, p(3) ≈ 0.42: the nucleus of 0.6 holds ids 1 and 3.
  EXPECT_EQ(seen_p, (std::set<int64_t>{1, 3}));
}

TEST(TokenSampler, ARowDrawsTheSameWhateverSharesItsBatch) {
  torch::manual_seed(7);
  const torch::Tensor logits = torch::randn({6, 300}) * 3;
  const SamplingParams mine{0.9, 0, 0.95};
  std::vector<SamplingStream> alone{SamplingStream(mine, 1234)};
  std::vector<SamplingStream> crowd{SamplingStream({0, 0, 1}, 1),     SamplingStream({1.3, 5, 1}, 2),
                                    SamplingStream(mine, 1234),       SamplingStream({1, 0, 1}, 3),
                                    SamplingStream({0.7, 0, 0.5}, 4), SamplingStream({1, 40, 0.9}, 5)};
  std::set<int64_t> distinct;
  for (int step = 0; step < 50; ++step) {
    const torch::Tensor step_logits = logits.roll(step, 1).contiguous();
    const int64_t by_itself = Draw(step_logits.narrow(0, 2, 1).contiguous(), 300, alone)[0];
    EXPECT_EQ(Draw(step_logits, 300, crowd)[2], by_itself) << "step " << step;
    distinct.insert(by_itself);
  }
  EXPECT_GT(distinct.size(), 5u);  // it really samples
}

TEST(TokenSampler, SameSeedSameDrawsOtherSeedOtherDraws) {
  torch::manual_seed(3);
  const torch::Tensor logits = torch::randn({1, 500});
  auto run = [&](uint64_t seed) {
    std::vector<SamplingStream> streams{SamplingStream({1, 0, 1}, seed)};
    std::vector<int64_t> ids;
    for (int i = 0; i < 30; ++i) ids.push_back(Draw(logits, 500, streams)[0]);
    return ids;
  };
  EXPECT_EQ(run(9), run(9));
  EXPECT_NE(run(9), run(10));
}

TEST(TokenSampler, SpreadSeedsAreFarApart) {
  std::set<uint64_t> seeds;
  for (uint64_t i = 0; i < 1000; ++i) seeds.insert(SpreadSeed(i));
  ASSERT_EQ(seeds.size(), 1000u);
  // No two of them lie within a batch's width (rows use seed + row) of each other.
  uint64_t previous = 0;
  bool first = true;
  for (const uint64_t seed : seeds) {
    if (!first) EXPECT_GT(seed - previous, 1u << 20);
    previous = seed;
    first = false;
  }
  EXPECT_EQ(SpreadSeed(7), SpreadSeed(7));
}

TEST(TokenSampler, ParametersAreValidated) {
  RLJ_EXPECT_OK(ValidateSamplingParams({0, 0, 1}));
  EXPECT_TRUE(FailsWith(ValidateSamplingParams({-1, 0, 1}), absl::StatusCode::kInvalidArgument, "temperature"));
  EXPECT_TRUE(FailsWith(ValidateSamplingParams({NAN, 0, 1}), absl::StatusCode::kInvalidArgument, "temperature"));
  EXPECT_TRUE(FailsWith(ValidateSamplingParams({1, -2, 1}), absl::StatusCode::kInvalidArgument, "top_k"));
  EXPECT_TRUE(FailsWith(ValidateSamplingParams({1, 0, 0}), absl::StatusCode::kInvalidArgument, "top_p"));
  EXPECT_TRUE(FailsWith(ValidateSamplingParams({1, 0, 1.5}), absl::StatusCode::kInvalidArgument, "top_p"));
}

}  // namespace
}  // namespace rlj
