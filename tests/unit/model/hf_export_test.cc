// hf_export_test.cc: `rlj export`'s ExportHuggingFaceModel: a plain Hugging Face directory (no rlj_state.json)
// that loads back bit-exact (float32) or rounded (bfloat16), with the tokenizer files and special ids.
#include "model/checkpoint/hf_export.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "common/file_util.h"
#include "common/tokenizer/byte_tokenizer.h"
#include "common/tokenizer/chat_template.h"
#include "common/tokenizer/tokenizer.h"
#include "model/checkpoint/checkpoint.h"
#include "model_test_util.h"
#include "test_util.h"

namespace rlj {
namespace {

using ::rlj::testing::FailsWith;
using ::rlj::testing::MakeModel;
using ::rlj::testing::ScratchDir;
using ::rlj::testing::SmallConfig;

const std::string kTokenizers = std::string(RLJ_SOURCE_DIR) + "/tests/golden/tokenizers";

std::vector<std::string> Files(const std::string& dir) {
  std::vector<std::string> files;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) files.push_back(entry.path().filename().string());
  std::sort(files.begin(), files.end());
  return files;
}

nlohmann::json ReadJson(const std::string& path) { return nlohmann::json::parse(ReadFile(path).value()); }

TEST(HfExport, ByteStudentBecomesAPlainHuggingFaceDirectoryThatLoadsBitExact) {
  ScratchDir scratch;
  Transformer model = MakeModel(SmallConfig(2, false), 31, 0.1);
  RLJ_ASSERT_OK(SaveCheckpoint(scratch.file("ckpt"), model, {.step = 4, .policy_version = 4}));
  RLJ_ASSERT_OK(ExportHuggingFaceModel(scratch.file("ckpt"), scratch.file("hf")));
  EXPECT_EQ(Files(scratch.file("hf")),
            (std::vector<std::string>{"config.json", "generation_config.json", "model.safetensors", "tokenizer.json",
                                      "tokenizer_config.json"}));
  const nlohmann::json config = ReadJson(scratch.file("hf/config.json"));
  EXPECT_EQ(config["torch_dtype"], "float32");
  EXPECT_EQ(config["bos_token_id"], 256);
  EXPECT_EQ(config["eos_token_id"], 257);
  const nlohmann::json generation = ReadJson(scratch.file("hf/generation_config.json"));
  EXPECT_EQ(generation["bos_token_id"], 256);
  EXPECT_EQ(generation["eos_token_id"], 257);
  EXPECT_EQ(generation["pad_token_id"], 258);
  EXPECT_EQ(ReadFile(scratch.file("hf/tokenizer.json")).value(), ByteTokenizerJson());

  RLJ_ASSERT_OK_AND_ASSIGN(LoadedCheckpoint loaded, LoadCheckpoint(scratch.file("hf")));
  EXPECT_EQ(loaded.state.step, 0);  // no rlj_state.json: a fresh start
  auto original = model->named_parameters();
  for (const auto& item : loaded.model->named_parameters()) {
    EXPECT_TRUE(torch::equal(item.value(), original[item.key()])) << item.key();
  }
  RLJ_ASSERT_OK_AND_ASSIGN(std::unique_ptr<Tokenizer> tokenizer, LoadTokenizer(scratch.file("hf")));
  EXPECT_EQ(tokenizer->EncodePrompt("hé"), ByteTokenizer().EncodePrompt("hé"));
  // An export of the export is the same bytes (load → save → load is exact).
  RLJ_ASSERT_OK(ExportHuggingFaceModel(scratch.file("hf"), scratch.file("hf2")));
  EXPECT_EQ(ReadFile(scratch.file("hf2/model.safetensors")).value(),
            ReadFile(scratch.file("hf/model.safetensors")).value());
  EXPECT_EQ(ReadFile(scratch.file("hf2/config.json")).value(), ReadFile(scratch.file("hf/config.json")).value());
  // An existing model is never overwritten.
  EXPECT_TRUE(FailsWith(ExportHuggingFaceModel(scratch.file("ckpt"), scratch.file("hf")),
                        absl::StatusCode::kAlreadyExists, "already holds a model"));
}

TEST(HfExport, Bfloat16WeightsAndARealTokenizerWithSeveralStopIds) {
  ScratchDir scratch;
  TransformerConfig shape = SmallConfig(2, true);
  shape.vocab_size = 128256;  // Llama 3's
  shape.d_model = 16;
  shape.n_heads = 2;
  shape.n_kv_heads = 1;
  shape.ffn_hidden = 32;
  shape.n_layers = 1;
  Transformer model = MakeModel(shape, 32);
  RLJ_ASSERT_OK(SaveCheckpoint(scratch.file("ckpt"), model, {}));
  HfExportOptions options;
  options.dtype = "bfloat16";
  options.tokenizer = kTokenizers + "/llama3-trimmed";
  RLJ_ASSERT_OK(ExportHuggingFaceModel(scratch.file("ckpt"), scratch.file("hf"), options));
  const nlohmann::json config = ReadJson(scratch.file("hf/config.json"));
  EXPECT_EQ(config["torch_dtype"], "bfloat16");
  EXPECT_EQ(config["bos_token_id"], 128000);
  // Llama 3.1's generation_config.json is copied as it is.
  EXPECT_EQ(ReadFile(scratch.file("hf/generation_config.json")).value(),
            ReadFile(kTokenizers + "/llama3-trimmed/generation_config.json").value());
  const std::vector<int> eos = config["eos_token_id"];
  for (const int id : {128001, 128008, 128009}) EXPECT_NE(std::find(eos.begin(), eos.end(), id), eos.end()) << id;
  RLJ_ASSERT_OK_AND_ASSIGN(NamedTensors stored, ReadSafetensors(scratch.file("hf/model.safetensors")));
  for (const auto& [name, tensor] : stored) EXPECT_EQ(tensor.scalar_type(), torch::kBFloat16) << name;
  RLJ_ASSERT_OK_AND_ASSIGN(LoadedCheckpoint loaded, LoadCheckpoint(scratch.file("hf")));
  auto original = model->named_parameters();
  for (const auto& item : loaded.model->named_parameters()) {
    EXPECT_TRUE(torch::equal(item.value(), original[item.key()].to(torch::kBFloat16).to(torch::kFloat))) << item.key();
  }
  options.dtype = "int8";
  EXPECT_TRUE(FailsWith(ExportHuggingFaceModel(scratch.file("ckpt"), scratch.file("x"), options),
                        absl::StatusCode::kInvalidArgument, "dtype 'int8'"));
  // A tokenizer larger than the model is refused.
  Transformer small = MakeModel(SmallConfig(), 33);
  RLJ_ASSERT_OK(SaveCheckpoint(scratch.file("small"), small, {}));
  options.dtype = "float32";
  EXPECT_TRUE(FailsWith(ExportHuggingFaceModel(scratch.file("small"), scratch.file("y"), options),
                        absl::StatusCode::kInvalidArgument, "larger than the model's (259)"));
}

// A tokenizer_config.json that names only rlj's template gets the Jinja one too, so Hugging Face's
// apply_chat_template (and vLLM's chat endpoint) render prompts as rlj does.
TEST(HfExport, RljsChatTemplateIsWrittenAsJinjaForHuggingFace) {
  testing::ScratchDir scratch;
  RLJ_ASSERT_OK(
      ExportHuggingFaceModel(std::string(RLJ_SOURCE_DIR) + "/tests/golden/tiny_byte_llama", scratch.file("hf")));
  RLJ_ASSERT_OK_AND_ASSIGN(const std::string text, ReadFile(scratch.file("hf") + "/tokenizer_config.json"));
  const nlohmann::json config = nlohmann::json::parse(text);
  RLJ_ASSERT_OK_AND_ASSIGN(const ChatTemplate plain, ChatTemplate::Parse("plain"));
  EXPECT_EQ(config.value("chat_template", ""), "{{ bos_token }}" + plain.ToJinja());  // the byte tokenizer adds <bos>
  EXPECT_EQ(config.value("rlj_chat_template", ""), "plain");
  EXPECT_EQ(config.value("eos_token", ""), "<eos>");
}

// Rewrites tests/golden/tiny_byte_llama (the integration tests' `rlj generate` model: byte vocabulary, 1 layer,
// d_model 16, the byte tokenizer's files with the "plain" chat template recorded):
//   rlj_model_tests --gtest_also_run_disabled_tests --gtest_filter='*DISABLED_WriteTinyByteLlama'
TEST(HfExport, DISABLED_WriteTinyByteLlama) {
  TransformerConfig config = SmallConfig(2, true);
  config.d_model = 16;
  config.n_layers = 1;
  config.ffn_hidden = 32;
  config.max_seq_len = 128;
  Transformer model = MakeModel(config, 7, 0.3);
  const std::string dir = std::string(RLJ_SOURCE_DIR) + "/tests/golden/tiny_byte_llama";
  RLJ_ASSERT_OK(SaveCheckpoint(dir, model, {}));
  RLJ_ASSERT_OK(WriteFileAtomically(dir + "/tokenizer.json", ByteTokenizerJson()));
  RLJ_ASSERT_OK(WriteFileAtomically(
      dir + "/tokenizer_config.json",
      R"({"bos_token": "<bos>", "eos_token": "<eos>", "pad_token": "<pad>", "rlj_chat_template": "plain"})"
      "\n"));
}

}  // namespace
}  // namespace rlj
