// config_loader_test.cc: schema checks of run configs: unknown keys, wrong types, overrides, round trip.
#include "common/config_loader.h"

#include <gtest/gtest.h>

#include "common/file_util.h"
#include "test_util.h"

namespace rlj {
namespace {

using ::rlj::testing::FailsWith;

TEST(ConfigLoader, ParsesNestedKeysAndKeepsDefaults) {
  RLJ_ASSERT_OK_AND_ASSIGN(v1::RunConfig c, ParseRunConfig(R"(
name: demo
learner:
  lr: 3e-4
  steps: 12
sampling:
  stop: ["\n", "."]
)",
                                                           "t.yaml"));
  EXPECT_EQ(c.name(), "demo");
  EXPECT_DOUBLE_EQ(c.learner().lr(), 3e-4);
  EXPECT_EQ(c.learner().steps(), 12);
  EXPECT_EQ(c.learner().groups_per_step(), 16);  // default from the schema
  ASSERT_EQ(c.sampling().stop_size(), 2);
  EXPECT_EQ(c.sampling().stop(0), "\n");
}

TEST(ConfigLoader, UnknownKeyNamesPathLineAndSuggestion) {
  auto result = ParseRunConfig("learner:\n  lrr: 0.1\n", "cfg.yaml");
  EXPECT_TRUE(FailsWith(result, absl::StatusCode::kInvalidArgument,
                        "cfg.yaml:2:3: learner.lrr: unknown key (did you mean 'lr'?)"));
}

TEST(ConfigLoader, UnknownTopLevelSectionListsKnownKeys) {
  auto result = ParseRunConfig("bogus_section: {}\n", "cfg.yaml");
  EXPECT_TRUE(
      FailsWith(result, absl::StatusCode::kInvalidArgument, "bogus_section: unknown key (known: name, runs_root"));
}

TEST(ConfigLoader, WrongTypesNameTheKey) {
  EXPECT_TRUE(FailsWith(ParseRunConfig("learner:\n  steps: many\n", "c.yaml"), absl::StatusCode::kInvalidArgument,
                        "c.yaml:2:10: learner.steps: expected an integer (32-bit), got 'many'"));
  EXPECT_TRUE(FailsWith(ParseRunConfig("learner:\n  lr: [1, 2]\n", "c.yaml"), absl::StatusCode::kInvalidArgument,
                        "learner.lr: expected a number, got a list"));
  EXPECT_TRUE(FailsWith(ParseRunConfig("eval:\n  before_and_after: maybe\n", "c.yaml"),
                        absl::StatusCode::kInvalidArgument,
                        "eval.before_and_after: expected true or false, got 'maybe'"));
  EXPECT_TRUE(FailsWith(ParseRunConfig("learner: 5\n", "c.yaml"), absl::StatusCode::kInvalidArgument,
                        "learner: expected a mapping, got '5'"));
  EXPECT_TRUE(FailsWith(ParseRunConfig("model:\n  d_model: 99999999999\n", "c.yaml"),
                        absl::StatusCode::kInvalidArgument, "model.d_model: expected an integer (32-bit)"));
}

TEST(ConfigLoader, DuplicateKeysAreErrors) {
  EXPECT_TRUE(FailsWith(ParseRunConfig("learner:\n  lr: 1\n  lr: 2\n", "c.yaml"), absl::StatusCode::kInvalidArgument,
                        "learner.lr: duplicate key"));
}

TEST(ConfigLoader, YamlSyntaxErrorsNameLine) {
  EXPECT_TRUE(FailsWith(ParseRunConfig("learner:\n  lr: [1, 2\n", "c.yaml"), absl::StatusCode::kInvalidArgument,
                        "c.yaml:3:1: YAML syntax error"));
}

TEST(ConfigLoader, OverridesApplyWithTheSameChecks) {
  RLJ_ASSERT_OK_AND_ASSIGN(v1::RunConfig c, ParseRunConfig("learner:\n  lr: 0.1\n", "c.yaml",
                                                           {"learner.lr=0.5", "sampling.stop=[x, y]", "name=r2"}));
  EXPECT_DOUBLE_EQ(c.learner().lr(), 0.5);
  EXPECT_EQ(c.sampling().stop_size(), 2);
  EXPECT_EQ(c.name(), "r2");
  EXPECT_TRUE(FailsWith(ParseRunConfig("", "c.yaml", {"learner.lr=fast"}), absl::StatusCode::kInvalidArgument,
                        "--set learner.lr=fast: learner.lr: expected a number, got 'fast'"));
  EXPECT_TRUE(FailsWith(ParseRunConfig("", "c.yaml", {"learner.nope=1"}), absl::StatusCode::kInvalidArgument,
                        "--set learner.nope=1: learner.nope: unknown key"));
  EXPECT_TRUE(FailsWith(ParseRunConfig("", "c.yaml", {"learner.lr.x=1"}), absl::StatusCode::kInvalidArgument,
                        "learner.lr: is not a section"));
  EXPECT_TRUE(FailsWith(ParseRunConfig("", "c.yaml", {"novalue"}), absl::StatusCode::kInvalidArgument,
                        "expected KEY.PATH=VALUE"));
}

TEST(ConfigLoader, OverrideOfStringKeepsNumericLookingText) {
  RLJ_ASSERT_OK_AND_ASSIGN(v1::RunConfig c, ParseRunConfig("", "c.yaml", {"name=123"}));
  EXPECT_EQ(c.name(), "123");
}

TEST(ConfigLoader, SemanticRulesNameKeys) {
  EXPECT_TRUE(FailsWith(ParseRunConfig("model:\n  d_model: 100\n  n_heads: 3\n", "c.yaml"),
                        absl::StatusCode::kInvalidArgument, "model.d_model: must be divisible by model.n_heads"));
  // A choice the schema holds as an enum names the key, the line and every accepted value.
  EXPECT_TRUE(FailsWith(ParseRunConfig("learner:\n  algorithm: ppo\n", "c.yaml"), absl::StatusCode::kInvalidArgument,
                        "c.yaml:2:14: learner.algorithm: expected grpo, dr_grpo or rloo, got 'ppo'"));
  EXPECT_TRUE(FailsWith(ParseRunConfig("", "c.yaml", {"judge.openai.mode=vibes"}), absl::StatusCode::kInvalidArgument,
                        "expected rubric, label, likelihood or distill, got 'vibes'"));
  RLJ_ASSERT_OK_AND_ASSIGN(
      v1::RunConfig enums,
      ParseRunConfig("learner:\n  kl_estimator: k1\njudge:\n  rule:\n    checks: [regex, contains]\n", "c.yaml",
                     {"learner.truncated=mask"}));
  EXPECT_EQ(enums.learner().kl_estimator(), v1::LearnerConfig::k1);
  EXPECT_EQ(enums.learner().truncated(), v1::LearnerConfig::mask);
  ASSERT_EQ(enums.judge().rule().checks_size(), 2);
  EXPECT_EQ(enums.judge().rule().checks(1), v1::RuleJudgeConfig::contains);
  EXPECT_TRUE(FailsWith(ParseRunConfig("learner:\n  groups_per_step: 64\n  buffer_groups: 8\n", "c.yaml"),
                        absl::StatusCode::kInvalidArgument, "learner.buffer_groups"));
}

TEST(ConfigLoader, DeviceKeysTakeAutoCpuCudaOrCudaN) {
  RLJ_ASSERT_OK_AND_ASSIGN(v1::RunConfig c, ParseRunConfig("actor:\n  device: cuda:1\n  bf16: false\n", "c.yaml",
                                                           {"teacher.device=cuda:0", "learner.device=cuda"}));
  EXPECT_EQ(c.actor().device(), "cuda:1");
  EXPECT_FALSE(c.actor().bf16());
  EXPECT_TRUE(ParseRunConfig("", "c.yaml").value().actor().bf16());  // bf16 on CUDA unless switched off
  for (const char* key : {"runtime.device", "actor.device", "learner.device"}) {
    EXPECT_TRUE(FailsWith(ParseRunConfig("", "c.yaml", {std::string(key) + "=gpu"}), absl::StatusCode::kInvalidArgument,
                          std::string(key) + ": must be auto, cpu, cuda or cuda:N"))
        << key;
  }
}

TEST(ConfigLoader, MissingFileIsNotFound) {
  EXPECT_TRUE(
      FailsWith(LoadRunConfig("/nonexistent/x.yaml"), absl::StatusCode::kNotFound, "config file /nonexistent/x.yaml"));
}

TEST(ConfigLoader, ResolvedYamlRoundTrips) {
  RLJ_ASSERT_OK_AND_ASSIGN(
      v1::RunConfig c, ParseRunConfig("name: rt\nlearner:\n  lr: 0.0001\nsampling:\n  stop: [\"\\n\"]\n", "c.yaml"));
  const std::string yaml = MessageToYaml(c);
  EXPECT_NE(yaml.find("lr: 1e-04"), std::string::npos) << yaml;            // shortest exact text
  EXPECT_NE(yaml.find("groups_per_step: 16"), std::string::npos) << yaml;  // defaults are written out
  RLJ_ASSERT_OK_AND_ASSIGN(v1::RunConfig again, ParseRunConfig(yaml, "resolved.yaml"));
  EXPECT_EQ(MessageToYaml(again), yaml);  // emitting is a fixed point: nothing lost or reformatted
  EXPECT_EQ(again.learner().lr(), c.learner().lr());
  EXPECT_EQ(again.sampling().stop(0), "\n");
  EXPECT_EQ(again.name(), "rt");
}

TEST(ConfigLoader, ResolvedYamlKeepsUnsetKeysUnsetAndShowsTheirDefaultsAsComments) {
  RLJ_ASSERT_OK_AND_ASSIGN(v1::RunConfig c, ParseRunConfig("model:\n  n_heads: 2\n  ffn_hidden: 64\n", "c.yaml"));
  const std::string yaml = MessageToYaml(c);
  // Each default on a line of its own, indented like its map's keys, after the keys that were set.
  EXPECT_NE(yaml.find("model:\n  # architecture: llama  (default)\n"), std::string::npos) << yaml;
  EXPECT_NE(yaml.find("\n  n_heads: 2\n  # n_kv_heads: 0  (default)\n  ffn_hidden: 64\n"), std::string::npos) << yaml;
  EXPECT_EQ(yaml.find("  # n_kv_heads: 0  (default)  #"), std::string::npos) << yaml;
  RLJ_ASSERT_OK_AND_ASSIGN(v1::RunConfig again, ParseRunConfig(yaml, "resolved.yaml"));
  // A key the user did not set (here: shapes a checkpoint may define) is still unset when read back.
  EXPECT_FALSE(again.model().has_d_model());
  EXPECT_FALSE(again.model().has_n_kv_heads());
  EXPECT_TRUE(again.model().has_n_heads());
  EXPECT_EQ(again.model().d_model(), c.model().d_model());
  EXPECT_FALSE(again.has_judge());  // an unset section stays unset
  EXPECT_EQ(MessageToYaml(again), yaml);
}

TEST(ConfigLoader, SchemaKeyPathsCoverNestedFields) {
  const std::vector<std::string> paths = SchemaKeyPaths(v1::RunConfig());
  EXPECT_NE(std::find(paths.begin(), paths.end(), "learner.lr"), paths.end());
  EXPECT_NE(std::find(paths.begin(), paths.end(), "judge.openai.rubric"), paths.end());
}

}  // namespace
}  // namespace rlj
