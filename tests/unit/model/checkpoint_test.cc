// checkpoint_test.cc: checkpoint directories (config.json, model.safetensors, rlj_state.json): bit-exact
// round trips, atomic replacement, Hugging Face config parsing and the named-tensor loader's errors.
#include "model/checkpoint/checkpoint.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "model_test_util.h"
#include "test_util.h"

namespace rlj {
namespace {

using ::rlj::testing::FailsWith;
using ::rlj::testing::MakeModel;
using ::rlj::testing::ScratchDir;
using ::rlj::testing::SmallConfig;

TEST(Checkpoint, SaveLoadRoundTripIsBitExact) {
  for (const auto& [kv_heads, tied] : std::vector<std::pair<int, bool>>{{4, true}, {2, false}}) {
    ScratchDir scratch;
    TransformerConfig config = SmallConfig(kv_heads, tied);
    config.rope_theta = 500000.0;
    config.norm_eps = 1e-6;
    Transformer model = MakeModel(config, 21, 0.1);
    const std::string dir = scratch.file("ckpt");
    RLJ_ASSERT_OK(SaveCheckpoint(dir, model, {.step = 17, .policy_version = 5}));
    RLJ_ASSERT_OK_AND_ASSIGN(LoadedCheckpoint loaded, LoadCheckpoint(dir));
    EXPECT_EQ(loaded.state.step, 17);
    EXPECT_EQ(loaded.state.policy_version, 5);
    EXPECT_EQ(loaded.config.ToProto().SerializeAsString(), config.ToProto().SerializeAsString());
    auto saved = model->named_parameters();
    const auto restored = loaded.model->named_parameters();
    ASSERT_EQ(restored.size(), saved.size());
    for (const auto& item : restored) EXPECT_TRUE(torch::equal(item.value(), saved[item.key()])) << item.key();
    const torch::Tensor tokens = torch::tensor({{1L, 2L, 3L, 4L}});
    EXPECT_TRUE(torch::equal(loaded.model->forward(tokens), model->forward(tokens)));
    // Nothing but the three files, and no temporary sibling left behind.
    std::vector<std::string> files;
    for (const auto& entry : std::filesystem::directory_iterator(dir))
      files.push_back(entry.path().filename().string());
    std::sort(files.begin(), files.end());
    EXPECT_EQ(files, (std::vector<std::string>{"config.json", "model.safetensors", "rlj_state.json"}));
    EXPECT_EQ(std::distance(std::filesystem::directory_iterator(scratch.path()), std::filesystem::directory_iterator()),
              1);
  }
}

TEST(Checkpoint, ConfigJsonIsHuggingFaceLlama) {
  ScratchDir scratch;
  Transformer model = MakeModel(SmallConfig(2, false), 22);
  RLJ_ASSERT_OK(SaveCheckpoint(scratch.file("c"), model, {.step = 1, .policy_version = 2}));
  RLJ_ASSERT_OK_AND_ASSIGN(const std::string text, ReadFile(scratch.file("c/config.json")));
  const nlohmann::json json = nlohmann::json::parse(text);
  EXPECT_EQ(json["architectures"], nlohmann::json::array({"LlamaForCausalLM"}));
  EXPECT_EQ(json["model_type"], "llama");
  EXPECT_EQ(json["hidden_size"], 32);
  EXPECT_EQ(json["intermediate_size"], 64);
  EXPECT_EQ(json["num_attention_heads"], 4);
  EXPECT_EQ(json["num_hidden_layers"], 2);
  EXPECT_EQ(json["num_key_value_heads"], 2);
  EXPECT_EQ(json["rms_norm_eps"], 1e-5);
  EXPECT_EQ(json["rope_theta"], 10000.0);
  EXPECT_EQ(json["tie_word_embeddings"], false);
  EXPECT_EQ(json["vocab_size"], 259);
  EXPECT_EQ(json["max_position_embeddings"], 64);
  EXPECT_EQ(json["torch_dtype"], "float32");
  EXPECT_EQ(json["hidden_act"], "silu");
  RLJ_ASSERT_OK_AND_ASSIGN(const std::string state, ReadFile(scratch.file("c/rlj_state.json")));
  const nlohmann::json state_json = nlohmann::json::parse(state);
  EXPECT_EQ(state_json["step"], 1);
  EXPECT_EQ(state_json["policy_version"], 2);
  // Sizes and CRC-32C of the other files, verified on load.
  EXPECT_EQ(state_json["files"]["model.safetensors"]["bytes"],
            std::filesystem::file_size(scratch.file("c/model.safetensors")));
  EXPECT_TRUE(state_json["files"].contains("config.json"));
}

TEST(Checkpoint, SaveReplacesAnExistingCheckpoint) {
  ScratchDir scratch;
  const std::string dir = scratch.file("runs/x/checkpoints/latest");  // parents are created
  Transformer first = MakeModel(SmallConfig(), 23);
  Transformer second = MakeModel(SmallConfig(2, false), 24);
  RLJ_ASSERT_OK(SaveCheckpoint(dir, first, {.step = 1, .policy_version = 1}));
  std::ofstream(dir + "/stale.txt") << "from the old checkpoint";
  RLJ_ASSERT_OK(SaveCheckpoint(dir, second, {.step = 2, .policy_version = 9}));
  RLJ_ASSERT_OK_AND_ASSIGN(LoadedCheckpoint loaded, LoadCheckpoint(dir));
  EXPECT_EQ(loaded.state.policy_version, 9);
  EXPECT_EQ(loaded.config.n_kv_heads, 2);
  EXPECT_FALSE(std::filesystem::exists(dir + "/stale.txt"));
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(scratch.file("runs/x/checkpoints")),
                          std::filesystem::directory_iterator()),
            1);
}

