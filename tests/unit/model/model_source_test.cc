// model_source_test.cc: LoadStartingModel (init checkpoint vs explicitly set model.* keys, seeded random init)
// and checkpoint loading from Hugging Face layouts: sharded model.safetensors.index.json, BF16/F16 weights.
#include "model/model_source.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include "common/file_util.h"
#include "model/checkpoint/checkpoint.h"
#include "model_test_util.h"
#include "test_util.h"

namespace rlj {
namespace {

using ::rlj::testing::FailsWith;
using ::rlj::testing::MakeModel;
using ::rlj::testing::ScratchDir;
using ::rlj::testing::SmallConfig;

bool SameParameters(Transformer& a, Transformer& b) {
  auto other = b->named_parameters();
  for (const auto& item : a->named_parameters()) {
    if (!other.contains(item.key()) || !torch::equal(item.value(), other[item.key()])) return false;
  }
  return a->named_parameters().size() == other.size();
}

TEST(ModelSource, RandomInitIsSeededAndFollowsTheYamlShape) {
  v1::RunConfig config;
  config.set_seed(9);
  config.mutable_model()->set_d_model(32);
  config.mutable_model()->set_n_heads(4);
  config.mutable_model()->set_n_layers(1);
  config.mutable_model()->set_ffn_hidden(48);
  Transformer a{nullptr}, b{nullptr};
  StartingModelInfo info;
  RLJ_ASSERT_OK(LoadStartingModel(config, &a, &info));
  RLJ_ASSERT_OK(LoadStartingModel(config, &b));
  EXPECT_EQ(info.source, "");
  EXPECT_EQ(a->config().d_model, 32);
  EXPECT_EQ(a->config().ffn_hidden, 48);
  EXPECT_EQ(a->config().vocab_size, 259);  // the proto default
  EXPECT_TRUE(SameParameters(a, b));
  config.set_seed(10);
  RLJ_ASSERT_OK(LoadStartingModel(config, &b));
  EXPECT_FALSE(SameParameters(a, b));
}

TEST(ModelSource, InitCheckpointDefinesTheShapeAndExplicitKeysMustAgree) {
  ScratchDir scratch;
  TransformerConfig shape = SmallConfig(2, false);
  shape.architecture = "qwen2";
  Transformer saved = MakeModel(shape, 41, 0.1);
  RLJ_ASSERT_OK(SaveCheckpoint(scratch.file("ckpt"), saved, {.step = 12, .policy_version = 3}));

  v1::RunConfig config;
  config.mutable_model()->set_init_checkpoint(scratch.file("ckpt"));
  config.mutable_model()->set_n_kv_heads(2);  // agrees
  Transformer model{nullptr};
  StartingModelInfo info;
  RLJ_ASSERT_OK(LoadStartingModel(config, &model, &info));
  EXPECT_EQ(info.source, scratch.file("ckpt"));
  EXPECT_EQ(info.state.step, 12);
  EXPECT_EQ(model->config().architecture, "qwen2");
  EXPECT_EQ(model->config().d_model, 32);  // the YAML default (128) does not apply: config.json does
  EXPECT_TRUE(SameParameters(model, saved));

  config.mutable_model()->set_d_model(64);
  config.mutable_model()->set_architecture(v1::ModelConfig::llama);
  EXPECT_TRUE(FailsWith(LoadStartingModel(config, &model), absl::StatusCode::kInvalidArgument,
                        "model.architecture is llama in the config but qwen2 in config.json (model_type); "
                        "model.d_model is 64 in the config but 32 in config.json (hidden_size)"));
  config.mutable_model()->clear_d_model();
  config.mutable_model()->clear_architecture();
  config.mutable_model()->set_n_kv_heads(0);  // 0 = n_heads = 4, the checkpoint has 2
  EXPECT_TRUE(FailsWith(LoadStartingModel(config, &model), absl::StatusCode::kInvalidArgument,
                        "model.n_kv_heads is 4 in the config but 2 in config.json (num_key_value_heads)"));
  config.mutable_model()->set_init_checkpoint(scratch.file("missing"));
  EXPECT_FALSE(LoadStartingModel(config, &model).ok());
}

// Writes `model` as Hugging Face does for big models: shards plus model.safetensors.index.json, in `dtype`.
void WriteSharded(const std::string& dir, Transformer& model, torch::ScalarType dtype, nlohmann::json* index_out) {
  ASSERT_TRUE(MakeDirectories(dir).ok());
  ASSERT_TRUE(WriteFileAtomically(dir + "/config.json", TransformerConfigToHfJson(model->config())).ok());
  NamedTensors first, second;
  nlohmann::json index = {{"metadata", {{"total_size", 0}}}, {"weight_map", nlohmann::json::object()}};
  for (auto& [name, tensor] : NamedParameters(model)) {
    const bool in_first = name.find("layers.1.") == std::string::npos && name != "lm_head.weight";
    (in_first ? first : second).emplace_back(name, tensor.detach().to(dtype));
    index["weight_map"][name] = in_first ? "model-00001-of-00002.safetensors" : "model-00002-of-00002.safetensors";
  }
  ASSERT_TRUE(WriteSafetensors(dir + "/model-00001-of-00002.safetensors", first).ok());
  ASSERT_TRUE(WriteSafetensors(dir + "/model-00002-of-00002.safetensors", second).ok());
  ASSERT_TRUE(WriteFileAtomically(dir + "/model.safetensors.index.json", index.dump()).ok());
  *index_out = index;
}

TEST(CheckpointShards, ShardedBf16AndF16LoadConvertedAndErrorsNameTheTensor) {
  ScratchDir scratch;
  Transformer model = MakeModel(SmallConfig(2, false), 42, 0.1);
  for (const auto dtype : {torch::kFloat, torch::kBFloat16, torch::kHalf}) {
    SCOPED_TRACE(c10::toString(dtype));
    const std::string dir = scratch.file(std::string("sharded-") + c10::toString(dtype));
    nlohmann::json index;
    WriteSharded(dir, model, dtype, &index);
    RLJ_ASSERT_OK_AND_ASSIGN(LoadedCheckpoint loaded, LoadCheckpoint(dir));
    auto original = model->named_parameters();
    for (const auto& item : loaded.model->named_parameters()) {
      EXPECT_EQ(item.value().scalar_type(), torch::kFloat);
      EXPECT_TRUE(torch::equal(item.value(), original[item.key()].to(dtype).to(torch::kFloat))) << item.key();
    }
    if (dtype != torch::kFloat) continue;
    // A tensor the index places in the other shard, one it does not list, one missing.
    nlohmann::json wrong = index;
    wrong["weight_map"]["model.norm.weight"] = "model-00002-of-00002.safetensors";
    RLJ_ASSERT_OK(WriteFileAtomically(dir + "/model.safetensors.index.json", wrong.dump()));
    EXPECT_TRUE(FailsWith(LoadCheckpoint(dir), absl::StatusCode::kDataLoss,
                          "tensor 'model.norm.weight' belongs to model-00002-of-00002.safetensors"));
    wrong = index;
    wrong["weight_map"].erase("model.norm.weight");
    RLJ_ASSERT_OK(WriteFileAtomically(dir + "/model.safetensors.index.json", wrong.dump()));
    EXPECT_TRUE(FailsWith(LoadCheckpoint(dir), absl::StatusCode::kDataLoss,
                          "tensor 'model.norm.weight' is not in model.safetensors.index.json"));
    wrong = index;
    wrong["weight_map"]["model.extra.weight"] = "model-00001-of-00002.safetensors";
    RLJ_ASSERT_OK(WriteFileAtomically(dir + "/model.safetensors.index.json", wrong.dump()));
    EXPECT_TRUE(FailsWith(LoadCheckpoint(dir), absl::StatusCode::kDataLoss, "missing tensor 'model.extra.weight'"));
    wrong = index;
    wrong["weight_map"]["model.norm.weight"] = "../elsewhere.safetensors";
    RLJ_ASSERT_OK(WriteFileAtomically(dir + "/model.safetensors.index.json", wrong.dump()));
    EXPECT_TRUE(FailsWith(LoadCheckpoint(dir), absl::StatusCode::kDataLoss, "must be a file name in"));
    RLJ_ASSERT_OK(WriteFileAtomically(dir + "/model.safetensors.index.json", "{\"weight_map\": {}}"));
    EXPECT_TRUE(FailsWith(LoadCheckpoint(dir), absl::StatusCode::kDataLoss, "no 'weight_map'"));
    // A shard truncated mid-tensor.
    RLJ_ASSERT_OK(WriteFileAtomically(dir + "/model.safetensors.index.json", index.dump()));
    RLJ_ASSERT_OK_AND_ASSIGN(std::string shard, ReadFile(dir + "/model-00002-of-00002.safetensors"));
    shard.resize(shard.size() - 100);
    RLJ_ASSERT_OK(WriteFileAtomically(dir + "/model-00002-of-00002.safetensors", shard));
    EXPECT_TRUE(FailsWith(LoadCheckpoint(dir), absl::StatusCode::kDataLoss, "model-00002-of-00002.safetensors"));
  }
}

}  // namespace
}  // namespace rlj
