// quality_signals_test.cc: judge quality read back from the log (canary accuracy, self-consistency pairs,
// the reward/length correlation and its warning in the summary), rescore agreement against references,
// and terminal output (truncation, tables within the width, the curve plot), with hand-computed values.
#include "logs/quality_signals.h"

#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "logs/agreement.h"
#include "logs/run_logs.h"
#include "logs/summary.h"
#include "logs/terminal_text.h"
#include "logs_fixtures.h"
#include "test_util.h"

namespace rlj::logs {
namespace {

using rlj::testing::MakeRow;

RewardLogRow Canary(bool pass, std::optional<double> reward) {
  RewardLogRow row = MakeRow(1, reward);
  row.kind = row_kind::kCanary;
  row.expected_reward = 1;
  row.canary_pass = pass;
  return row;
}

TEST(QualitySignals, CanaryAccuracyCountsFailedVerdictsAsNotPassed) {
  std::vector<RewardLogRow> rows = {Canary(true, 1.0), Canary(false, 0.0), Canary(true, 0.9),
                                    Canary(false, std::nullopt), MakeRow(1, 0.3)};
  const CanaryStats stats = CanaryAccuracy(rows);
  EXPECT_EQ(stats.total, 4);
  EXPECT_EQ(stats.passed, 2);
  EXPECT_EQ(stats.failed_verdicts, 1);
  EXPECT_DOUBLE_EQ(stats.accuracy, 0.5);
  EXPECT_TRUE(std::isnan(CanaryAccuracy({MakeRow(1, 1.0)}).accuracy));
}

TEST(QualitySignals, SelfConsistencyPairsBySampleWithinAReplica) {
  std::vector<RewardLogRow> rows;
  const double firsts[] = {0.0, 0.5, 1.0, 0.2};
  const double seconds[] = {0.05, 0.5, 0.6, 0.3};
  for (int i = 0; i < 4; ++i) {
    RewardLogRow first = MakeRow(1, firsts[i]);
    first.replica = "judge-0";
    first.sample_id = "s" + std::to_string(i);
    RewardLogRow second = first;
    second.kind = row_kind::kConsistency;
    second.reward = seconds[i];
    rows.push_back(first);
    rows.push_back(second);
  }
  RewardLogRow orphan = MakeRow(1, 0.9);  // a re-scoring whose original is in another replica: not paired
  orphan.kind = row_kind::kConsistency;
  orphan.replica = "judge-1";
  orphan.sample_id = "s0";
  rows.push_back(orphan);
  const ConsistencyStats stats = SelfConsistency(rows, 0.1);
  // |diffs| = 0.05, 0, 0.4, 0.1 (0.3 - 0.2 is 0.0999… in binary) → 3 of 4 within 0.1.
  EXPECT_EQ(stats.pairs, 4);
  EXPECT_EQ(stats.agreeing, 3);
  EXPECT_NEAR(stats.mean_abs_diff, (0.05 + 0 + 0.4 + 0.1) / 4, 1e-12);
  // Ranks of the firsts (0, .5, 1, .2) and of the seconds (.05, .5, .6, .3) are both 1, 3, 4, 2.
  EXPECT_NEAR(stats.spearman, 1.0, 1e-12);
}

TEST(QualitySignals, LengthCorrelationWarnsAboveTheThreshold) {
  // Reward grows with length: Spearman 1. Ten samples.
  std::vector<RewardLogRow> rows;
  for (int i = 0; i < 10; ++i) {
    RewardLogRow row = MakeRow(i, 0.1 * i, std::string(static_cast<size_t>(5 + i), 'x'));
    row.completion_chars = 5 + i;
    rows.push_back(row);
  }
  LengthCorrelation all = RewardLengthCorrelation(rows, 0.5, 8);
  EXPECT_EQ(all.samples, 10);
  EXPECT_NEAR(all.spearman, 1.0, 1e-12);
  EXPECT_TRUE(all.enough);
  EXPECT_TRUE(all.warn);
  EXPECT_FALSE(RewardLengthCorrelation(rows, 0.5, 11).enough);  // too few samples: no verdict
  EXPECT_FALSE(RewardLengthCorrelation(rows, 0.5, 11).warn);
  // The last 3 only; reverse their lengths so the recent correlation is -1.
  rows[7].completion_chars = 30;
  rows[8].completion_chars = 20;
  rows[9].completion_chars = 10;
  LengthCorrelation recent = RewardLengthCorrelation(rows, 0.5, 3, 3);
  EXPECT_EQ(recent.samples, 3);
  EXPECT_NEAR(recent.spearman, -1.0, 1e-12);
  EXPECT_FALSE(recent.warn);
  // Canaries and failed rows do not count.
  rows.push_back(Canary(true, 1.0));
  rows.push_back(MakeRow(3, std::nullopt));
  EXPECT_EQ(RewardLengthCorrelation(rows, 0.5, 3).samples, 10);
}

TEST(QualitySignals, SummaryWarnsAboutVerbosityCanariesAndConsistency) {
  testing::ScratchDir dir;
  std::vector<RewardLogRow> rows;
  for (int i = 0; i < 12; ++i) rows.push_back(MakeRow(i, 0.05 * i, std::string(static_cast<size_t>(3 + 4 * i), 'y')));
  for (int i = 0; i < 10; ++i) {  // 20 canaries, the fewest the canary alarm judges
    rows.push_back(Canary(false, 0.0));
    rows.push_back(Canary(true, 1.0));
  }
  testing::WriteRows(dir.path(), "judge-0", rows);
  RLJ_ASSERT_OK_AND_ASSIGN(RunLogs logs, LoadRunLogs(dir.path()));
  SummaryOptions options;
  options.length_min_samples = 10;
  const RunSummary s = Summarize(logs, options);
  EXPECT_EQ(s.canary_rows, 20);
  EXPECT_DOUBLE_EQ(s.canary.accuracy, 0.5);
  EXPECT_TRUE(s.length_all.warn);
  EXPECT_NEAR(s.length_all.spearman, 1.0, 1e-12);                            // completion_chars is filled by the reader
  ASSERT_EQ(s.warnings.size(), 3u) << ::testing::PrintToString(s.warnings);  // all, recent, canaries
  EXPECT_TRUE(
      absl::StrContains(s.warnings[0], "reward correlates with completion length (Spearman 1.00 over the all 12"));
  EXPECT_TRUE(absl::StrContains(s.warnings[2], "canary accuracy 50.0% (10 of 20)"));
  const std::string text = FormatSummary(s, 100);
  EXPECT_TRUE(absl::StrContains(text, "1.00 over 12 samples  WARNING")) << text;
  const nlohmann::json json = SummaryToJson(s);
  EXPECT_EQ(json["length_correlation"]["all"]["warn"], true);
  EXPECT_EQ(json["canary"]["passed"], 10);
}

TEST(Agreement, SpearmanDecisionsAndAccuracyAgainstReferences) {
  // Original 0, .2, .8, 1; rescored 0.1, 0.6, 0.7, 0.9: same order → Spearman 1; decisions at 0.5:
  // (F,F) (F,T) (T,T) (T,T) → 3 of 4 agree. References: right, wrong, right, none.
  const std::vector<ScorePair> pairs = {
      {0.0, 0.1, false}, {0.2, 0.6, false}, {0.8, 0.7, true}, {1.0, 0.9, std::nullopt}};
  const AgreementStats stats = ComputeAgreement(pairs, 0.5);
  EXPECT_EQ(stats.pairs, 4);
  EXPECT_NEAR(stats.spearman, 1.0, 1e-12);
  EXPECT_NEAR(stats.mean_abs_diff, (0.1 + 0.4 + 0.1 + 0.1) / 4, 1e-12);
  EXPECT_DOUBLE_EQ(stats.decision_agreement, 0.75);
  EXPECT_EQ(stats.with_reference, 3);
  EXPECT_DOUBLE_EQ(stats.original_accuracy, 1.0);        // F=false, F=false, T=true
  EXPECT_NEAR(stats.rescored_accuracy, 2.0 / 3, 1e-12);  // the second pair passes wrongly
  EXPECT_EQ(ReferenceCorrect("so the answer is 42", "42"), true);
  EXPECT_EQ(ReferenceCorrect("41", "42"), false);
  EXPECT_EQ(ReferenceCorrect("Paris", " Paris "), true);
  EXPECT_EQ(ReferenceCorrect("anything", ""), std::nullopt);
  EXPECT_TRUE(std::isnan(ComputeAgreement({}, 0.5).spearman));
}

TEST(TerminalText, OneLineTruncatesByColumnsAndFlattensNewlines) {
  EXPECT_EQ(OneLine("short", 10), "short");
  EXPECT_EQ(OneLine("abcdefghij", 5), "abcd…");
  EXPECT_EQ(OneLine("a\nb\tc", 10), "a⏎b c");
  EXPECT_EQ(OneLine("héllo wörld", 6), "héllo…");  // counted in characters, not bytes
  EXPECT_EQ(DisplayWidth("héllo…"), 6u);
  EXPECT_EQ(FormatNumber(0.41457), "0.415");
  EXPECT_EQ(FormatNumber(std::nan("")), "-");
  EXPECT_EQ(FormatNumber(2.5e7), "2.50e+07");
}

TEST(TerminalText, TablesShrinkTheirShrinkableColumnsToTheWidth) {
  TextTable table;
  table.AddColumn("id");
  table.AddColumn("reward", true);
  table.AddColumn("completion", false, true);
  table.AddRow({"judge-0:1", "0.500", std::string(200, 'c')});
  table.AddRow({"judge-0:2", "1.000", "short"});
  const std::string text = table.Render(50);
  const std::vector<std::string> lines = absl::StrSplit(text, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[0], "id         reward  completion");
  for (const std::string& line : lines) EXPECT_LE(DisplayWidth(line), 50u) << line;
  EXPECT_TRUE(absl::EndsWith(lines[1], "…")) << lines[1];
  EXPECT_EQ(lines[2], "judge-0:2   1.000  short");
}

TEST(TerminalText, CurvePlotPutsPointsAndBandWhereTheyBelong) {
  // Three points at x = 0, 1, 2 with y = 0, 0.5, 1 on a 3×3 grid: the diagonal from bottom left.
  const std::vector<CurvePoint> points = {{0, 0, NAN, NAN}, {1, 0.5, 0, 1}, {2, 1, NAN, NAN}};
  const std::string plot = PlotCurve(points, 10, 3, "reward");
  const std::vector<std::string> lines = absl::StrSplit(plot, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 6u) << plot;
  EXPECT_EQ(lines[0], "reward");
  // Columns: x=0 → 0, x=1 → round(4.5) = 5, x=2 → 9. The band at x=1 spans every row.
  EXPECT_EQ(lines[1], "1.000 |     :   *");
  EXPECT_EQ(lines[2], "      |     *    ");
  EXPECT_EQ(lines[3], "0.000 |*    :    ");
  EXPECT_EQ(lines[4], "      +----------");
  EXPECT_EQ(PlotCurve({}, 10, 3, "x"), "(no points)\n");
}

}  // namespace
}  // namespace rlj::logs