TEST(Checkpoint, LoadErrorsNameTheProblem) {
  ScratchDir scratch;
  EXPECT_TRUE(FailsWith(LoadCheckpoint(scratch.file("nothing")), absl::StatusCode::kNotFound, "config.json"));
  Transformer model = MakeModel(SmallConfig(), 25);
  const std::string dir = scratch.file("c");
  RLJ_ASSERT_OK(SaveCheckpoint(dir, model, {}));
  std::filesystem::remove(dir + "/rlj_state.json");  // a plain Hugging Face directory: state defaults to 0
  RLJ_ASSERT_OK_AND_ASSIGN(LoadedCheckpoint plain, LoadCheckpoint(dir));
  EXPECT_EQ(plain.state.step, 0);
  std::ofstream(dir + "/rlj_state.json") << R"({"step": "three"})";
  EXPECT_TRUE(FailsWith(LoadCheckpoint(dir), absl::StatusCode::kDataLoss, "field 'step' must be an integer"));
  std::filesystem::remove(dir + "/model.safetensors");
  EXPECT_TRUE(FailsWith(LoadCheckpoint(dir), absl::StatusCode::kNotFound, "model.safetensors does not exist"));
}

TEST(LoadNamedTensors, ErrorsNameTheTensor) {
  Transformer model = MakeModel(SmallConfig(2, false), 26);
  const NamedTensors good = NamedParameters(model);
  auto without = [&](const std::string& name) {
    NamedTensors tensors;
    for (const auto& item : good) {
      if (item.first != name) tensors.emplace_back(item.first, item.second.clone());
    }
    return tensors;
  };
  EXPECT_TRUE(FailsWith(LoadNamedTensors(model, without("model.layers.1.mlp.up_proj.weight")),
                        absl::StatusCode::kNotFound, "missing tensor 'model.layers.1.mlp.up_proj.weight'"));
  NamedTensors extra = without("");
  extra.emplace_back("model.layers.9.mlp.up_proj.weight", torch::zeros({64, 32}));
  EXPECT_TRUE(FailsWith(LoadNamedTensors(model, extra), absl::StatusCode::kInvalidArgument,
                        "unknown tensor 'model.layers.9.mlp.up_proj.weight'"));
  NamedTensors wrong = without("model.norm.weight");
  wrong.emplace_back("model.norm.weight", torch::ones({33}));
  EXPECT_TRUE(FailsWith(LoadNamedTensors(model, wrong), absl::StatusCode::kInvalidArgument,
                        "tensor 'model.norm.weight' has shape [33], the model expects [32]"));

  // A valid set in bfloat16 and another order loads, converting dtypes; RoPE's inv_freq is ignored.
  NamedTensors converted;
  for (auto it = good.rbegin(); it != good.rend(); ++it)
    converted.emplace_back(it->first, (it->second * 2).to(torch::kBFloat16));
  converted.emplace_back("model.layers.0.self_attn.rotary_emb.inv_freq", torch::ones({4}));
  Transformer target = MakeModel(SmallConfig(2, false), 27);
  RLJ_ASSERT_OK(LoadNamedTensors(target, converted));
  auto loaded = target->named_parameters();
  for (const auto& [name, tensor] : converted) {
    if (loaded.contains(name)) {
      EXPECT_EQ(loaded[name].scalar_type(), torch::kFloat);
      EXPECT_TRUE(torch::equal(loaded[name], tensor.to(torch::kFloat))) << name;
    }
  }
}

