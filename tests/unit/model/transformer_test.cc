// transformer_test.cc: the Llama model: Hugging Face parameter names, exact parameter counts, init,
// KV-cache decoding against the full pass, left padding, RoPE, causality, grouped-query heads, cloning.
#include "model/transformer.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <map>
#include <string>

#include "model/kv_cache.h"
#include "model_test_util.h"
#include "test_util.h"

namespace rlj {
namespace {

using ::rlj::testing::MakeModel;
using ::rlj::testing::MaxAbsDiff;
using ::rlj::testing::SmallConfig;
using ::rlj::testing::TokensTensor;

std::map<std::string, std::vector<int64_t>> ParameterShapes(Transformer& model) {
  std::map<std::string, std::vector<int64_t>> shapes;
  for (const auto& item : model->named_parameters()) shapes[item.key()] = item.value().sizes().vec();
  return shapes;
}

TEST(Transformer, ParameterNamesAndShapesMatchHuggingFaceUntiedGqa) {
  TransformerConfig config = SmallConfig(/*n_kv_heads=*/2, /*tie_embeddings=*/false);
  config.n_layers = 1;
  Transformer model(config);
  const std::map<std::string, std::vector<int64_t>> expected = {
      {"model.embed_tokens.weight", {259, 32}},
      {"model.layers.0.input_layernorm.weight", {32}},
      {"model.layers.0.self_attn.q_proj.weight", {32, 32}},
      {"model.layers.0.self_attn.k_proj.weight", {16, 32}},  // 2 kv heads × head_dim 8
      {"model.layers.0.self_attn.v_proj.weight", {16, 32}},
      {"model.layers.0.self_attn.o_proj.weight", {32, 32}},
      {"model.layers.0.post_attention_layernorm.weight", {32}},
      {"model.layers.0.mlp.gate_proj.weight", {64, 32}},
      {"model.layers.0.mlp.up_proj.weight", {64, 32}},
      {"model.layers.0.mlp.down_proj.weight", {32, 64}},
      {"model.norm.weight", {32}},
      {"lm_head.weight", {259, 32}},
  };
  EXPECT_EQ(ParameterShapes(model), expected);
  // RoPE angles are computed per pass from the positions: no buffer, so nothing extra in a checkpoint.
  EXPECT_TRUE(model->named_buffers().is_empty());
}

TEST(Transformer, TiedEmbeddingsHaveNoLmHeadParameter) {
  TransformerConfig config = SmallConfig(4, /*tie_embeddings=*/true);
  Transformer model(config);
  const auto shapes = ParameterShapes(model);
  EXPECT_EQ(shapes.count("lm_head.weight"), 0u);
  EXPECT_EQ(shapes.count("model.layers.1.mlp.down_proj.weight"), 1u);
  EXPECT_EQ(shapes.size(), 1u + 2u * 9u + 1u);
  // Tied: the logits are the final hidden states times the embedding matrix, so changing the embedding of
  // one id moves that id's logit.
  const torch::Tensor tokens = TokensTensor({{1, 2, 3}});
  const torch::Tensor before = model->forward(tokens);
  {
    torch::NoGradGuard no_grad;
    model->named_parameters()["model.embed_tokens.weight"][200].mul_(3.0);
  }
  const torch::Tensor after = model->forward(tokens);
  EXPECT_GT((after.select(2, 200) - before.select(2, 200)).abs().max().item<double>(), 1e-4);
  EXPECT_LT(MaxAbsDiff(after.narrow(2, 0, 200), before.narrow(2, 0, 200)), 1e-6);
}

TEST(Transformer, NumParametersCountsExactly) {
  for (const auto& [kv_heads, tied] : std::vector<std::pair<int, bool>>{{4, true}, {2, true}, {1, false}, {4, false}}) {
    const TransformerConfig config = SmallConfig(kv_heads, tied);
    Transformer model(config);
    int64_t counted = 0;
    for (const auto& parameter : model->parameters()) counted += parameter.numel();
    EXPECT_EQ(config.num_parameters(), counted) << "kv_heads " << kv_heads << " tied " << tied;
  }
  // By hand, for d=32, L=2, H=4, KVH=2 (head_dim 8), F=64, V=259, tied:
  // embed 259*32 = 8288; per layer 2*32 + 32*32 + 2*32*16 + 32*32 + 3*32*64 = 9280; final norm 32.
  EXPECT_EQ(SmallConfig(2, true).num_parameters(), 8288 + 2 * 9280 + 32);
}

TEST(Transformer, InitIsSeededNormalWithUnitNorms) {
  const TransformerConfig config = SmallConfig();
  torch::manual_seed(7);
  Transformer a(config);
  torch::manual_seed(7);
  Transformer b(config);
  torch::manual_seed(8);
  Transformer c(config);
  const auto pa = a->named_parameters(), pb = b->named_parameters(), pc = c->named_parameters();
  for (const auto& item : pa) {
    EXPECT_TRUE(torch::equal(item.value(), pb[item.key()])) << item.key();
    if (item.value().dim() == 1) {
      EXPECT_TRUE(torch::equal(item.value(), torch::ones_like(item.value()))) << item.key();
    } else {
      EXPECT_FALSE(torch::equal(item.value(), pc[item.key()])) << item.key();
      EXPECT_NEAR(item.value().std().item<double>(), 0.02, 0.003) << item.key();
      EXPECT_NEAR(item.value().mean().item<double>(), 0.0, 0.003) << item.key();
    }
  }
}

TEST(Transformer, ForwardShapesAndDefaults) {
  Transformer model = MakeModel(SmallConfig(), 1, 0.3);
  const torch::Tensor tokens = TokensTensor({{5, 6, 7, 8}, {9, 10, 11, 12}});
  const torch::Tensor logits = model->forward(tokens);
  EXPECT_EQ(logits.sizes().vec(), (std::vector<int64_t>{2, 4, 259}));
  EXPECT_EQ(logits.scalar_type(), torch::kFloat);
  // Default positions 0..T-1 and an all-true key mask.
  const torch::Tensor explicit_logits =
      model->forward(tokens, torch::arange(4).repeat({2, 1}), torch::ones({2, 4}, torch::kBool));
  EXPECT_TRUE(torch::equal(logits, explicit_logits));
  EXPECT_THROW(model->forward(torch::zeros({4}, torch::kLong)), c10::Error);
}

TEST(Transformer, EarlierLogitsIgnoreLaterTokens) {
  Transformer model = MakeModel(SmallConfig(), 2, 0.3);
  const torch::Tensor a = model->forward(TokensTensor({{1, 2, 3, 4, 5}}));
  const torch::Tensor b = model->forward(TokensTensor({{1, 2, 3, 99, 100}}));
  EXPECT_LT(MaxAbsDiff(a.narrow(1, 0, 3), b.narrow(1, 0, 3)), 1e-6);
  EXPECT_GT(MaxAbsDiff(a.narrow(1, 3, 2), b.narrow(1, 3, 2)), 1e-3);
}

TEST(Transformer, RopeDependsOnlyOnRelativePositions) {
  Transformer model = MakeModel(SmallConfig(), 3, 0.3);
  const torch::Tensor tokens = TokensTensor({{10, 20, 30, 40, 50, 60}});
  const torch::Tensor at_zero = model->forward(tokens, torch::arange(6).view({1, 6}));
  const torch::Tensor shifted = model->forward(tokens, torch::arange(17, 23).view({1, 6}));
  EXPECT_LT(MaxAbsDiff(at_zero, shifted), 1e-4);
  // Positions do matter: all tokens at position 0 see no rotation, which changes the result.
  const torch::Tensor unrotated = model->forward(tokens, torch::zeros({1, 6}, torch::kLong));
  EXPECT_GT(MaxAbsDiff(at_zero.narrow(1, 1, 5), unrotated.narrow(1, 1, 5)), 1e-3);
}

TEST(Transformer, PrefillThenDecodeMatchesFullForward) {
  for (const int kv_heads : {4, 2, 1}) {
    const TransformerConfig config = SmallConfig(kv_heads, kv_heads != 2);
    Transformer model = MakeModel(config, 4, 0.2);
    torch::InferenceMode inference;
    const torch::Tensor tokens = TokensTensor({{3, 1, 4, 1, 5, 9, 2, 6, 5, 3}, {2, 7, 1, 8, 2, 8, 1, 8, 2, 8}});
    const torch::Tensor full = model->forward(tokens);

    KvCache cache(config, 2, 12);
    RLJ_ASSERT_OK(cache.Append(torch::ones({2, 4}, torch::kBool)));
    std::vector<torch::Tensor> pieces{
        model->forward_cached(tokens.narrow(1, 0, 4), torch::arange(4).repeat({2, 1}), cache)};
    for (int64_t t = 4; t < 10; ++t) {
      RLJ_ASSERT_OK(cache.AppendValid(1));
      pieces.push_back(model->forward_cached(tokens.narrow(1, t, 1), torch::full({2, 1}, t, torch::kLong), cache));
    }
    EXPECT_EQ(cache.length(), 10);
    EXPECT_LT(MaxAbsDiff(torch::cat(pieces, 1), full), 1e-4) << "kv_heads " << kv_heads;
  }
}

TEST(Transformer, DecodeWithAutogradRecordingMatchesToo) {
  // Outside InferenceMode the decode step takes the allocating path (out= ops are not differentiable).
  const TransformerConfig config = SmallConfig(2);
  Transformer model = MakeModel(config, 14, 0.2);
  const torch::Tensor tokens = TokensTensor({{3, 1, 4, 1, 5}});
  KvCache cache(config, 1, 5);
  RLJ_ASSERT_OK(cache.Append(torch::ones({1, 3}, torch::kBool)));
  std::vector<torch::Tensor> pieces{
      model->forward_cached(tokens.narrow(1, 0, 3), torch::arange(3).view({1, 3}), cache)};
  for (int64_t t = 3; t < 5; ++t) {
    RLJ_ASSERT_OK(cache.AppendValid(1));
    pieces.push_back(model->forward_cached(tokens.narrow(1, t, 1), torch::full({1, 1}, t, torch::kLong), cache));
  }
  EXPECT_TRUE(pieces.back().requires_grad());
  EXPECT_LT(MaxAbsDiff(torch::cat(pieces, 1), model->forward(tokens)), 1e-4);
  // A one-token full pass (no cache) also takes the broadcast path.
  EXPECT_LT(MaxAbsDiff(model->forward(tokens.narrow(1, 0, 1)), pieces.front().narrow(1, 0, 1)), 1e-5);
}

TEST(Transformer, ChunkedPrefillMatchesFullForward) {
  const TransformerConfig config = SmallConfig(2);
  Transformer model = MakeModel(config, 5, 0.2);
  torch::InferenceMode inference;
  const torch::Tensor tokens = TokensTensor({{11, 12, 13, 14, 15, 16, 17}});
  KvCache cache(config, 1, 7);
  RLJ_ASSERT_OK(cache.Append(torch::ones({1, 3}, torch::kBool)));
  const torch::Tensor first = model->forward_cached(tokens.narrow(1, 0, 3), torch::arange(3).view({1, 3}), cache);
  RLJ_ASSERT_OK(cache.Append(torch::ones({1, 4}, torch::kBool)));
  const torch::Tensor second = model->forward_cached(tokens.narrow(1, 3, 4), torch::arange(3, 7).view({1, 4}), cache);
  EXPECT_LT(MaxAbsDiff(torch::cat({first, second}, 1), model->forward(tokens)), 1e-4);
}

TEST(Transformer, LeftPaddedRowsMatchUnpaddedSequences) {
  const TransformerConfig config = SmallConfig(2);
  Transformer model = MakeModel(config, 6, 0.2);
  torch::InferenceMode inference;
  const std::vector<std::vector<int64_t>> prompts = {{5, 6, 7, 8, 9, 10}, {21, 22}, {31, 32, 33, 34}};
  const int64_t width = 6;
  torch::Tensor tokens = torch::full({3, width}, 258, torch::kLong);
  torch::Tensor positions = torch::zeros({3, width}, torch::kLong);
  torch::Tensor mask = torch::zeros({3, width}, torch::kBool);
  for (int64_t b = 0; b < 3; ++b) {
    const int64_t length = static_cast<int64_t>(prompts[b].size());
    for (int64_t i = 0; i < length; ++i) {
      tokens[b][width - length + i] = prompts[b][i];
      positions[b][width - length + i] = i;
      mask[b][width - length + i] = true;
    }
  }
  // Full pass with the key mask, and cached prefill followed by two decode steps.
  const torch::Tensor padded = model->forward(tokens, positions, mask);
  KvCache cache(config, 3, width + 2);
  RLJ_ASSERT_OK(cache.Append(mask));
  const torch::Tensor prefill = model->forward_cached(tokens, positions, cache);
  {  // A prefill that keeps only its last position's logits computes the same numbers there.
    KvCache last_only_cache(config, 3, width + 2);
    RLJ_ASSERT_OK(last_only_cache.Append(mask));
    const torch::Tensor last = model->forward_cached(tokens, positions, last_only_cache, /*last_logits_only=*/true);
    ASSERT_EQ(last.sizes(), (std::vector<int64_t>{3, 1, prefill.size(2)}));
    EXPECT_LT(MaxAbsDiff(last.select(1, 0), prefill.select(1, width - 1)), 1e-5);
  }
  const torch::Tensor next = torch::tensor({40L, 41L, 42L}).view({3, 1});
  torch::Tensor next_positions = torch::tensor({6L, 2L, 4L}).view({3, 1});
  RLJ_ASSERT_OK(cache.AppendValid(1));
  const torch::Tensor step1 = model->forward_cached(next, next_positions, cache);
  RLJ_ASSERT_OK(cache.AppendValid(1));
  const torch::Tensor step2 = model->forward_cached(next + 1, next_positions + 1, cache);

  for (int64_t b = 0; b < 3; ++b) {
    const int64_t length = static_cast<int64_t>(prompts[b].size());
    std::vector<int64_t> sequence = prompts[b];
    sequence.push_back(40 + b);
    sequence.push_back(41 + b);
    const torch::Tensor alone = model->forward(TokensTensor({sequence}));
    EXPECT_LT(MaxAbsDiff(padded[b].narrow(0, width - length, length), alone[0].narrow(0, 0, length)), 1e-5) << b;
    EXPECT_LT(MaxAbsDiff(prefill[b].narrow(0, width - length, length), alone[0].narrow(0, 0, length)), 1e-4) << b;
    EXPECT_LT(MaxAbsDiff(step1[b][0], alone[0][length]), 1e-4) << b;
    EXPECT_LT(MaxAbsDiff(step2[b][0], alone[0][length + 1]), 1e-4) << b;
    EXPECT_FALSE(torch::isnan(prefill[b]).any().item<bool>()) << "pad queries must not produce NaN";
  }
}

TEST(Transformer, GroupedQueryAttentionEqualsRepeatedKeyValueHeads) {
  // Query head h reads key/value head h / (n_heads / n_kv_heads), as Hugging Face's repeat_kv.
  const TransformerConfig grouped_config = SmallConfig(/*n_kv_heads=*/2);
  const TransformerConfig full_config = SmallConfig(/*n_kv_heads=*/4);
  Transformer grouped = MakeModel(grouped_config, 9, 0.2);
  Transformer full(full_config);
  {
    torch::NoGradGuard no_grad;
    auto source = grouped->named_parameters();
    for (auto& item : full->named_parameters()) {
      const torch::Tensor& from = source[item.key()];
      torch::Tensor to = item.value();
      if (item.key().find("k_proj") != std::string::npos || item.key().find("v_proj") != std::string::npos) {
        // [KVH * hd, D] → [H * hd, D], each kv head repeated for its 2 query heads.
        to.copy_(from.view({2, 1, 8, 32}).expand({2, 2, 8, 32}).reshape({32, 32}));
      } else {
        to.copy_(from);
      }
    }
  }
  const torch::Tensor tokens = TokensTensor({{7, 8, 9, 10, 11, 12, 13}});
  EXPECT_LT(MaxAbsDiff(grouped->forward(tokens), full->forward(tokens)), 1e-5);
}

TEST(Transformer, GradientsReachEveryParameter) {
  for (const bool tied : {true, false}) {
    Transformer model = MakeModel(SmallConfig(2, tied), 10);
    const torch::Tensor tokens = TokensTensor({{1, 2, 3, 4}, {5, 6, 7, 8}});
    const torch::Tensor mask = torch::tensor({{false, true, true, true}, {true, true, true, true}});
    const torch::Tensor positions = torch::tensor({{0L, 0L, 1L, 2L}, {0L, 1L, 2L, 3L}});
    model->forward(tokens, positions, mask).logsumexp(-1).sum().backward();
    for (const auto& item : model->named_parameters()) {
      ASSERT_TRUE(item.value().grad().defined()) << item.key();
      EXPECT_GT(item.value().grad().abs().sum().item<double>(), 0.0) << item.key();
      EXPECT_FALSE(torch::isnan(item.value().grad()).any().item<bool>()) << item.key();
    }
  }
}

TEST(Transformer, CloneHasEqualValuesAndIndependentStorage) {
  const TransformerConfig config = SmallConfig(2, false);
  Transformer source = MakeModel(config, 11, 0.1);
  Transformer copy = CloneTransformer(source);
  const torch::Tensor tokens = TokensTensor({{1, 2, 3}});
  EXPECT_TRUE(torch::equal(source->forward(tokens), copy->forward(tokens)));
  auto source_parameters = source->named_parameters();
  for (const auto& item : copy->named_parameters()) {
    EXPECT_NE(item.value().data_ptr(), source_parameters[item.key()].data_ptr()) << item.key();
  }
  {
    torch::NoGradGuard no_grad;
    for (auto& parameter : copy->parameters()) parameter.add_(1.0);
  }
  EXPECT_TRUE(torch::equal(source_parameters["model.norm.weight"],
                           MakeModel(config, 11, 0.1)->named_parameters()["model.norm.weight"]));
  EXPECT_FALSE(torch::equal(source->forward(tokens), copy->forward(tokens)));
}

TEST(KvCache, ReservesSlotsAndChecksCapacity) {
  const TransformerConfig config = SmallConfig(2);
  KvCache cache(config, 2, 5);
  EXPECT_EQ(cache.keys(0).sizes().vec(), (std::vector<int64_t>{2, 2, 5, 8}));
  EXPECT_EQ(cache.num_layers(), 2);
  RLJ_ASSERT_OK(cache.Append(torch::tensor({{false, true, true}, {true, true, true}})));
  EXPECT_EQ(cache.length(), 3);
  EXPECT_EQ(cache.pending(), 3);
  EXPECT_TRUE(::rlj::testing::FailsWith(cache.AppendValid(1), absl::StatusCode::kFailedPrecondition, "never written"));
  cache.MarkWritten();
  RLJ_ASSERT_OK(cache.AppendValid(2));
  cache.MarkWritten();
  EXPECT_TRUE(
      torch::equal(cache.key_mask(), torch::tensor({{false, true, true, true, true}, {true, true, true, true, true}})));
  EXPECT_TRUE(::rlj::testing::FailsWith(cache.AppendValid(1), absl::StatusCode::kOutOfRange, "capacity of 5"));
  EXPECT_TRUE(::rlj::testing::FailsWith(cache.Append(torch::ones({3, 1}, torch::kBool)),
                                        absl::StatusCode::kInvalidArgument, "[2, T_new]"));
  cache.Reset();
  EXPECT_EQ(cache.length(), 0);
  EXPECT_THROW(KvCache(config, 1, 65), c10::Error);  // beyond max_seq_len 64
}

TEST(KvCache, KeepRowsContinuesTheKeptRowsExactly) {
  const TransformerConfig config = SmallConfig(2);
  Transformer model = MakeModel(config, 12, 0.2);
  torch::InferenceMode inference;
  const torch::Tensor tokens = TokensTensor({{1, 2, 3}, {4, 5, 6}, {7, 8, 9}});
  KvCache all(config, 3, 6);
  RLJ_ASSERT_OK(all.Append(torch::ones({3, 3}, torch::kBool)));
  model->forward_cached(tokens, torch::arange(3).repeat({3, 1}), all);
  RLJ_ASSERT_OK(all.KeepRows({0, 2}));
  EXPECT_EQ(all.batch(), 2);
  EXPECT_TRUE(::rlj::testing::FailsWith(all.KeepRows({1, 0}), absl::StatusCode::kInvalidArgument, "ascending"));
  RLJ_ASSERT_OK(all.AppendValid(1));
  const torch::Tensor kept =
      model->forward_cached(torch::tensor({{50L}, {70L}}), torch::full({2, 1}, 3, torch::kLong), all);

  const torch::Tensor alone0 = model->forward(TokensTensor({{1, 2, 3, 50}}));
  const torch::Tensor alone2 = model->forward(TokensTensor({{7, 8, 9, 70}}));
  EXPECT_LT(MaxAbsDiff(kept[0][0], alone0[0][3]), 1e-4);
  EXPECT_LT(MaxAbsDiff(kept[1][0], alone2[0][3]), 1e-4);
}

TEST(Transformer, ForwardCachedRequiresReservedSlots) {
  const TransformerConfig config = SmallConfig(2);
  Transformer model = MakeModel(config, 13);
  torch::InferenceMode inference;
  KvCache cache(config, 1, 4);
  EXPECT_THROW(model->forward_cached(TokensTensor({{1, 2}}), torch::arange(2).view({1, 2}), cache), c10::Error);
  RLJ_ASSERT_OK(cache.Append(torch::ones({1, 2}, torch::kBool)));
  EXPECT_THROW(model->forward_cached(TokensTensor({{1, 2, 3}}), torch::arange(3).view({1, 3}), cache), c10::Error);
}

}  // namespace
}  // namespace rlj
