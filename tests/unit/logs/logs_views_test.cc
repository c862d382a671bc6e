// logs_views_test.cc: what `rlj logs` shows of a run with two judge replicas, checked against values
// computed by hand: loading both replicas and metrics.jsonl, row lookup, grep, top/bottom, the summary
// (text and JSON), errors by kind, JSONL/CSV export, and the comparison of two runs.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "logs/compare.h"
#include "logs/export.h"
#include "logs/run_logs.h"
#include "logs/step_series.h"
#include "logs/summary.h"
#include "logs/terminal_text.h"
#include "logs_fixtures.h"
#include "test_util.h"

namespace rlj::logs {
namespace {

using rlj::testing::MakeRow;
using rlj::testing::ScratchDir;

// judge-0: ids 1..3 (steps 1, 1, 2; rewards 0, 1, failed); judge-1: ids 1..2 (steps 2, 3; rewards 0.5, 1).
// Times interleave the replicas: j0:1, j0:2, j1:1, j0:3, j1:2.
void WriteTwoReplicaRun(const std::string& run_dir) {
  RewardLogRow a1 = MakeRow(1, 0.0, "1", 100);
  RewardLogRow a2 = MakeRow(1, 1.0, "42", 200);
  RewardLogRow a3 = MakeRow(2, std::nullopt, "", 400);
  a3.error_message = "no score in the answer";
  RewardLogRow b1 = MakeRow(2, 0.5, "forty two, \"roughly\"", 300);
  RewardLogRow b2 = MakeRow(3, 1.0, "the answer is 42", 500);
  b2.cache_hit = true;
  testing::WriteRows(run_dir, "judge-0", {a1, a2, a3});
  testing::WriteRows(run_dir, "judge-1", {b1, b2});
  v1::StepMetrics m;
  m.set_step(1);
  m.set_loss(0.5);
  m.set_reward_mean(0.5);
  v1::StepMetrics m2 = m;
  m2.set_step(2);
  m2.set_loss(0.25);
  testing::WriteMetrics(run_dir, {m, m2});
}

std::vector<std::string> Keys(const std::vector<const RewardLogRow*>& rows) {
  std::vector<std::string> keys;
  for (const RewardLogRow* row : rows) keys.push_back(RowKey(*row));
  return keys;
}

TEST(RunLogs, ReadsEveryReplicaByTimeAndTheLearnerMetrics) {
  ScratchDir dir;
  WriteTwoReplicaRun(dir.path());
  RLJ_ASSERT_OK_AND_ASSIGN(RunLogs logs, LoadRunLogs(dir.path()));
  std::vector<std::string> keys;
  for (const RewardLogRow& row : logs.rows) keys.push_back(RowKey(row));
  EXPECT_EQ(keys, (std::vector<std::string>{"judge-0:1", "judge-0:2", "judge-1:1", "judge-0:3", "judge-1:2"}));
  EXPECT_EQ(logs.rows[2].completion, "forty two, \"roughly\"");
  EXPECT_EQ(logs.rows[2].completion_chars, 20);
  ASSERT_EQ(logs.steps.size(), 2u);
  EXPECT_DOUBLE_EQ(logs.steps[1].loss(), 0.25);
  // One replica file alone, and a directory without a reward log.
  RLJ_ASSERT_OK_AND_ASSIGN(RunLogs one, LoadRunLogs(dir.path() + "/reward_log/judge-1.sqlite"));
  EXPECT_EQ(one.rows.size(), 2u);
  const std::string empty = dir.file("empty");
  std::filesystem::create_directories(empty);
  EXPECT_TRUE(testing::FailsWith(LoadRunLogs(empty), absl::StatusCode::kNotFound, "no reward log here"));
}

TEST(RunLogs, FindsRowsByKeyAndRefusesAmbiguousOrBadIds) {
  ScratchDir dir;
  WriteTwoReplicaRun(dir.path());
  RLJ_ASSERT_OK_AND_ASSIGN(RunLogs logs, LoadRunLogs(dir.path()));
  RLJ_ASSERT_OK_AND_ASSIGN(const RewardLogRow* row, FindRow(logs.rows, "judge-1:1"));
  EXPECT_EQ(row->completion, "forty two, \"roughly\"");
  RLJ_ASSERT_OK_AND_ASSIGN(row, FindRow(logs.rows, "3"));  // only judge-0 has id 3
  EXPECT_EQ(RowKey(*row), "judge-0:3");
  EXPECT_TRUE(testing::FailsWith(FindRow(logs.rows, "1"), absl::StatusCode::kInvalidArgument, "judge-0:1, judge-1:1"));
  EXPECT_TRUE(testing::FailsWith(FindRow(logs.rows, "judge-1:9"), absl::StatusCode::kNotFound, "judge-1:9"));
  EXPECT_TRUE(testing::FailsWith(FindRow(logs.rows, "abc"), absl::StatusCode::kInvalidArgument, "not a row id"));
}

TEST(RunLogs, GrepsEveryTextFieldAndRanksByReward) {
  ScratchDir dir;
  WriteTwoReplicaRun(dir.path());
  RLJ_ASSERT_OK_AND_ASSIGN(RunLogs logs, LoadRunLogs(dir.path()));
  RLJ_ASSERT_OK_AND_ASSIGN(auto found, GrepRows(logs.rows, "forty|answer is"));
  EXPECT_EQ(Keys(found), (std::vector<std::string>{"judge-1:1", "judge-1:2"}));
  RLJ_ASSERT_OK_AND_ASSIGN(found, GrepRows(logs.rows, "no score in"));  // the error message
  EXPECT_EQ(Keys(found), (std::vector<std::string>{"judge-0:3"}));
  EXPECT_TRUE(testing::FailsWith(GrepRows(logs.rows, "(unclosed"), absl::StatusCode::kInvalidArgument, "bad pattern"));
  // Ties keep log order; the failed row has no reward and is never ranked.
  EXPECT_EQ(Keys(RankByReward(logs.rows, 2, true)), (std::vector<std::string>{"judge-0:2", "judge-1:2"}));
  EXPECT_EQ(Keys(RankByReward(logs.rows, 2, false)), (std::vector<std::string>{"judge-0:1", "judge-1:1"}));
  EXPECT_EQ(RankByReward(logs.rows, 10, true).size(), 4u);
}

TEST(Summary, FiguresMatchHandComputedValues) {
  ScratchDir dir;
  WriteTwoReplicaRun(dir.path());
  RLJ_ASSERT_OK_AND_ASSIGN(RunLogs logs, LoadRunLogs(dir.path()));
  const RunSummary s = Summarize(logs, SummaryOptions());
  EXPECT_EQ(s.rows, 5);
  EXPECT_EQ(s.train_rows, 5);
  EXPECT_EQ(s.scored, 4);
  EXPECT_EQ(s.errors, 1);
  EXPECT_DOUBLE_EQ(s.error_rate, 0.2);
  EXPECT_EQ(s.replicas, (std::vector<std::string>{"judge-0", "judge-1"}));
  EXPECT_EQ(s.judges.at("rule/numeric"), 5);
  EXPECT_EQ(s.first_step, 1);
  EXPECT_EQ(s.last_step, 3);
  EXPECT_EQ(s.steps_with_rows, 3);
  // Rewards {0, 1, 0.5, 1}: mean 0.625, population variance 0.6875 / 4.
  EXPECT_DOUBLE_EQ(s.reward_mean, 0.625);
  EXPECT_NEAR(s.reward_std, std::sqrt(0.171875), 1e-12);
  EXPECT_NEAR(s.reward_p10, 0.15, 1e-12);  // sorted 0, .5, 1, 1: position 0.3
  EXPECT_NEAR(s.reward_p50, 0.75, 1e-12);
  EXPECT_NEAR(s.reward_p90, 1.0, 1e-12);
  EXPECT_DOUBLE_EQ(s.reward_first_step_mean, 0.5);  // step 1: 0 and 1
  EXPECT_DOUBLE_EQ(s.reward_last_step_mean, 1.0);   // step 3
  EXPECT_DOUBLE_EQ(s.latency_ms_p50, 10);
  EXPECT_NEAR(s.cost_usd, 0.005, 1e-12);
  EXPECT_EQ(s.tokens_in, 25);
  EXPECT_EQ(s.tokens_out, 10);
  EXPECT_DOUBLE_EQ(s.cache_hit_rate, 0.2);
  ASSERT_EQ(s.error_groups.size(), 1u);
  EXPECT_EQ(s.error_groups[0].kind, "parse");
  EXPECT_EQ(s.error_groups[0].example_key, "judge-0:3");
  EXPECT_EQ(s.learner_steps, 2);
  // 20% failed verdicts is above the 10% warning level.
  ASSERT_EQ(s.warnings.size(), 1u);
  EXPECT_EQ(s.warnings[0], "20.0% of verdicts failed (1 of 5)");

  const nlohmann::json json = SummaryToJson(s);
  EXPECT_DOUBLE_EQ(json["reward"]["mean"].get<double>(), 0.625);
  EXPECT_EQ(json["errors_by_kind"][0]["kind"], "parse");
  EXPECT_TRUE(json["canary"]["accuracy"].is_null());  // no canaries: NaN becomes null
  EXPECT_EQ(json["learner"]["last"]["step"], 2);

  const std::string text = FormatSummary(s, 80);
  EXPECT_TRUE(absl::StrContains(text, "0.625 ± 0.415")) << text;
  EXPECT_TRUE(absl::StrContains(text, "1 of 5 (20.0%)")) << text;
  EXPECT_TRUE(absl::StrContains(text, "WARNING: 20.0% of verdicts failed")) << text;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    EXPECT_LE(DisplayWidth(std::string_view(line.data(), line.size())), 80u) << line;
  }
}

TEST(StepSeries, PerStepRewardsComponentsAndErrors) {
  ScratchDir dir;
  WriteTwoReplicaRun(dir.path());
  RLJ_ASSERT_OK_AND_ASSIGN(RunLogs logs, LoadRunLogs(dir.path()));
  const std::vector<StepStats> series = ComputeStepSeries(logs.rows);
  ASSERT_EQ(series.size(), 3u);
  EXPECT_EQ(series[0].step, 1);
  EXPECT_EQ(series[0].scored, 2);
  EXPECT_DOUBLE_EQ(series[0].reward_mean, 0.5);
  EXPECT_DOUBLE_EQ(series[0].reward_min, 0);
  EXPECT_DOUBLE_EQ(series[0].reward_max, 1);
  EXPECT_NEAR(series[0].reward_p10, 0.1, 1e-12);
  EXPECT_DOUBLE_EQ(series[0].component_means.at("correct"), 0.5);  // MakeRow: {"correct": reward}
  EXPECT_EQ(series[1].step, 2);
  EXPECT_EQ(series[1].samples, 2);
  EXPECT_EQ(series[1].errors, 1);
  EXPECT_DOUBLE_EQ(series[1].error_rate, 0.5);
  EXPECT_DOUBLE_EQ(series[1].reward_mean, 0.5);
  EXPECT_DOUBLE_EQ(series[2].cache_hit_rate, 1.0);
  EXPECT_TRUE(std::isnan(series[2].canary_accuracy));
  EXPECT_EQ(ParseComponents("{\"a\": 1, \"b\": \"x\", \"c\": 0.5}"),
            (std::map<std::string, double>{{"a", 1}, {"c", 0.5}}));
  EXPECT_TRUE(ParseComponents("not json").empty());
}

TEST(Export, JsonLinesCarryEveryColumnAndCsvQuotes) {
  ScratchDir dir;
  WriteTwoReplicaRun(dir.path());
  RLJ_ASSERT_OK_AND_ASSIGN(RunLogs logs, LoadRunLogs(dir.path()));
  std::ostringstream jsonl;
  WriteJsonl(logs.rows, jsonl);
  std::vector<nlohmann::json> lines;
  for (absl::string_view line : absl::StrSplit(jsonl.str(), '\n', absl::SkipEmpty())) {
    lines.push_back(nlohmann::json::parse(std::string(line)));
  }
  ASSERT_EQ(lines.size(), 5u);
  EXPECT_EQ(lines[0]["row"], "judge-0:1");
  EXPECT_EQ(lines[0]["step"], 1);
  EXPECT_EQ(lines[1]["components"]["correct"], 1.0);
  EXPECT_EQ(lines[2]["completion"], "forty two, \"roughly\"");
  EXPECT_TRUE(lines[3]["reward"].is_null());
  EXPECT_EQ(lines[3]["error_kind"], "parse");
  EXPECT_EQ(lines[4]["cache_hit"], true);
  for (const char* column : {"prompt", "reference", "rationale", "raw_response", "backend", "model", "latency_ms",
                             "tokens_in", "tokens_out", "cost_usd", "time_unix_s", "actor", "group_id", "prompt_id"}) {
    EXPECT_TRUE(lines[0].contains(column)) << column;
  }

  std::ostringstream csv;
  WriteCsv(logs.rows, csv);
  const std::vector<std::string> records = absl::StrSplit(csv.str(), "\r\n", absl::SkipEmpty());
  ASSERT_EQ(records.size(), 6u);  // header + 5 (no field here holds a newline)
  EXPECT_TRUE(absl::StartsWith(records[0], "row,replica,id,time_unix_s,run,step,kind,"));
  EXPECT_TRUE(absl::StrContains(records[3], ",\"forty two, \"\"roughly\"\"\",")) << records[3];
  const size_t header_fields = std::vector<std::string>(absl::StrSplit(records[0], ',')).size();
  EXPECT_EQ(header_fields, 31u);
  EXPECT_EQ(std::vector<std::string>(absl::StrSplit(records[1], ',')).size(), header_fields)  // no comma in its fields
      << records[1];
}

TEST(Compare, FiguresAndStepsOfTwoRuns) {
  ScratchDir dir;
  const std::string a_dir = dir.file("a"), b_dir = dir.file("b");
  WriteTwoReplicaRun(a_dir);
  testing::WriteRows(b_dir, "judge-0",
                     {MakeRow(1, 1.0, "42", 10), MakeRow(2, 1.0, "42", 20), MakeRow(9, 0.0, "x", 30)});
  RLJ_ASSERT_OK_AND_ASSIGN(RunLogs a, LoadRunLogs(a_dir));
  RLJ_ASSERT_OK_AND_ASSIGN(RunLogs b, LoadRunLogs(b_dir));
  const RunForComparison ra{"A", Summarize(a, SummaryOptions()), ComputeStepSeries(a.rows)};
  const RunForComparison rb{"B", Summarize(b, SummaryOptions()), ComputeStepSeries(b.rows)};
  const std::vector<ComparedFigure> figures = CompareFigures(ra.summary, rb.summary);
  ASSERT_EQ(figures[2].name, "reward mean");
  EXPECT_DOUBLE_EQ(figures[2].a, 0.625);
  EXPECT_NEAR(figures[2].b, 2.0 / 3, 1e-12);
  EXPECT_NEAR(figures[2].delta(), 2.0 / 3 - 0.625, 1e-12);
  const nlohmann::json json = ComparisonToJson(ra, rb);
  // Steps 1, 2, 3, 9: A has 1-3, B has 1, 2, 9.
  ASSERT_EQ(json["reward_per_step"].size(), 4u);
  EXPECT_EQ(json["reward_per_step"][2]["step"], 3);
  EXPECT_TRUE(json["reward_per_step"][2]["b"].is_null());
  EXPECT_DOUBLE_EQ(json["reward_per_step"][0]["b"].get<double>(), 1.0);
  const std::string text = FormatComparison(ra, rb, 80);
  EXPECT_TRUE(absl::StrContains(text, "A: A\nB: B\n")) << text;
  EXPECT_TRUE(absl::StrContains(text, "reward mean")) << text;
  EXPECT_FALSE(absl::StrContains(text, "(no step in common)")) << text;
}

}  // namespace
}  // namespace rlj::logs
