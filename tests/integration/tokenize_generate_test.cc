// tokenize_generate_test.cc: smoke tests of `rlj tokenize`, `rlj generate` and `rlj export` on the real binary
// with checked-in files (tests/golden/tokenizers, tests/golden/tiny_byte_llama).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/file_util.h"
#include "rlj_process.h"
#include "test_util.h"

namespace rlj {
namespace {

using testing::FailedCleanly;
using testing::RunRlj;

const std::string kGolden = std::string(RLJ_SOURCE_DIR) + "/tests/golden";

class Tools : public ::testing::Test {
 protected:
  // Runs `rlj args` with `input` on stdin; returns its exit and stdout (stderr goes to err.txt).
  std::pair<ExitInfo, std::string> RunWithStdin(const std::string& args, const std::string& input) {
    EXPECT_TRUE(WriteFileAtomically(dir_.file("in.txt"), input).ok());
    const std::string command = absl::StrCat("'", testing::RljBinary(), "' ", args, " < '", dir_.file("in.txt"),
                                             "' > '", dir_.file("stdout.txt"), "' 2> '", dir_.file("err.txt"), "'");
    auto process = Subprocess::Spawn({"/bin/sh", "-c", command}, dir_.file("sh.txt"));
    EXPECT_TRUE(process.ok()) << process.status();
    if (!process.ok()) return {};
    auto exit = (*process)->Wait(std::chrono::seconds(300));
    EXPECT_TRUE(exit.has_value());
    return {exit.value_or(ExitInfo{}), ReadFile(dir_.file("stdout.txt")).value_or("")};
  }
  testing::Finished Rlj(const std::vector<std::string>& args) {
    return RunRlj(args, dir_.file("out.txt"), std::chrono::seconds(300));
  }
  testing::ScratchDir dir_;
};

TEST_F(Tools, TokenizeMatchesTheGoldenIdsAndDecodesBack) {
  const nlohmann::json expected = nlohmann::json::parse(ReadFile(kGolden + "/tokenizers/expected.json").value());
  const nlohmann::json& cases = expected["fixtures"]["qwen3-trimmed"];
  std::string input, ids_lines;
  for (const auto& c : cases) {
    input += nlohmann::json(c["text"]).dump() + "\n";
    ids_lines += c["ids"].dump() + "\n";
  }
  const auto [exit, out] =
      RunWithStdin(absl::StrCat("tokenize --tokenizer '", kGolden, "/tokenizers/qwen3-trimmed'"), input);
  ASSERT_TRUE(exit.ok()) << ReadFile(dir_.file("err.txt")).value_or("");
  // One line per non-empty input line ("" is a JSON string line, so every case has one).
  const std::vector<std::string> lines = absl::StrSplit(out, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), cases.size());
  for (size_t i = 0; i < lines.size(); ++i) EXPECT_EQ(nlohmann::json::parse(lines[i]), cases[i]["ids"]) << i;

  const auto [decode_exit, decoded] =
      RunWithStdin(absl::StrCat("tokenize --decode --tokenizer '", kGolden, "/tokenizers/qwen3-trimmed'"), ids_lines);
  ASSERT_TRUE(decode_exit.ok()) << ReadFile(dir_.file("err.txt")).value_or("");
  const std::vector<std::string> texts = absl::StrSplit(decoded, '\n', absl::SkipEmpty());
  ASSERT_EQ(texts.size(), cases.size());
  for (size_t i = 0; i < texts.size(); ++i) EXPECT_EQ(nlohmann::json::parse(texts[i]), cases[i]["decoded"]) << i;

