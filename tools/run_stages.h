// run_stages.h: what `rlj run`'s stages decide and say, apart from the processes they watch: the reused
// before-RL evaluation, the learner ranks' environment, what a worker's end means, the judges' poll (outage,
// budget), the progress line, early stopping and summary.json; each is tested on its own.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/subprocess.h"
#include "logs/eval_curve.h"
#include "logs/judge_traffic.h"
#include "rlj/v1/config.pb.h"
#include "rlj/v1/judge.pb.h"
#include "rlj/v1/learner.pb.h"

namespace rlj::tools {

// How often a crashed worker is restarted before the run gives up.
inline constexpr int kMaxRestarts = 5;

// The before-RL evaluation a resumed run reuses (eval_before.json); none when the file is missing, not JSON
// or has no accuracy.
std::optional<nlohmann::json> SavedEvalBefore(const std::string& path);

// The torchrun variables of data-parallel learner rank `rank` of `rank_count` ("K=V" entries).
std::vector<std::string> RankEnvironment(int rank, int rank_count, int master_port);

// Whether the learner's end, seen while the run is watched, ends the run: it ended on purpose (0, or
// training stopped), or it is not restarted (data-parallel ranks).
bool LearnerExitEndsRun(const ExitInfo& exit, bool restartable);

// What the supervisor does with a worker (learner, teacher, judge, actor) that ended.
enum class WorkerExit {
  kFinished,          // ended with 0, on purpose (the learner reported done): not restarted
  kStoppedOnPurpose,  // the learner stopped training (kLearnerExitTrainingStopped): the run fails
  kGiveUp,            // crashed after kMaxRestarts restarts: the run fails
  kRestart,           // crashed: restarted after RestartBackoff
};
WorkerExit OnWorkerExit(const ExitInfo& exit, bool is_learner, int restarts_so_far);

// How long the supervisor waits before the `restart`-th restart of a worker (1, 2, …): doubling from 1 s,
// at most 32 s.
std::chrono::milliseconds RestartBackoff(int restart);

// What the supervisor reads from its judges on each poll: their spend and the longest current teacher outage.
struct JudgesNow {
  double spent_usd = 0;
  bool budget_exhausted = false;
  double outage_s = 0;       // the longest current outage among the judges; 0 = every backend reachable
  std::string outage_error;  // that outage's last error
  nlohmann::json backends = nlohmann::json::array();  // per replica: its teacher backends (judge_backends.json)
};

// Adds what judge replica `replica` answered to Judge.Status.
void AddJudgeStatus(size_t replica, const v1::JudgeStatus& status, JudgesNow* now);

// judge_backends.json's content: when, and every replica's teacher backends.
nlohmann::json JudgeBackendsFile(const JudgesNow& now, double updated_unix_s);

// The run's failure once a judge's backend has been unreachable longer than judge.max_outage_s (0 = never).
absl::Status OutageLimit(const v1::JudgeConfig& judge, const JudgesNow& now);

// Why the run stops like on Ctrl-C: the judges' spend together reached judge.budget_usd, or one of them has
// spent its own; empty while there is budget left (or none is set).
std::string BudgetStopReason(const v1::JudgeConfig& judge, const JudgesNow& now);

// mm:ss.
std::string FormatDuration(double seconds);

// One progress line: step, reward, KL (and the reverse KL to the teacher in distillation steps), throughput,
// groups, judge traffic, elapsed time and ETA, skipped batches and a teacher outage being waited out.
std::string ProgressLine(const v1::LearnerStatus& status, const logs::JudgeTrafficSnapshot& judge,
                         const JudgesNow& judges, double elapsed_s, double training_start_s);

// The progress line's held-out part: nothing without periodic evaluation, "pending" before its first point.
std::string HeldOutProgress(bool periodic, const std::optional<logs::EvalPoint>& latest);

// The before-RL held-out accuracy in the summary so far; none without one.
std::optional<double> EvalBeforeAccuracy(const nlohmann::json& summary);

// The judge alarms that fire now (logs/judge_alarms), as progress-line tags: the canaries and the reward/length
// correlation the reward logs show so far, and the latest held-out point against the before-RL one.
std::string ProgressAlarms(const logs::JudgeTrafficSnapshot& judge, std::optional<double> eval_before,
                           const std::optional<logs::EvalPoint>& latest);

// Every warning `rlj logs summary` gives for the run directory (judge alarms, failed verdicts, ...), for
// summary.json; a reward log that cannot be read is one warning saying so.
std::vector<std::string> JudgeAlarmsOfRun(const std::string& run_dir, const v1::QualityConfig& quality);

// Why periodic evaluation ends training (eval.stop_when_no_gain_for), naming the best point kept.
std::string EarlyStopReason(int no_gain_for, const std::optional<logs::EvalPoint>& best,
                            const std::string& best_checkpoint_dir);

// How the watched part of a run ended.
struct RunOutcome {
  v1::LearnerStatus status;  // the learner's status last polled
  bool interrupted = false;  // stopped by a signal or the judges' budget
  std::string early_stop;    // why periodic evaluation ended training; empty = it did not
  std::string stop_reason;   // why the judges' budget ended the run; empty = it did not
};

// summary.json's training part: steps and policy version (the learner's per-step log where it got further
// than the last status polled), how it stopped, group and batch counts, the reward curve and training_s.
// `steps` is the learner's per-step log (metrics.jsonl); unreadable = no curve.
void AddTrainingSummary(const RunOutcome& outcome, const absl::StatusOr<std::vector<v1::StepMetrics>>& steps,
                        double training_s, nlohmann::json* summary);

// The newest checkpoint the learner wrote: <checkpoints_dir>/<the name in checkpoints_dir/latest>.
absl::StatusOr<std::string> LatestCheckpoint(const std::string& checkpoints_dir);

// summary.json's eval curve and the best periodic point (kept in `best_checkpoint_dir`); nothing for an
// empty curve.
void AddEvalCurveSummary(const std::vector<logs::EvalPoint>& curve, const std::string& best_checkpoint_dir,
                         nlohmann::json* summary);

// The run's last lines: steps, time, held-out accuracy before -> after when both were measured, and where
// the summary is.
std::string FinalReport(const std::string& name, int64_t steps, double wall_s, const nlohmann::json& summary,
                        const std::string& summary_path);

}  // namespace rlj::tools
