// golden_test.cc: logits of small checked-in checkpoints against an independent NumPy implementation
// (tests/golden/make_llama_golden.py), llm.c style; plus the writer of those checkpoints.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/file_util.h"
#include "model/checkpoint/checkpoint.h"
#include "model/kv_cache.h"
#include "model_test_util.h"
#include "test_util.h"

namespace rlj {
namespace {

const std::string kGoldenDir = std::string(RLJ_SOURCE_DIR) + "/tests/golden";

// The checkpoints the golden file was made from: tiny_llama (multi-head, tied embeddings), tiny_llama_gqa
// (2 key/value heads for 4 query heads, separate lm_head, other rope_theta and norm_eps), tiny_qwen2 (q/k/v
// biases, grouped-query) and tiny_mistral (grouped-query, a sliding window of 4, shorter than the 14 tokens).
const std::vector<std::string> kGoldenCheckpoints = {"tiny_llama", "tiny_llama_gqa", "tiny_qwen2", "tiny_mistral"};

TransformerConfig GoldenConfig(const std::string& name) {
  const bool grouped = name != "tiny_llama";
  TransformerConfig config;
  config.vocab_size = 48;
  config.d_model = 32;
  config.n_layers = 2;
  config.n_heads = 4;
  config.n_kv_heads = grouped ? 2 : 4;
  config.ffn_hidden = 48;
  config.max_seq_len = 32;
  config.rope_theta = name == "tiny_llama_gqa" ? 500.0 : 10000.0;
  config.norm_eps = name == "tiny_llama_gqa" ? 1e-6 : 1e-5;
  config.tie_embeddings = name == "tiny_llama" || name == "tiny_qwen2";
  if (name == "tiny_qwen2") config.architecture = "qwen2";
  if (name == "tiny_mistral") {
    config.architecture = "mistral";
    config.sliding_window = 4;
  }
  return config;
}

// Regenerates the checkpoints (then run make_llama_golden.py): rlj_model_tests
// --gtest_also_run_disabled_tests --gtest_filter='Golden.DISABLED_WriteTinyCheckpoints'
// The first two are kept as they are when they exist (their golden values predate the other two).
TEST(Golden, DISABLED_WriteTinyCheckpoints) {
  for (size_t i = 0; i < kGoldenCheckpoints.size(); ++i) {
    const std::string& name = kGoldenCheckpoints[i];
    if (i < 2 && ReadFile(kGoldenDir + "/" + name + "/config.json").ok()) continue;
    // Matrices from normal(0, 0.2), 1-D parameters (norm weights, q/k/v biases) from uniform(0.5, 1.5).
    Transformer model = ::rlj::testing::MakeModel(GoldenConfig(name), 2023 + i, 0.2);
    RLJ_ASSERT_OK(SaveCheckpoint(kGoldenDir + "/" + name, model, {}));
  }
}

TEST(Golden, LogitsMatchNumPyReference) {
  RLJ_ASSERT_OK_AND_ASSIGN(const std::string text, ReadFile(kGoldenDir + "/tiny_llama_logits.json"));
  const nlohmann::json golden = nlohmann::json::parse(text);
  ASSERT_EQ(golden["cases"].size(), kGoldenCheckpoints.size());
  for (const auto& golden_case : golden["cases"]) {
    const std::string name = golden_case["checkpoint"];
    SCOPED_TRACE(name);
    RLJ_ASSERT_OK_AND_ASSIGN(LoadedCheckpoint loaded, LoadCheckpoint(kGoldenDir + "/" + name));
    const TransformerConfig expected_config = GoldenConfig(name);
    EXPECT_EQ(loaded.config.ToProto().SerializeAsString(), expected_config.ToProto().SerializeAsString());

    const std::vector<int64_t> ids = golden_case["tokens"];
    const auto length = static_cast<int64_t>(ids.size());
    const std::vector<std::vector<double>> rows = golden_case["logits"];
    torch::Tensor expected = torch::empty({1, length, loaded.config.vocab_size}, torch::kDouble);
    for (int64_t t = 0; t < length; ++t) {
      for (int64_t v = 0; v < loaded.config.vocab_size; ++v) expected[0][t][v] = rows.at(t).at(v);
    }
    torch::InferenceMode inference;
    const torch::Tensor tokens = torch::tensor(ids).view({1, length});
    const torch::Tensor logits = loaded.model->forward(tokens);
    EXPECT_LE(::rlj::testing::MaxAbsDiff(logits, expected), 1e-4);
    EXPECT_GT(expected.abs().max().item<double>(), 1.0) << "golden logits should not be near zero";

    // The cached path on the same data: prefill of 5, then one token at a time.
    KvCache cache(loaded.config, 1, length);
    RLJ_ASSERT_OK(cache.Append(torch::ones({1, 5}, torch::kBool)));
    std::vector<torch::Tensor> pieces{
        loaded.model->forward_cached(tokens.narrow(1, 0, 5), torch::arange(5).view({1, 5}), cache)};
    for (int64_t t = 5; t < length; ++t) {
      RLJ_ASSERT_OK(cache.AppendValid(1));
      pieces.push_back(
          loaded.model->forward_cached(tokens.narrow(1, t, 1), torch::full({1, 1}, t, torch::kLong), cache));
    }
    EXPECT_LE(::rlj::testing::MaxAbsDiff(torch::cat(pieces, 1), expected), 1e-4);
  }
}

}  // namespace
}  // namespace rlj