TEST(LoadNamedTensors, TiedModelAcceptsOnlyAnIdenticalLmHead) {
  Transformer model = MakeModel(SmallConfig(4, true), 28);
  NamedTensors tensors = NamedParameters(model);
  ASSERT_EQ(tensors.front().first, "model.embed_tokens.weight");
  tensors.emplace_back("lm_head.weight", tensors.front().second.clone());
  RLJ_EXPECT_OK(LoadNamedTensors(model, tensors));
  tensors.back().second.add_(1.0);
  EXPECT_TRUE(FailsWith(LoadNamedTensors(model, tensors), absl::StatusCode::kInvalidArgument, "lm_head.weight"));
}

TEST(HfConfig, RoundTripAndHuggingFaceDefaults) {
  TransformerConfig config = SmallConfig(2, false);
  config.rope_theta = 1e6;
  RLJ_ASSERT_OK_AND_ASSIGN(const TransformerConfig back,
                           TransformerConfigFromHfJson(TransformerConfigToHfJson(config), "c"));
  EXPECT_EQ(back.ToProto().SerializeAsString(), config.ToProto().SerializeAsString());

  // A TinyLlama-style config: num_key_value_heads given, extra keys ignored, defaults as in LlamaConfig.
  const std::string tiny_llama = R"({
    "architectures": ["LlamaForCausalLM"], "bos_token_id": 1, "eos_token_id": 2, "hidden_act": "silu",
    "hidden_size": 2048, "initializer_range": 0.02, "intermediate_size": 5632, "max_position_embeddings": 2048,
    "model_type": "llama", "num_attention_heads": 32, "num_hidden_layers": 22, "num_key_value_heads": 4,
    "pretraining_tp": 1, "rms_norm_eps": 1e-05, "rope_scaling": null, "tie_word_embeddings": false,
    "torch_dtype": "bfloat16", "transformers_version": "4.35.0", "use_cache": true, "vocab_size": 32000})";
  RLJ_ASSERT_OK_AND_ASSIGN(const TransformerConfig tiny, TransformerConfigFromHfJson(tiny_llama, "tiny"));
  EXPECT_EQ(tiny.d_model, 2048);
  EXPECT_EQ(tiny.n_kv_heads, 4);
  EXPECT_EQ(tiny.n_layers, 22);
  EXPECT_EQ(tiny.rope_theta, 10000.0);
  EXPECT_FALSE(tiny.tie_embeddings);
  EXPECT_EQ(tiny.num_parameters(), 1100048384);  // TinyLlama-1.1B's published count

  nlohmann::json json = nlohmann::json::parse(tiny_llama);
  json.erase("num_key_value_heads");
  json.erase("tie_word_embeddings");
  RLJ_ASSERT_OK_AND_ASSIGN(const TransformerConfig defaults, TransformerConfigFromHfJson(json.dump(), "d"));
  EXPECT_EQ(defaults.n_kv_heads, 32);
  EXPECT_FALSE(defaults.tie_embeddings);
}

