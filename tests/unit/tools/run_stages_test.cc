// run_stages_test.cc: `rlj run`'s stages without processes: the reused before-RL evaluation, the learner
// ranks' environment, what a worker's end means and its restart backoff, the judges' poll (spend, outage,
// budget stop), the progress line (with the reverse KL to the teacher in distillation steps), early stopping,
// and summary.json's parts and last lines.
#include "tools/run_stages.h"

#include <gtest/gtest.h>

#include <fstream>

#include "learner/learner_server.h"
#include "test_util.h"

namespace rlj::tools {
namespace {

using ::rlj::testing::ScratchDir;

void WriteText(const std::string& path, const std::string& text) { std::ofstream(path) << text; }

logs::EvalPoint Point(const std::string& kind, int64_t step, double accuracy) {
  logs::EvalPoint point;
  point.kind = kind;
  point.step = step;
  point.accuracy = accuracy;
  return point;
}

v1::JudgeStatus JudgeAnswer(double cost_usd, bool exhausted, double outage_s, const std::string& outage_error) {
  v1::JudgeStatus status;
  status.set_cost_usd(cost_usd);
  status.set_budget_exhausted(exhausted);
  status.set_outage_seconds(outage_s);
  status.set_outage_error(outage_error);
  return status;
}

TEST(SavedEvalBeforeTest, ReusesOnlyAnEvaluationWithAnAccuracy) {
  ScratchDir dir;
  EXPECT_FALSE(SavedEvalBefore(dir.file("missing.json")).has_value());
  WriteText(dir.file("torn.json"), "{\"accuracy\": 0.");
  EXPECT_FALSE(SavedEvalBefore(dir.file("torn.json")).has_value());
  WriteText(dir.file("no_accuracy.json"), "{\"total\": 4}");
  EXPECT_FALSE(SavedEvalBefore(dir.file("no_accuracy.json")).has_value());
  WriteText(dir.file("array.json"), "[1, 2]");
  EXPECT_FALSE(SavedEvalBefore(dir.file("array.json")).has_value());
  WriteText(dir.file("eval_before.json"), "{\"accuracy\": 0.25, \"total\": 4}\n");
  const std::optional<nlohmann::json> saved = SavedEvalBefore(dir.file("eval_before.json"));
  ASSERT_TRUE(saved.has_value());
  EXPECT_EQ(*saved, nlohmann::json({{"accuracy", 0.25}, {"total", 4}}));
}

TEST(RankEnvironmentTest, GivesEveryRankTheTorchrunVariables) {
  EXPECT_EQ(RankEnvironment(2, 4, 29500),
            (std::vector<std::string>{"RANK=2", "WORLD_SIZE=4", "MASTER_ADDR=127.0.0.1", "MASTER_PORT=29500"}));
  EXPECT_EQ(RankEnvironment(0, 2, 1234)[0], "RANK=0");
}

TEST(WorkerExitTest, TheLearnerEndsTheRunWhenItEndsOnPurposeOrIsNotRestarted) {
  const ExitInfo finished{.exit_code = 0};
  const ExitInfo crashed{.exit_code = 1};
  const ExitInfo killed{.exit_code = -1, .signal = 9};
  const ExitInfo training_stopped{.exit_code = kLearnerExitTrainingStopped};
  EXPECT_TRUE(LearnerExitEndsRun(finished, /*restartable=*/true));
  EXPECT_TRUE(LearnerExitEndsRun(training_stopped, /*restartable=*/true));
  EXPECT_TRUE(LearnerExitEndsRun(crashed, /*restartable=*/false));
  EXPECT_FALSE(LearnerExitEndsRun(crashed, /*restartable=*/true));
  EXPECT_FALSE(LearnerExitEndsRun(killed, /*restartable=*/true));
}

TEST(WorkerExitTest, CrashedWorkersAreRestartedUntilTheLimit) {
  const ExitInfo crashed{.exit_code = 1};
  const ExitInfo training_stopped{.exit_code = kLearnerExitTrainingStopped};
  EXPECT_EQ(OnWorkerExit(ExitInfo{.exit_code = 0}, /*is_learner=*/false, 0), WorkerExit::kFinished);
  EXPECT_EQ(OnWorkerExit(ExitInfo{.exit_code = 0}, /*is_learner=*/true, kMaxRestarts), WorkerExit::kFinished);
  EXPECT_EQ(OnWorkerExit(training_stopped, /*is_learner=*/true, 0), WorkerExit::kStoppedOnPurpose);
  EXPECT_EQ(OnWorkerExit(training_stopped, /*is_learner=*/false, 0), WorkerExit::kRestart);  // only the learner's code
  EXPECT_EQ(OnWorkerExit(crashed, /*is_learner=*/false, kMaxRestarts - 1), WorkerExit::kRestart);
  EXPECT_EQ(OnWorkerExit(crashed, /*is_learner=*/false, kMaxRestarts), WorkerExit::kGiveUp);
  EXPECT_EQ(OnWorkerExit(ExitInfo{.exit_code = -1, .signal = 11}, /*is_learner=*/true, 2), WorkerExit::kRestart);
}

TEST(WorkerExitTest, RestartBackoffDoublesUpTo32Seconds) {
  EXPECT_EQ(RestartBackoff(1).count(), 1000);
  EXPECT_EQ(RestartBackoff(2).count(), 2000);
  EXPECT_EQ(RestartBackoff(5).count(), 16000);
  EXPECT_EQ(RestartBackoff(6).count(), 32000);
  EXPECT_EQ(RestartBackoff(9).count(), 32000);
}

TEST(JudgesPollTest, AddsSpendKeepsTheLongestOutageAndListsBackends) {
  JudgesNow now;
  v1::JudgeStatus first = JudgeAnswer(0.5, false, 10, "connection refused");
  v1::JudgeBackendStatus* backend = first.add_backends();
  backend->set_name("openai");
  backend->set_circuit("open");
  backend->set_calls(3);
  AddJudgeStatus(0, first, &now);
  AddJudgeStatus(1, JudgeAnswer(0.25, true, 30, "timed out"), &now);
  AddJudgeStatus(2, JudgeAnswer(0, false, 20, "reset"), &now);
  EXPECT_DOUBLE_EQ(now.spent_usd, 0.75);
  EXPECT_TRUE(now.budget_exhausted);
  EXPECT_DOUBLE_EQ(now.outage_s, 30);
  EXPECT_EQ(now.outage_error, "timed out");
  ASSERT_EQ(now.backends.size(), 3u);
  EXPECT_EQ(now.backends[0]["replica"], "judge-0");
  ASSERT_EQ(now.backends[0]["backends"].size(), 1u);
  EXPECT_EQ(now.backends[0]["backends"][0]["name"], "openai");
  EXPECT_EQ(now.backends[0]["backends"][0]["circuit"], "open");
  EXPECT_EQ(now.backends[0]["backends"][0]["calls"], "3");    // int64 in proto JSON
  EXPECT_EQ(now.backends[0]["backends"][0]["retries"], "0");  // every field, also the zero ones
  EXPECT_EQ(now.backends[2]["replica"], "judge-2");
  EXPECT_TRUE(now.backends[2]["backends"].empty());

  const nlohmann::json file = JudgeBackendsFile(now, 1700000000.5);
  EXPECT_DOUBLE_EQ(file["updated_unix_s"].get<double>(), 1700000000.5);
  EXPECT_EQ(file["judges"], now.backends);
}

TEST(JudgesPollTest, AnOutageLongerThanTheLimitFailsTheRun) {
  v1::JudgeConfig judge;
  JudgesNow now;
  now.outage_s = 1000;
  now.outage_error = "connection refused";
  judge.set_max_outage_s(0);
  RLJ_EXPECT_OK(OutageLimit(judge, now));  // judge.max_outage_s 0: never
  judge.clear_max_outage_s();
  now.outage_s = 900;
  RLJ_EXPECT_OK(OutageLimit(judge, now));  // the default limit, 900 s, is not yet passed
  judge.set_max_outage_s(60);
  now.outage_s = 60;
  RLJ_EXPECT_OK(OutageLimit(judge, now));
  now.outage_s = 61.4;
  const absl::Status failure = OutageLimit(judge, now);
  EXPECT_EQ(failure.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(failure.message(),
            "the judge's teacher has been unreachable for 61 s (judge.max_outage_s = 60): stopping the run; the "
            "learner checkpoints and `rlj run --resume` continues it. Last error: connection refused");
}

TEST(JudgesPollTest, ASpentBudgetStopsTheRun) {
  v1::JudgeConfig judge;
  JudgesNow now;
  now.spent_usd = 5;
  now.budget_exhausted = true;
  EXPECT_EQ(BudgetStopReason(judge, now), "");  // no judge.budget_usd
  judge.set_budget_usd(1);
  now.spent_usd = 0.5;
  now.budget_exhausted = false;
  EXPECT_EQ(BudgetStopReason(judge, now), "");
  now.spent_usd = 1;
  EXPECT_EQ(BudgetStopReason(judge, now), "the judge's budget is spent ($1.0000 of judge.budget_usd $1.0000)");
  now.spent_usd = 0.2;
  now.budget_exhausted = true;  // one judge has spent its own share
  EXPECT_EQ(BudgetStopReason(judge, now), "the judge's budget is spent ($0.2000 of judge.budget_usd $1.0000)");
}

TEST(ProgressTest, FormatsDurationsAsMinutesAndSeconds) {
  EXPECT_EQ(FormatDuration(0), "00:00");
  EXPECT_EQ(FormatDuration(59.9), "00:59");
  EXPECT_EQ(FormatDuration(61), "01:01");
  EXPECT_EQ(FormatDuration(3600), "60:00");
  EXPECT_EQ(FormatDuration(-5), "00:00");
}

v1::LearnerStatus StatusAtStep(int64_t step, int64_t total_steps) {
  v1::LearnerStatus status;
  status.set_step(step);
  status.set_total_steps(total_steps);
  status.set_version(step);
  status.mutable_last()->set_reward_mean(0.5);
  status.mutable_last()->set_reward_std(0.25);
  status.mutable_last()->set_kl(0.01);
  status.mutable_last()->set_tokens_per_s(1234.4);
  status.set_sample_tokens_per_s(567.8);
  status.set_groups_received(40);
  status.set_groups_dropped_stale(2);
  status.set_samples_masked(3);
  return status;
}

logs::JudgeTrafficSnapshot Traffic() {
  logs::JudgeTrafficSnapshot traffic;
  traffic.verdicts = 10;
  traffic.cache_hits = 5;
  traffic.cost_usd = 0.0123;
  traffic.latency_p50_ms = 120;
  traffic.latency_p95_ms = 340;
  return traffic;
}

TEST(ProgressTest, ShowsTheStepTheJudgeAndTheEta) {
  // 100 s of training for 10 steps: 90 more take 15 minutes.
  EXPECT_EQ(ProgressLine(StatusAtStep(10, 100), Traffic(), JudgesNow(), /*elapsed_s=*/130, /*training_start_s=*/30),
            "step 10/100 v10 | reward 0.500 ±0.250 | kl 0.0100 | train tok/s 1234 | sample tok/s 568 | groups 40 "
            "(stale 2, masked samples 3) | judge p50/p95 120/340 ms, cache 50%, $0.0123 | 02:10 ETA 15:00");
}

TEST(ProgressTest, ShowsTheReverseKlToTheTeacherOnlyInDistillationSteps) {
  v1::LearnerStatus status = StatusAtStep(10, 100);
  status.mutable_last()->set_teacher_reverse_kl(0.4204);
  // No teacher tokens this step: the field is not a measurement and the line is the one without distillation.
  EXPECT_EQ(ProgressLine(status, Traffic(), JudgesNow(), 130, 30),
            ProgressLine(StatusAtStep(10, 100), Traffic(), JudgesNow(), 130, 30));
  status.mutable_last()->set_distill_tokens(512);
  const std::string line = ProgressLine(status, Traffic(), JudgesNow(), 130, 30);
  EXPECT_NE(line.find("| kl 0.0100 | rkl 0.420 | train tok/s 1234 |"), std::string::npos) << line;
}

TEST(ProgressTest, HasNoEtaBeforeTheFirstStepOrAfterTheLast) {
  const std::string before = ProgressLine(StatusAtStep(0, 100), Traffic(), JudgesNow(), 130, 30);
  EXPECT_NE(before.find("| 02:10 ETA --:--"), std::string::npos) << before;
  const std::string after = ProgressLine(StatusAtStep(100, 100), Traffic(), JudgesNow(), 130, 30);
  EXPECT_NE(after.find("| 02:10 ETA --:--"), std::string::npos) << after;
}

TEST(ProgressTest, EndsWithSkippedBatchesAndATeacherOutage) {
  v1::LearnerStatus status = StatusAtStep(10, 100);
  status.set_batches_skipped_all_masked(1);
  status.set_batches_skipped_no_signal(2);
  JudgesNow judges;
  judges.outage_s = 42.4;
  const std::string line = ProgressLine(status, Traffic(), judges, 130, 30);
  const std::string tail =
      " | 02:10 ETA 15:00 | skipped batches 3 (all masked 1, no signal 2) | TEACHER OUTAGE 42 s: waiting";
  ASSERT_GE(line.size(), tail.size());
  EXPECT_EQ(line.substr(line.size() - tail.size()), tail);
}

TEST(ProgressTest, ShowsTheLatestHeldOutPoint) {
  EXPECT_EQ(HeldOutProgress(false, Point("periodic", 20, 0.5)), "");
  EXPECT_EQ(HeldOutProgress(true, std::nullopt), " | held-out: pending");
  EXPECT_EQ(HeldOutProgress(true, Point("periodic", 20, 0.4567)), " | held-out 0.457 @20");
}

TEST(EarlyStopTest, NamesTheBestPointKept) {
  EXPECT_EQ(EarlyStopReason(3, Point("periodic", 40, 0.5), "/runs/demo/best"),
            "no held-out gain in 3 evaluations (eval.stop_when_no_gain_for): the best was accuracy 0.500 at step 40, "
            "kept in /runs/demo/best");
  EXPECT_EQ(EarlyStopReason(2, std::nullopt, "/runs/demo/best"),
            "no held-out gain in 2 evaluations (eval.stop_when_no_gain_for): the best was accuracy 0.000 at step 0, "
            "kept in /runs/demo/best");
}

std::vector<v1::StepMetrics> StepLog(int64_t steps) {
  std::vector<v1::StepMetrics> log;
  for (int64_t step = 1; step <= steps; ++step) {
    v1::StepMetrics& m = log.emplace_back();
    m.set_step(step);
    m.set_version(step);
    m.set_reward_mean(0.1 * static_cast<double>(step));
    m.set_reward_std(0.5);
    m.set_kl(0.02);
    m.set_step_s(1.5);
  }
  return log;
}

TEST(SummaryTest, TakesStepsFromTheLearnersLogWhenThePollLags) {
  RunOutcome outcome;
  outcome.status.set_step(4);
  outcome.status.set_version(4);
  outcome.status.set_groups_received(40);
  outcome.status.set_groups_dropped_stale(3);
  outcome.status.set_groups_skipped_no_signal(2);
  outcome.status.set_samples_masked(7);
  outcome.status.set_batches_skipped_all_masked(1);
  outcome.status.set_batches_skipped_no_signal(5);
  outcome.interrupted = true;
  outcome.stop_reason = "the judge's budget is spent ($1.0000 of judge.budget_usd $1.0000)";
  nlohmann::json summary = {{"name", "demo"}};
  AddTrainingSummary(outcome, StepLog(5), /*training_s=*/12.5, &summary);
  EXPECT_EQ(summary["name"], "demo");
  EXPECT_EQ(summary["steps"], 5);
  EXPECT_EQ(summary["policy_version"], 5);
  EXPECT_EQ(summary["interrupted"], true);
  EXPECT_EQ(summary["stop_reason"], outcome.stop_reason);
  EXPECT_EQ(summary["groups_received"], 40);
  EXPECT_EQ(summary["groups_dropped_stale"], 3);
  EXPECT_EQ(summary["groups_skipped_no_signal"], 2);
  EXPECT_EQ(summary["samples_masked"], 7);
  EXPECT_EQ(summary["batches_skipped"], nlohmann::json({{"all_masked", 1}, {"no_signal", 5}}));
  ASSERT_EQ(summary["reward_curve"].size(), 5u);
  EXPECT_EQ(
      summary["reward_curve"][4],
      nlohmann::json({{"step", 5}, {"reward_mean", 0.1 * 5}, {"reward_std", 0.5}, {"kl", 0.02}, {"step_s", 1.5}}));
  EXPECT_DOUBLE_EQ(summary["training_s"].get<double>(), 12.5);
}

TEST(SummaryTest, KeepsThePolledStatusWhenTheLogIsBehindOrUnreadable) {
  RunOutcome outcome;
  outcome.status.set_step(6);
  outcome.status.set_version(7);
  outcome.early_stop = "no held-out gain";
  nlohmann::json summary;
  AddTrainingSummary(outcome, StepLog(5), 3, &summary);
  EXPECT_EQ(summary["steps"], 6);
  EXPECT_EQ(summary["policy_version"], 7);
  EXPECT_EQ(summary["interrupted"], false);
  EXPECT_EQ(summary["stop_reason"], "no held-out gain");
  EXPECT_EQ(summary["reward_curve"].size(), 5u);

  nlohmann::json unreadable;
  AddTrainingSummary(outcome, absl::NotFoundError("no metrics.jsonl"), 3, &unreadable);
  EXPECT_EQ(unreadable["steps"], 6);
  EXPECT_EQ(unreadable["reward_curve"], nlohmann::json::array());

  outcome.early_stop.clear();
  nlohmann::json no_stop;
  AddTrainingSummary(outcome, std::vector<v1::StepMetrics>(), 3, &no_stop);
  EXPECT_FALSE(no_stop.contains("stop_reason"));
  EXPECT_EQ(no_stop["steps"], 6);
}

TEST(SummaryTest, TheBudgetStopReasonWinsOverAnEarlyStop) {
  RunOutcome outcome;
  outcome.early_stop = "no held-out gain";
  outcome.stop_reason = "the judge's budget is spent";
  nlohmann::json summary;
  AddTrainingSummary(outcome, std::vector<v1::StepMetrics>(), 0, &summary);
  EXPECT_EQ(summary["stop_reason"], "the judge's budget is spent");
}

TEST(SummaryTest, FindsTheLatestCheckpoint) {
  ScratchDir dir;
  EXPECT_FALSE(LatestCheckpoint(dir.path()).ok());
  WriteText(dir.file("latest"), "step-40 \n");
  RLJ_ASSERT_OK_AND_ASSIGN(const std::string checkpoint, LatestCheckpoint(dir.path()));
  EXPECT_EQ(checkpoint, dir.path() + "/step-40");
}

TEST(SummaryTest, AddsTheEvalCurveAndItsBestPeriodicPoint) {
  nlohmann::json summary = nlohmann::json::object();
  AddEvalCurveSummary({}, "/runs/demo/best", &summary);
  EXPECT_TRUE(summary.empty());

  AddEvalCurveSummary({Point("before", 0, 0.2), Point("after", 50, 0.9)}, "/runs/demo/best", &summary);
  EXPECT_EQ(summary["eval_curve"].size(), 2u);
  EXPECT_FALSE(summary.contains("best_checkpoint"));  // no periodic point

  const std::vector<logs::EvalPoint> curve = {Point("before", 0, 0.2), Point("periodic", 10, 0.3),
                                              Point("periodic", 20, 0.5), Point("periodic", 30, 0.5),
                                              Point("after", 40, 0.9)};
  AddEvalCurveSummary(curve, "/runs/demo/best", &summary);
  ASSERT_EQ(summary["eval_curve"].size(), 5u);
  EXPECT_EQ(summary["eval_curve"][2], logs::EvalPointToJson(curve[2]));
  EXPECT_EQ(summary["best_checkpoint"], nlohmann::json({{"step", 20}, {"accuracy", 0.5}, {"path", "/runs/demo/best"}}));
}

TEST(SummaryTest, TheLastLinesShowHeldOutAccuracyBeforeAndAfter) {
  nlohmann::json summary = {{"eval_before", {{"accuracy", 0.25}}}};
  EXPECT_EQ(FinalReport("demo", 12, 65.5, summary, "/runs/demo/summary.json"),
            "run demo: 12 steps in 01:05\nsummary: /runs/demo/summary.json\n");
  summary["eval_after"] = {{"accuracy", 0.5}};
  EXPECT_EQ(FinalReport("demo", 12, 65.5, summary, "/runs/demo/summary.json"),
            "run demo: 12 steps in 01:05 | held-out accuracy 0.250 -> 0.500\nsummary: /runs/demo/summary.json\n");
  summary["alarms"] = {"canary accuracy 30.5% (1194 of 3916): the judge misgrades known answers"};
  EXPECT_EQ(FinalReport("demo", 12, 65.5, summary, "/runs/demo/summary.json"),
            "run demo: 12 steps in 01:05 | held-out accuracy 0.250 -> 0.500\n"
            "ALARM: canary accuracy 30.5% (1194 of 3916): the judge misgrades known answers\n"
            "summary: /runs/demo/summary.json\n");
}

TEST(ProgressTest, AlarmsCompareTheLatestHeldOutPointWithTheBeforeOne) {
  logs::JudgeTrafficSnapshot judge;
  judge.reward_first = 0.6;
  judge.reward_recent = 0.77;
  EXPECT_EQ(ProgressAlarms(judge, 0.558, Point("periodic", 100, 0.01)), " | ALARM held-out 0.010 < 0.558 before RL");
  EXPECT_EQ(ProgressAlarms(judge, 0.558, Point("periodic", 100, 0.5)), "");
  EXPECT_EQ(ProgressAlarms(judge, std::nullopt, Point("periodic", 100, 0.01)), "");
  EXPECT_EQ(ProgressAlarms(judge, 0.558, std::nullopt), "");
  EXPECT_EQ(EvalBeforeAccuracy({{"eval_before", {{"accuracy", 0.25}}}}), 0.25);
  EXPECT_EQ(EvalBeforeAccuracy(nlohmann::json::object()), std::nullopt);
}

}  // namespace
}  // namespace rlj::tools