  // Byte tokenizer as a prompt: <bos> then the bytes.
  const auto [byte_exit, byte_out] = RunWithStdin("tokenize --tokenizer byte --prompt", "\"hi\"\n");
  ASSERT_TRUE(byte_exit.ok());
  EXPECT_EQ(byte_out, "[256,104,105]\n");
  const auto [bad_exit, bad_out] = RunWithStdin("tokenize --tokenizer byte", "\"ok\"\nnot json\n");
  EXPECT_EQ(bad_exit.exit_code, 1);
  EXPECT_EQ(bad_out, "[111,107]\n");
  EXPECT_NE(ReadFile(dir_.file("err.txt")).value_or("").find("stdin line 2: expected a JSON string"),
            std::string::npos);
}

TEST_F(Tools, GenerateIsReproducibleGreedyIsDeterministicAndJsonHasLogprobs) {
  const std::string model = kGolden + "/tiny_byte_llama";
  auto generate = [&](const std::vector<std::string>& extra) {
    std::vector<std::string> args{"generate", "--model", model, "--max-new-tokens", "12", "--json"};
    args.insert(args.end(), extra.begin(), extra.end());
    const auto [exit, out] = RunWithStdin(absl::StrJoin(args, " "), "");
    EXPECT_TRUE(exit.ok()) << ReadFile(dir_.file("err.txt")).value_or("");
    return nlohmann::json::parse(out, nullptr, false);
  };
  const nlohmann::json a = generate({"--prompt", "hi", "--seed", "5"});
  ASSERT_TRUE(a.is_object());
  // The checkpoint's tokenizer_config.json records the plain template: <bos> "User: hi\nAssistant:".
  std::vector<int> prompt{256};
  for (const char c : std::string("User: hi\nAssistant:")) prompt.push_back(static_cast<unsigned char>(c));
  EXPECT_EQ(a["prompt_ids"].get<std::vector<int>>(), prompt);
  EXPECT_EQ(a["ids"].size(), a["logprobs"].size());
  EXPECT_GE(a["ids"].size(), 1u);
  for (const auto& logprob : a["logprobs"]) EXPECT_LE(logprob.get<double>(), 0.0);
  EXPECT_EQ(generate({"--prompt", "hi", "--seed", "5"}), a);  // same seed, same everything
  const nlohmann::json greedy = generate({"--prompt-ids", "256,104,105", "--temperature", "0", "--seed", "1"});
  EXPECT_EQ(greedy["prompt_ids"], nlohmann::json::array({256, 104, 105}));
  EXPECT_EQ(generate({"--prompt-ids", "256,104,105", "--temperature", "0", "--seed", "2"})["ids"], greedy["ids"]);

  EXPECT_TRUE(FailedCleanly(Rlj({"generate", "--model", model, "--prompt-ids", "1,x"}), "'x' is not a token id"));
  EXPECT_TRUE(FailedCleanly(Rlj({"generate", "--model", model}), "exactly one of --prompt and --prompt-ids"));
  EXPECT_TRUE(FailedCleanly(Rlj({"generate", "--model", dir_.file("nope"), "--prompt", "x"}), "nope/config.json"));
}

TEST_F(Tools, ExportWritesAHuggingFaceDirectoryThatGenerateLoads) {
  const auto exported =
      Rlj({"export", "--checkpoint", kGolden + "/tiny_byte_llama", "--out", dir_.file("hf"), "--dtype", "bfloat16"});
  ASSERT_TRUE(exported.exit.ok()) << exported.output;
  for (const char* file :
       {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "generation_config.json"}) {
    EXPECT_TRUE(ReadFile(dir_.file(absl::StrCat("hf/", file))).ok()) << file;
  }
  const nlohmann::json config = nlohmann::json::parse(ReadFile(dir_.file("hf/config.json")).value());
  EXPECT_EQ(config["torch_dtype"], "bfloat16");
  const auto [exit, out] = RunWithStdin(absl::StrCat("generate --model '", dir_.file("hf"),
                                                     "' --prompt-ids 256,97 --max-new-tokens 3 --temperature 0 --json"),
                                        "");
  ASSERT_TRUE(exit.ok()) << ReadFile(dir_.file("err.txt")).value_or("");
  EXPECT_EQ(nlohmann::json::parse(out)["prompt_ids"], nlohmann::json::array({256, 97}));
  EXPECT_TRUE(FailedCleanly(Rlj({"export", "--checkpoint", kGolden + "/tiny_byte_llama", "--out", dir_.file("hf")}),
                            "already holds a model"));
}

}  // namespace
}  // namespace rlj
