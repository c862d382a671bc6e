// distill_run_test.cc: on-policy distillation with real processes: `rlj run` starts `rlj teacher` (the golden
// tiny byte-level Llama), the judge's openai backend in distill mode sends the student's token ids, and the
// learner's per-token term trains on the teacher's log-probs: metrics.jsonl shows distillation tokens and the
// reverse KL, the reward log keeps each sample's teacher log-prob sum, mean and reverse KL. A student whose
// tokenizer is not the teacher's is refused at start, with both named.
#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/reward_log.h"
#include "common/run_dir.h"
#include "rlj_process.h"
#include "test_util.h"

namespace rlj {
namespace {

using nlohmann::json;
using testing::RunRlj;

const std::string kTeacher = std::string(RLJ_SOURCE_DIR) + "/tests/golden/tiny_byte_llama";

// A tiny student distilled from the golden teacher; `extra` is appended (e.g. a tokenizer section).
std::string WriteDistillRun(const std::string& dir, const std::string& name, const std::string& extra) {
  testing::WriteTinyTask(dir);
  const std::string config = absl::StrCat(testing::TinyRunConfigHead(dir, name), "teacher:\n  model: ", kTeacher,
                                          R"(
  max_batch: 16
judge:
  backend: openai
  openai:
    model: teacher
    mode: distill
learner:
  steps: 3
  groups_per_step: 4
  lr: 1.0e-3
  max_staleness: 4
  distill:
    coef: 1.0
actor:
  count: 1
  prompts_per_batch: 4
)",
                                          extra);
  EXPECT_TRUE(WriteFileAtomically(absl::StrCat(dir, "/", name, ".yaml"), config).ok());
  return absl::StrCat(dir, "/", name, ".yaml");
}

TEST(DistillRun, TheTeacherScoresTheStudentsTokensAndTheLearnerTrainsOnThem) {
  testing::ScratchDir dir;
  const std::string config = WriteDistillRun(dir.path(), "distill", "");
  const testing::Finished run = RunRlj({"run", config}, dir.file("run.out"));
  ASSERT_TRUE(run.exit.ok()) << run.exit.Describe() << "\n" << run.output;

  const RunDir run_dir(dir.path() + "/runs/distill");
  RLJ_ASSERT_OK_AND_ASSIGN(std::string metrics, ReadFile(run_dir.metrics_path()));
  std::istringstream lines(metrics);
  std::string line;
  int steps = 0;
  while (std::getline(lines, line)) {
    const json step = json::parse(line);
    ++steps;
    ASSERT_TRUE(step.contains("distill_tokens")) << line;
    EXPECT_GT(std::stoll(step["distill_tokens"].get<std::string>()), 0) << line;  // int64 is a JSON string
    EXPECT_TRUE(std::isfinite(step.value("teacher_reverse_kl", NAN))) << line;
  }
  EXPECT_EQ(steps, 3);

  RLJ_ASSERT_OK_AND_ASSIGN(std::vector<RewardLogRow> rows, ReadRewardLog(run_dir.reward_log_dir()));
  int scored = 0;
  for (const RewardLogRow& row : rows) {
    if (!row.reward) continue;
    const json components = json::parse(row.components_json);
    ASSERT_TRUE(components.contains("teacher_logprob_sum")) << row.components_json;
    ASSERT_TRUE(components.contains("reverse_kl")) << row.components_json;
    // The reward is the teacher's mean log-prob of the sampled tokens: a log-prob.
    EXPECT_LE(*row.reward, 0.0);
    EXPECT_NEAR(*row.reward, components["teacher_logprob_mean"].get<double>(), 1e-9);
    ++scored;
  }
  EXPECT_GE(scored, 3 * 4 * 4);  // steps × groups × group size, at least
}

TEST(DistillRun, AStudentWithAnotherTokenizerIsRefusedAtStartNamingBoth) {
  testing::ScratchDir dir;
  // The teacher's own byte-level tokenizer.json with the ids of "1" and "2" swapped: same size, same specials,
  // another meaning for two ids.
  RLJ_ASSERT_OK_AND_ASSIGN(std::string text, ReadFile(kTeacher + "/tokenizer.json"));
  json swapped = json::parse(text);
  json& vocab = swapped["model"]["vocab"];
  std::swap(vocab["1"], vocab["2"]);
  const std::string tokenizer = dir.file("swapped-tokenizer.json");
  RLJ_ASSERT_OK(WriteFileAtomically(tokenizer, swapped.dump()));
  const std::string config =
      WriteDistillRun(dir.path(), "mismatch", absl::StrCat("tokenizer:\n  kind: hf\n  path: ", tokenizer, "\n"));
  const testing::Finished run = RunRlj({"run", config}, dir.file("run.out"), std::chrono::seconds(300));
  EXPECT_FALSE(run.exit.ok()) << run.output;
  EXPECT_NE(run.output.find("judge.openai (backend openai, mode distill): the teacher's tokenizer (hf tokenizer of "
                            "'teacher'"),
            std::string::npos)
      << run.output;
  EXPECT_NE(run.output.find("is not the student's (tokenizer.path " + tokenizer), std::string::npos) << run.output;
}

}  // namespace
}  // namespace rlj