TEST(HfConfig, RejectsUnsupportedOrMissingFields) {
  const auto code = absl::StatusCode::kInvalidArgument;
  const nlohmann::json base = nlohmann::json::parse(TransformerConfigToHfJson(SmallConfig()));
  auto with = [&](auto change) {
    nlohmann::json json = base;
    change(json);
    return TransformerConfigFromHfJson(json.dump(), "dir/config.json");
  };
  EXPECT_TRUE(FailsWith(with([](auto& j) { j["model_type"] = "gemma"; }), code,
                        "dir/config.json: field 'model_type' is 'gemma'; supported: llama, qwen2, mistral"));
  EXPECT_TRUE(FailsWith(with([](auto& j) { j.erase("model_type"); }), code, "missing field 'model_type'"));
  for (const char* field : {"hidden_size", "intermediate_size", "num_attention_heads", "num_hidden_layers",
                            "vocab_size", "max_position_embeddings", "rms_norm_eps"}) {
    EXPECT_TRUE(FailsWith(with([&](auto& j) { j.erase(field); }), code, absl::StrCat("missing field '", field, "'")))
        << field;
  }
  EXPECT_TRUE(
      FailsWith(with([](auto& j) { j["hidden_size"] = "32"; }), code, "field 'hidden_size' must be an integer"));
  EXPECT_TRUE(
      FailsWith(with([](auto& j) { j["num_hidden_layers"] = 0; }), code, "'num_hidden_layers' must be a positive"));
  EXPECT_TRUE(FailsWith(with([](auto& j) { j["num_key_value_heads"] = 3; }), code, "num_key_value_heads"));
  EXPECT_TRUE(FailsWith(with([](auto& j) {
                          j["hidden_size"] = 34;
                          j.erase("head_dim");
                        }),
                        code, "hidden_size: must be divisible by num_attention_heads"));
  EXPECT_TRUE(FailsWith(with([](auto& j) { j["hidden_act"] = "gelu"; }), code, "'hidden_act' is 'gelu'"));
  EXPECT_TRUE(FailsWith(with([](auto& j) {
                          j["model_type"] = "mistral";
                          j["attention_bias"] = true;
                        }),
                        code, "'attention_bias' must be false for mistral"));
  EXPECT_TRUE(FailsWith(with([](auto& j) { j["mlp_bias"] = true; }), code, "'mlp_bias' must be false"));
  EXPECT_TRUE(FailsWith(with([](auto& j) {
                          j["rope_scaling"] = {{"rope_type", "yarn"}, {"factor", 4.0}};
                        }),
                        code, "'rope_scaling.rope_type' is 'yarn'; only default, linear and llama3 are supported"));
  EXPECT_TRUE(FailsWith(with([](auto& j) {
                          j["rope_scaling"] = {{"type", "linear"}};
                        }),
                        code, "rope_scaling: missing field 'factor'"));
  EXPECT_TRUE(FailsWith(with([](auto& j) {
                          j["model_type"] = "qwen2";
                          j["use_sliding_window"] = true;
                          j["max_window_layers"] = 1;
                          j["sliding_window"] = 8;
                          j["num_hidden_layers"] = 2;
                        }),
                        code, "'max_window_layers' is 1: a sliding window on only some layers is not supported"));
  EXPECT_TRUE(FailsWith(with([](auto& j) { j["head_dim"] = 16; }), code, "head_dim"));
  EXPECT_TRUE(FailsWith(TransformerConfigFromHfJson("{nope", "x.json"), code, "x.json: not valid JSON"));
}

}  // namespace
}  // namespace rlj
