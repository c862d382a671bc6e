// one_sampler_test.cc: rlj has one generation stack: a served teacher (`rlj teacher`, /v1/completions) and
// `rlj generate` given the same checkpoint, prompt ids, sampling parameters and seed produce the same tokens.
#include <gtest/gtest.h>
#include <httplib.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/file_util.h"
#include "common/run_dir.h"
#include "rlj_process.h"
#include "test_util.h"

namespace rlj {
namespace {

using nlohmann::json;

const std::string kModel = std::string(RLJ_SOURCE_DIR) + "/tests/golden/tiny_byte_llama";

struct Sampling {
  double temperature;
  int top_k;
  double top_p;
};

// `rlj generate --json` for the prompt ids: its text and ids.
json Generate(const testing::ScratchDir& dir, const std::vector<int>& prompt, const Sampling& s, uint64_t seed) {
  const testing::Finished run =
      testing::RunRlj({"generate", "--model", kModel, "--prompt-ids", absl::StrJoin(prompt, ","), "--max-new-tokens",
                       "20", "--temperature", absl::StrCat(s.temperature), "--top-k", absl::StrCat(s.top_k), "--top-p",
                       absl::StrCat(s.top_p), "--seed", absl::StrCat(seed), "--threads", "1", "--json"},
                      dir.file("generate.out"), std::chrono::seconds(300));
  EXPECT_TRUE(run.exit.ok()) << run.output;
  const size_t line = run.output.rfind("{\"prompt_ids\"");
  if (line == std::string::npos) return json();
  return json::parse(run.output.substr(line, run.output.find('\n', line) - line));
}

TEST(OneSampler, TheTeacherAndGenerateSampleTheSameTokensFromOneSeed) {
  testing::ScratchDir dir;
  const RunDir run_dir(dir.path() + "/teacher-run");
  auto teacher = testing::StartRlj({"teacher", "--model", kModel, "--run-dir", run_dir.root(), "--threads", "1"},
                                   dir.file("teacher.out"));
  ASSERT_NE(teacher, nullptr);
  std::string address;
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::minutes(3);
  while (address.empty() && std::chrono::steady_clock::now() < give_up) {
    ASSERT_FALSE(teacher->Poll().has_value()) << ReadFile(dir.file("teacher.out")).value_or("");
    if (auto endpoint = run_dir.ReadEndpoint("teacher"); endpoint.ok()) address = *endpoint;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));  // polling a file another process writes
  }
  ASSERT_FALSE(address.empty()) << "no teacher endpoint within 3 minutes";
  httplib::Client client("http://" + address);
  client.set_read_timeout(std::chrono::seconds(120));

  const std::vector<int> prompt{256, '1', '2', '+', '3', '='};
  std::set<std::string> texts;
  for (const Sampling& s : {Sampling{1.0, 0, 1.0}, Sampling{0.8, 0, 0.9}, Sampling{1.2, 5, 1.0}, Sampling{0, 0, 1}}) {
    for (const uint64_t seed : {1u, 77u, 4096u}) {
      json body = {{"model", "teacher"},           {"prompt", prompt}, {"max_tokens", 20},
                   {"temperature", s.temperature}, {"top_p", s.top_p}, {"seed", seed}};
      if (s.top_k > 0) body["top_k"] = s.top_k;
      const auto response = client.Post("/v1/completions", body.dump(), "application/json");
      ASSERT_TRUE(response) << "the teacher did not answer";
      ASSERT_EQ(response->status, 200) << response->body;
      const json served = json::parse(response->body)["choices"][0];
      const json generated = Generate(dir, prompt, s, seed);
      ASSERT_TRUE(generated.is_object());
      const std::string label =
          absl::StrCat("T ", s.temperature, " top_k ", s.top_k, " top_p ", s.top_p, " seed ", seed);
      EXPECT_EQ(served["text"].get<std::string>(), generated["text"].get<std::string>()) << label;
      const bool stopped = generated["finish"] != "length";
      EXPECT_EQ(served["finish_reason"], stopped ? "stop" : "length") << label;
      texts.insert(generated["text"].get<std::string>());
    }
  }
  EXPECT_GT(texts.size(), 4u);  // the seeds and settings really sample different completions
}

}  // namespace
}  // namespace rlj
