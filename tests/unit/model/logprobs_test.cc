// logprobs_test.cc: TokenLogProbs and TokenEntropy against hand-computed values.
#include "model/logprobs.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

namespace rlj {
namespace {

TEST(TokenLogProbs, HandComputedValues) {
  // Row 0: logits [0, ln 2, ln 3] → probabilities [1/6, 2/6, 3/6]. Row 1: equal logits → 1/3 each.
  const torch::Tensor logits =
      torch::tensor({{0.0, std::log(2.0), std::log(3.0)}, {5.0, 5.0, 5.0}}, torch::kFloat).view({1, 2, 3});
  const torch::Tensor targets = torch::tensor({{2L, 0L}});
  const torch::Tensor logprobs = TokenLogProbs(logits, targets);
  EXPECT_EQ(logprobs.sizes().vec(), (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(logprobs.scalar_type(), torch::kFloat);
  EXPECT_NEAR(logprobs[0][0].item<double>(), std::log(0.5), 1e-6);
  EXPECT_NEAR(logprobs[0][1].item<double>(), std::log(1.0 / 3.0), 1e-6);
}

TEST(TokenLogProbs, TemperatureDividesLogits) {
  // logits [0, 2] at T=2 → [0, 1]: p(1) = e / (1 + e).
  const torch::Tensor logits = torch::tensor({0.0, 2.0}).view({1, 1, 2});
  const double expected = std::log(std::exp(1.0) / (1.0 + std::exp(1.0)));
  EXPECT_NEAR(TokenLogProbs(logits, torch::tensor({{1L}}), 2.0).item<double>(), expected, 1e-6);
  EXPECT_NEAR(TokenLogProbs(logits.to(torch::kBFloat16), torch::tensor({{1L}}), 2.0).item<double>(), expected, 1e-6);
  EXPECT_THROW(TokenLogProbs(logits, torch::tensor({{1L}}), 0.0), c10::Error);
  EXPECT_THROW(TokenLogProbs(logits, torch::tensor({1L}), 1.0), c10::Error);
}

TEST(TokenLogProbs, MatchesLogSoftmaxAndCarriesGradients) {
  torch::manual_seed(1);
  const torch::Tensor logits = (torch::randn({3, 5, 11}) * 4).requires_grad_(true);
  const torch::Tensor targets = torch::randint(0, 11, {3, 5}, torch::kLong);
  const torch::Tensor expected = torch::log_softmax(logits / 0.7, -1).gather(-1, targets.unsqueeze(-1)).squeeze(-1);
  const torch::Tensor logprobs = TokenLogProbs(logits, targets.to(torch::kInt), 0.7);
  EXPECT_LT((logprobs - expected).abs().max().item<double>(), 1e-5);
  logprobs.sum().backward();
  // d/dx_j of log p(target) = (1[j = target] - p_j) / T; the gradient of each row sums to 0.
  EXPECT_LT(logits.grad().sum(-1).abs().max().item<double>(), 1e-5);
}

TEST(TokenEntropy, HandComputedValues) {
  const torch::Tensor uniform = torch::zeros({1, 1, 8});
  EXPECT_NEAR(TokenEntropy(uniform).item<double>(), std::log(8.0), 1e-6);
  // Two live ids with probabilities 1/3, 2/3 and two masked ones (-inf): H = ln 3 - (2/3) ln 2, no NaN.
  const double inf = std::numeric_limits<double>::infinity();
  const torch::Tensor masked = torch::tensor({0.0, std::log(2.0), -inf, -inf}).view({1, 1, 4});
  EXPECT_NEAR(TokenEntropy(masked).item<double>(), std::log(3.0) - 2.0 / 3.0 * std::log(2.0), 1e-6);
  // Temperature → 0 sharpens; a large temperature flattens toward ln V.
  const torch::Tensor peaked = torch::tensor({0.0, 1.0, 2.0}).view({1, 1, 3});
  EXPECT_LT(TokenEntropy(peaked, 0.1).item<double>(), 0.01);
  EXPECT_NEAR(TokenEntropy(peaked, 1000.0).item<double>(), std::log(3.0), 1e-4);
}

}  // namespace
}  // namespace rlj
