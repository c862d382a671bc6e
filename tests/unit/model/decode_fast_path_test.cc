// decode_fast_path_test.cc: the decode shortcuts give the same logits as the general paths: single-row
// matrix-vector projections (values and gradients), mask-free decode steps, the cached RoPE table and its
// fallback for positions outside it, the pad-key mask of a decode step, KvCache::has_pad_keys, and the fused CPU
// decode step against the per-op one for every architecture variant.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <string>
#include <vector>

#include "model/decode_step.h"
#include "model/kv_cache.h"
#include "model/transformer.h"
#include "model_test_util.h"
#include "test_util.h"

namespace rlj {
namespace {

using ::rlj::testing::MakeModel;
using ::rlj::testing::MaxAbsDiff;
using ::rlj::testing::SmallConfig;
using ::rlj::testing::TokensTensor;

TEST(DecodeFastPath, SingleRowEqualsTheSameRowInABatch) {
  // One row of one token takes the matrix-vector path in every projection; inside a batch of two the same
  // row goes through GEMM. Untied, so lm_head is a separate weight too.
  for (const bool tied : {true, false}) {
    Transformer model = MakeModel(SmallConfig(2, tied), 21, 0.2);
    torch::InferenceMode inference;
    const torch::Tensor alone = model->forward(TokensTensor({{65}}));
    const torch::Tensor batched = model->forward(TokensTensor({{65}, {66}}));
    ASSERT_EQ(alone.sizes(), (std::vector<int64_t>{1, 1, 259}));
    EXPECT_LT(MaxAbsDiff(alone[0], batched[0]), 1e-5) << "tied " << tied;
    EXPECT_GT(MaxAbsDiff(batched[0], batched[1]), 1e-3) << "the two rows must differ for the test to mean anything";
  }
}

TEST(DecodeFastPath, SingleRowGradientsEqualBatchedGradients) {
  // The matrix-vector path is differentiable: d(logit sum of row 0)/d(every parameter) is the same whether
  // row 0 runs alone or next to a second row (whose logits are left out of the loss).
  Transformer model = MakeModel(SmallConfig(2, /*tie_embeddings=*/false), 22, 0.2);
  auto gradients_of = [&](const torch::Tensor& tokens) {
    model->zero_grad();
    model->forward(tokens)[0].sum().backward();
    std::vector<torch::Tensor> gradients;
    for (const auto& parameter : model->parameters()) gradients.push_back(parameter.grad().clone());
    return gradients;
  };
  const std::vector<torch::Tensor> alone = gradients_of(TokensTensor({{70}}));
  const std::vector<torch::Tensor> batched = gradients_of(TokensTensor({{70}, {71}}));
  ASSERT_EQ(alone.size(), batched.size());
  double largest = 0;
  for (size_t i = 0; i < alone.size(); ++i) {
    EXPECT_LT(MaxAbsDiff(alone[i], batched[i]), 1e-4) << "parameter " << i;
    largest = std::max(largest, batched[i].abs().max().item<double>());
  }
  EXPECT_GT(largest, 1e-2);
}

TEST(DecodeFastPath, MaskFreeDecodeEqualsMaskedDecodeAndFullPass) {
  // Row 0 decoded alone (no pad keys: the steps run without a mask) and next to a left-padded row 1 (pad
  // keys: the steps add the pad mask); both must equal the full pass over row 0's sequence.
  const TransformerConfig config = SmallConfig();
  Transformer model = MakeModel(config, 23, 0.2);
  torch::InferenceMode inference;
  const std::vector<int64_t> sequence = {10, 11, 12, 13, 14, 15, 16};
  const torch::Tensor full = model->forward(TokensTensor({sequence}));

  KvCache alone(config, 1, 8);
  RLJ_ASSERT_OK(alone.Append(torch::ones({1, 4}, torch::kBool)));
  EXPECT_FALSE(alone.has_pad_keys());
  model->forward_cached(TokensTensor({{10, 11, 12, 13}}), torch::arange(4).view({1, 4}), alone);

  KvCache padded(config, 2, 8);
  RLJ_ASSERT_OK(padded.Append(torch::tensor({{true, true, true, true}, {false, false, true, true}})));
  EXPECT_TRUE(padded.has_pad_keys());
  model->forward_cached(TokensTensor({{10, 11, 12, 13}, {0, 0, 30, 31}}),
                        torch::tensor({{0L, 1L, 2L, 3L}, {0L, 0L, 0L, 1L}}), padded);

  for (int64_t t = 4; t < 7; ++t) {
    RLJ_ASSERT_OK(alone.AppendValid(1));
    const torch::Tensor step_alone =
        model->forward_cached(TokensTensor({{sequence[t]}}), torch::full({1, 1}, t, torch::kLong), alone);
    RLJ_ASSERT_OK(padded.AppendValid(1));
    const torch::Tensor step_padded =
        model->forward_cached(TokensTensor({{sequence[t]}, {32 + t}}), torch::tensor({{t}, {t - 2}}), padded);
    EXPECT_LT(MaxAbsDiff(step_alone[0][0], full[0][t]), 1e-4) << "step " << t;
    EXPECT_LT(MaxAbsDiff(step_padded[0][0], full[0][t]), 1e-4) << "step " << t;
    EXPECT_LT(MaxAbsDiff(step_alone[0][0], step_padded[0][0]), 1e-5) << "step " << t;
  }
}

TEST(DecodeFastPath, PadRowAttendsOnlyToItsRealKeys) {
  // Row 1's decode steps ignore its pad keys whatever tokens sit there: the same row with other pad tokens
  // gives the same logits, and equals the row's unpadded sequence decoded alone.
  const TransformerConfig config = SmallConfig();
  Transformer model = MakeModel(config, 24, 0.2);
  torch::InferenceMode inference;
  const torch::Tensor mask = torch::tensor({{true, true, true}, {false, false, true}});
  std::vector<torch::Tensor> steps;
  for (const int64_t pad : {0L, 200L}) {
    KvCache cache(config, 2, 5);
    RLJ_ASSERT_OK(cache.Append(mask));
    model->forward_cached(TokensTensor({{1, 2, 3}, {pad, pad, 50}}), torch::tensor({{0L, 1L, 2L}, {0L, 0L, 0L}}),
                          cache);
    RLJ_ASSERT_OK(cache.AppendValid(1));
    steps.push_back(model->forward_cached(TokensTensor({{4}, {51}}), torch::tensor({{3L}, {1L}}), cache));
  }
  EXPECT_LT(MaxAbsDiff(steps[0][1], steps[1][1]), 1e-6);
  const torch::Tensor alone = model->forward(TokensTensor({{50, 51}}));
  EXPECT_LT(MaxAbsDiff(steps[0][1][0], alone[0][1]), 1e-4);
}

TEST(DecodeFastPath, PositionsBeyondTheCachedRopeTableAreComputedDirectly) {
  // A cache of 4 slots holds a RoPE table for positions 0..3; positions 100.. must fall back to computing
  // the angles, and agree with the full pass given the same positions.
  const TransformerConfig config = SmallConfig();
  Transformer model = MakeModel(config, 25, 0.2);
  torch::InferenceMode inference;
  const torch::Tensor tokens = TokensTensor({{5, 6, 7, 8}});
  const torch::Tensor positions = torch::arange(100, 104).view({1, 4});
  const torch::Tensor full = model->forward(tokens, positions);
  KvCache cache(config, 1, 4);
  RLJ_ASSERT_OK(cache.Append(torch::ones({1, 3}, torch::kBool)));
  const torch::Tensor prefill = model->forward_cached(tokens.narrow(1, 0, 3), positions.narrow(1, 0, 3), cache);
  RLJ_ASSERT_OK(cache.AppendValid(1));
  const torch::Tensor step = model->forward_cached(tokens.narrow(1, 3, 1), positions.narrow(1, 3, 1), cache);
  EXPECT_LT(MaxAbsDiff(torch::cat({prefill, step}, 1), full), 1e-4);
}

TEST(DecodeFastPath, RopeTableValuesEqualDirectComputation) {
  // Long positions use the cache's table; int32 positions are not looked up and take the direct
  // computation. The table is built with the same arithmetic, so prefill and decode agree bit for bit.
  const TransformerConfig config = SmallConfig();
  Transformer model = MakeModel(config, 26, 0.2);
  torch::InferenceMode inference;
  const torch::Tensor tokens = TokensTensor({{9, 8, 7, 6, 5}});
  std::vector<torch::Tensor> results;
  for (const auto dtype : {torch::kLong, torch::kInt}) {
    KvCache cache(config, 1, 5);
    RLJ_ASSERT_OK(cache.Append(torch::ones({1, 4}, torch::kBool)));
    const torch::Tensor prefill =
        model->forward_cached(tokens.narrow(1, 0, 4), torch::arange(4, dtype).view({1, 4}), cache);
    EXPECT_EQ(cache.position_table().defined(), dtype == torch::kLong);
    RLJ_ASSERT_OK(cache.AppendValid(1));
    const torch::Tensor step = model->forward_cached(tokens.narrow(1, 4, 1), torch::full({1, 1}, 4, dtype), cache);
    results.push_back(torch::cat({prefill, step}, 1));
  }
  EXPECT_EQ(MaxAbsDiff(results[0], results[1]), 0.0);
  EXPECT_LT(MaxAbsDiff(results[0], model->forward(tokens)), 1e-4);
}

// Decodes `steps` tokens after a left-padded prefill, fused or per op, and returns every step's logits.
std::vector<torch::Tensor> DecodeSteps(Transformer& model, bool fused, int64_t batch, int steps) {
  model->set_fused_decode(fused);
  const TransformerConfig& config = model->config();
  const int64_t prompt = 5;
  KvCache cache(config, batch, prompt + steps);
  torch::Tensor mask = torch::ones({batch, prompt}, torch::kBool);
  torch::Tensor positions = torch::arange(prompt).repeat({batch, 1});
  for (int64_t b = 1; b < batch; b += 2) {  // odd rows: two pad keys
    mask[b].narrow(0, 0, 2).fill_(false);
    positions[b] = torch::tensor({0L, 0L, 0L, 1L, 2L});
  }
  const absl::Status appended = cache.Append(mask);
  EXPECT_TRUE(appended.ok()) << appended;
  const torch::Tensor prompt_tokens = torch::randint(0, config.vocab_size, {batch, prompt}, torch::kLong);
  std::vector<torch::Tensor> logits = {model->forward_cached(prompt_tokens, positions, cache)};
  torch::Tensor next_positions = positions.narrow(1, prompt - 1, 1) + 1;
  for (int step = 0; step < steps; ++step) {
    const absl::Status reserved = cache.AppendValid(1);
    EXPECT_TRUE(reserved.ok()) << reserved;
    const torch::Tensor tokens = torch::randint(0, config.vocab_size, {batch, 1}, torch::kLong);
    logits.push_back(model->forward_cached(tokens, next_positions, cache));
    next_positions += 1;
  }
  model->set_fused_decode(true);
  return logits;
}

TEST(FusedDecode, EqualsPerOpDecodeForEveryArchitectureVariant) {
  // Grouped-query and plain heads, tied and untied heads, Qwen2's q/k/v biases, Llama's attention_bias (o
  // bias too), Mistral's sliding window (4 slots, passed after the 5-token prompt), an odd head_dim-free
  // width (d_model 20: a 4-float tail past the 8-float vectors); batches of one, several (pad keys in odd
  // rows) and past kMaxFusedDecodeRows (the per-op path on both sides).
  struct Variant {
    std::string name;
    TransformerConfig config;
  };
  std::vector<Variant> variants;
  variants.push_back({"llama gqa", testing::SmallConfig(2)});
  variants.push_back({"llama untied", testing::SmallConfig(4, /*tie_embeddings=*/false)});
  TransformerConfig qwen2 = testing::SmallConfig(2);
  qwen2.architecture = "qwen2";
  variants.push_back({"qwen2", qwen2});
  TransformerConfig biased = testing::SmallConfig(4);
  biased.attention_bias = true;
  variants.push_back({"llama attention_bias", biased});
  TransformerConfig mistral = testing::SmallConfig(2);
  mistral.architecture = "mistral";
  mistral.sliding_window = 4;
  variants.push_back({"mistral window 4", mistral});
  TransformerConfig narrow = testing::SmallConfig(1);
  narrow.d_model = 20;
  narrow.n_heads = 2;
  narrow.ffn_hidden = 36;
  variants.push_back({"d_model 20", narrow});
  for (const Variant& variant : variants) {
    Transformer model = MakeModel(variant.config, 31, 0.2);
    torch::InferenceMode inference;
    for (const int64_t batch : {int64_t{1}, int64_t{3}, kMaxFusedDecodeRows, kMaxFusedDecodeRows + 1}) {
      torch::manual_seed(40 + batch);
      const std::vector<torch::Tensor> per_op = DecodeSteps(model, /*fused=*/false, batch, 6);
      torch::manual_seed(40 + batch);
      const std::vector<torch::Tensor> fused = DecodeSteps(model, /*fused=*/true, batch, 6);
      ASSERT_EQ(per_op.size(), fused.size());
      for (size_t step = 0; step < fused.size(); ++step) {
        ASSERT_EQ(fused[step].sizes(), per_op[step].sizes()) << variant.name << " batch " << batch;
        EXPECT_LT(MaxAbsDiff(fused[step], per_op[step]), 2e-5)
            << variant.name << " batch " << batch << " step " << step;
      }
      EXPECT_GT(MaxAbsDiff(fused.back()[0], fused.front()[0][0]), 1e-3) << "steps must differ to mean anything";
    }
  }
}

TEST(FusedDecode, UsedOnlyWithoutAutogradAndRejectsOutOfRangeTokens) {
  const TransformerConfig config = SmallConfig();
  Transformer model = MakeModel(config, 32, 0.2);
  {
    torch::InferenceMode inference;
    KvCache cache(config, 1, 4);
    RLJ_ASSERT_OK(cache.Append(torch::ones({1, 2}, torch::kBool)));
    model->forward_cached(TokensTensor({{1, 2}}), torch::arange(2).view({1, 2}), cache);
    RLJ_ASSERT_OK(cache.AppendValid(1));
    EXPECT_THROW(model->forward_cached(TokensTensor({{259}}), torch::full({1, 1}, 2L), cache), c10::Error);
  }
  // With autograd on, the per-op path runs and the logits carry a graph.
  KvCache cache(config, 1, 4);
  RLJ_ASSERT_OK(cache.Append(torch::ones({1, 2}, torch::kBool)));
  model->forward_cached(TokensTensor({{1, 2}}), torch::arange(2).view({1, 2}), cache);
  RLJ_ASSERT_OK(cache.AppendValid(1));
  const torch::Tensor logits = model->forward_cached(TokensTensor({{3}}), torch::full({1, 1}, 2L), cache);
  EXPECT_TRUE(logits.requires_grad());
}

TEST(FusedDecode, ANonContiguousWeightFallsBackToOps) {
  // A q_proj weight stored transposed (same values, not contiguous) cannot be read as rows: the step runs as
  // LibTorch ops, bit for bit the per-op result, where the fused step differs in the last bits.
  Transformer model = MakeModel(SmallConfig(4), 33, 0.2);
  torch::InferenceMode inference;
  torch::manual_seed(50);
  const std::vector<torch::Tensor> fused = DecodeSteps(model, /*fused=*/true, 1, 3);
  torch::manual_seed(50);
  const std::vector<torch::Tensor> per_op = DecodeSteps(model, /*fused=*/false, 1, 3);
  EXPECT_GT(MaxAbsDiff(fused.back(), per_op.back()), 0.0) << "the fused step must differ for the test to mean anything";
  {
    torch::NoGradGuard no_grad;
    torch::Tensor weight = model->named_parameters()["model.layers.0.self_attn.q_proj.weight"];
    weight.set_data(weight.t().contiguous().t());
    ASSERT_FALSE(weight.is_contiguous());
  }
  torch::manual_seed(50);
  const std::vector<torch::Tensor> fallback = DecodeSteps(model, /*fused=*/true, 1, 3);
  torch::manual_seed(50);
  const std::vector<torch::Tensor> per_op_again = DecodeSteps(model, /*fused=*/false, 1, 3);
  for (size_t step = 0; step < fallback.size(); ++step) {
    EXPECT_EQ(MaxAbsDiff(fallback[step], per_op_again[step]), 0.0) << "step " << step;
    EXPECT_LT(MaxAbsDiff(fallback[step], per_op[step]), 1e-5) << "step " << step;
  }
}

TEST(KvCacheFlags, HasPadKeysFollowsAppendAndReset) {
  const TransformerConfig config = SmallConfig();
  KvCache cache(config, 2, 6);
  EXPECT_FALSE(cache.has_pad_keys());
  RLJ_ASSERT_OK(cache.AppendValid(2));
  cache.MarkWritten();
  EXPECT_FALSE(cache.has_pad_keys());
  RLJ_ASSERT_OK(cache.Append(torch::tensor({{true}, {true}})));
  cache.MarkWritten();
  EXPECT_FALSE(cache.has_pad_keys());
  RLJ_ASSERT_OK(cache.Append(torch::tensor({{true}, {false}})));
  cache.MarkWritten();
  EXPECT_TRUE(cache.has_pad_keys());
  RLJ_ASSERT_OK(cache.KeepRows({0}));
  EXPECT_TRUE(cache.has_pad_keys()) << "KeepRows stays conservative";
  cache.Reset();
  EXPECT_FALSE(cache.has_pad_keys());
}

}  // namespace
}  // namespace rlj
