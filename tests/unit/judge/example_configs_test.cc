// example_configs_test.cc: every judge config in examples/judge_configs/ loads and validates, and builds its
// backend (no request is sent: HTTP teachers connect lazily); the weighted ensemble with the example
// command judge (examples/command_judge/judge.py, a real process) scores samples.
#include <gtest/gtest.h>

#include <filesystem>

#include "common/config_loader.h"
#include "judge/backend_registry.h"
#include "test_util.h"

namespace rlj {
namespace {

const std::string kExamples = std::string(RLJ_SOURCE_DIR) + "/examples";

JudgeBackendDeps FakeKeys() {
  JudgeBackendDeps deps;
  deps.env = [](const std::string& name) -> std::optional<std::string> { return "test-key-for-" + name; };
  return deps;
}

// The command judge's script path made absolute (the example is relative to the repository root).
void AbsoluteCommandPaths(v1::JudgeConfig* judge) {
  for (auto& [name, entry] : *judge->mutable_backends()) {
    for (std::string& arg : *entry.mutable_command()->mutable_argv()) {
      if (arg.rfind("examples/", 0) == 0) arg = std::string(RLJ_SOURCE_DIR) + "/" + arg;
    }
  }
}

TEST(ExampleJudgeConfigs, EveryOneLoadsAndBuildsItsBackend) {
  int seen = 0;
  for (const auto& file : std::filesystem::directory_iterator(kExamples + "/judge_configs")) {
    if (file.path().extension() != ".yaml") continue;
    ++seen;
    SCOPED_TRACE(file.path().string());
    RLJ_ASSERT_OK_AND_ASSIGN(v1::RunConfig config, LoadRunConfig(file.path().string()));
    AbsoluteCommandPaths(config.mutable_judge());
    auto backend = MakeJudgeBackend(config.judge(), FakeKeys());
    ASSERT_TRUE(backend.ok()) << backend.status();
    EXPECT_FALSE((*backend)->name().empty());
  }
  EXPECT_EQ(seen, 6);
}

// The run configs the README and tools/ use (the demos among them) load, and their judge sections pass the
// registry's checks: what `rlj run` would refuse at start is caught here.
TEST(RunConfigs, EveryConfigInConfigsLoadsAndItsJudgeValidates) {
  int seen = 0;
  for (const auto& file : std::filesystem::directory_iterator(std::string(RLJ_SOURCE_DIR) + "/configs")) {
    if (file.path().extension() != ".yaml") continue;
    ++seen;
    SCOPED_TRACE(file.path().string());
    RLJ_ASSERT_OK_AND_ASSIGN(v1::RunConfig config, LoadRunConfig(file.path().string()));
    RLJ_EXPECT_OK(ValidateJudgeConfig(config.judge()));
  }
  EXPECT_GE(seen, 5);
}

TEST(ExampleJudgeConfigs, WeightedEnsembleWithTheCommandJudgeScores) {
  RLJ_ASSERT_OK_AND_ASSIGN(v1::RunConfig config, LoadRunConfig(kExamples + "/judge_configs/ensemble_weighted.yaml"));
  AbsoluteCommandPaths(config.mutable_judge());
  RLJ_ASSERT_OK_AND_ASSIGN(std::unique_ptr<JudgeBackend> backend, MakeJudgeBackend(config.judge(), FakeKeys()));
  auto sample = [](const std::string& id, const std::string& completion, const std::string& reference) {
    v1::Sample s;
    s.set_id(id);
    s.set_prompt("What is 6*7?");
    s.set_completion(completion);
    s.set_reference(reference);
    return s;
  };
  const std::vector<Judgement> judgements = backend->Score(
      {sample("a", "42", "42"), sample("b", "maybe 42", "42"), sample("c", "41", "42"), sample("d", "42", "")});
  ASSERT_EQ(judgements.size(), 4u);
  for (int i = 0; i < 3; ++i)
    ASSERT_FALSE(judgements[i].verdict.has_error()) << judgements[i].verdict.error().message();
  EXPECT_NEAR(judgements[0].verdict.reward(), 0.8 * 1 + 0.2 * 1, 1e-12);
  EXPECT_NEAR(judgements[1].verdict.reward(), 0.8 * 1 + 0.2 * (0 - 0.5), 1e-12);  // right, but hedged
  EXPECT_NEAR(judgements[2].verdict.reward(), 0.0, 1e-12);
  EXPECT_EQ(judgements[1].verdict.components().at("style.hedging"), -0.5);
  ASSERT_TRUE(judgements[3].verdict.has_error());  // no reference: an error from both, never 0
  EXPECT_EQ(judgements[3].verdict.error().kind(), "invalid");
}

}  // namespace
}  // namespace rlj
