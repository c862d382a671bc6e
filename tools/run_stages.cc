// run_stages.cc: the decisions and texts of `rlj run`'s stages, free of processes and RPCs.
#include "tools/run_stages.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/file_util.h"
#include "google/protobuf/util/json_util.h"
#include "learner/learner_server.h"
#include "logs/judge_alarms.h"
#include "logs/run_logs.h"
#include "logs/summary.h"

namespace rlj::tools {
namespace {

// The progress line's tail: batches that trained nothing (not steps) and a teacher outage being waited out.
std::string SkipsAndOutage(const v1::LearnerStatus& status, const JudgesNow& judges) {
  std::string tail;
  const int64_t skipped = status.batches_skipped_all_masked() + status.batches_skipped_no_signal();
  if (skipped > 0) {
    tail = absl::StrFormat(" | skipped batches %d (all masked %d, no signal %d)", skipped,
                           status.batches_skipped_all_masked(), status.batches_skipped_no_signal());
  }
  if (judges.outage_s > 0) tail += absl::StrFormat(" | TEACHER OUTAGE %.0f s: waiting", judges.outage_s);
  return tail;
}

// The reverse KL to the teacher after the learner's KL, only in steps with teacher log-probabilities
// (learner.distill): other runs keep the line they had.
std::string TeacherReverseKl(const v1::StepMetrics& m) {
  if (m.distill_tokens() <= 0) return "";
  return absl::StrFormat(" | rkl %.3f", m.teacher_reverse_kl());
}

// One teacher backend's status as judge_backends.json holds it (proto field names, every field).
std::optional<nlohmann::json> BackendJson(const v1::JudgeBackendStatus& backend) {
  std::string json;
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  options.always_print_primitive_fields = true;
  if (!google::protobuf::util::MessageToJsonString(backend, &json, options).ok()) return std::nullopt;
  return nlohmann::json::parse(json, nullptr, /*allow_exceptions=*/false);
}

}  // namespace

std::optional<nlohmann::json> SavedEvalBefore(const std::string& path) {
  absl::StatusOr<std::string> saved = ReadFile(path);
  if (!saved.ok()) return std::nullopt;
  nlohmann::json eval_before = nlohmann::json::parse(*saved, nullptr, /*allow_exceptions=*/false);
  if (eval_before.is_discarded() || !eval_before.contains("accuracy")) return std::nullopt;
  return eval_before;
}

std::vector<std::string> RankEnvironment(int rank, int rank_count, int master_port) {
  return {absl::StrCat("RANK=", rank), absl::StrCat("WORLD_SIZE=", rank_count), "MASTER_ADDR=127.0.0.1",
          absl::StrCat("MASTER_PORT=", master_port)};
}

bool LearnerExitEndsRun(const ExitInfo& exit, bool restartable) {
  return exit.ok() || !restartable || exit.exit_code == kLearnerExitTrainingStopped;
}

WorkerExit OnWorkerExit(const ExitInfo& exit, bool is_learner, int restarts_so_far) {
  if (exit.ok()) return WorkerExit::kFinished;
  if (is_learner && exit.exit_code == kLearnerExitTrainingStopped) return WorkerExit::kStoppedOnPurpose;
  if (restarts_so_far >= kMaxRestarts) return WorkerExit::kGiveUp;
  return WorkerExit::kRestart;
}

std::chrono::milliseconds RestartBackoff(int restart) {
  return std::chrono::milliseconds(500LL << std::min(restart, 6));
}

void AddJudgeStatus(size_t replica, const v1::JudgeStatus& status, JudgesNow* now) {
  nlohmann::json backends = nlohmann::json::array();
  for (const v1::JudgeBackendStatus& backend : status.backends()) {
    if (std::optional<nlohmann::json> json = BackendJson(backend)) backends.push_back(*std::move(json));
  }
  now->backends.push_back({{"replica", absl::StrCat("judge-", replica)}, {"backends", std::move(backends)}});
  now->spent_usd += status.cost_usd();
  now->budget_exhausted = now->budget_exhausted || status.budget_exhausted();
  if (status.outage_seconds() > now->outage_s) {
    now->outage_s = status.outage_seconds();
    now->outage_error = status.outage_error();
  }
}

nlohmann::json JudgeBackendsFile(const JudgesNow& now, double updated_unix_s) {
  return {{"updated_unix_s", updated_unix_s}, {"judges", now.backends}};
}

absl::Status OutageLimit(const v1::JudgeConfig& judge, const JudgesNow& now) {
  if (judge.max_outage_s() <= 0 || now.outage_s <= judge.max_outage_s()) return absl::OkStatus();
  return absl::UnavailableError(absl::StrFormat(
      "the judge's teacher has been unreachable for %.0f s (judge.max_outage_s = %d): stopping the run; the learner "
      "checkpoints and `rlj run --resume` continues it. Last error: %s",
      now.outage_s, judge.max_outage_s(), now.outage_error));
}

std::string BudgetStopReason(const v1::JudgeConfig& judge, const JudgesNow& now) {
  const double budget = judge.budget_usd();
  if (!(budget > 0 && (now.budget_exhausted || now.spent_usd >= budget))) return "";
  return absl::StrFormat("the judge's budget is spent ($%.4f of judge.budget_usd $%.4f)", now.spent_usd, budget);
}

std::string FormatDuration(double seconds) {
  const int s = static_cast<int>(std::max(0.0, seconds));
  return absl::StrFormat("%02d:%02d", s / 60, s % 60);
}

std::string ProgressLine(const v1::LearnerStatus& status, const logs::JudgeTrafficSnapshot& judge,
                         const JudgesNow& judges, double elapsed_s, double training_start_s) {
  const v1::StepMetrics& m = status.last();
  std::string eta = "--:--";
  if (status.step() > 0 && status.total_steps() > status.step()) {
    const double per_step = (elapsed_s - training_start_s) / status.step();
    eta = FormatDuration(per_step * (status.total_steps() - status.step()));
  }
  return absl::StrFormat("step %d/%d v%d | reward %.3f ±%.3f | kl %.4f", status.step(), status.total_steps(),
                         status.version(), m.reward_mean(), m.reward_std(), m.kl()) +
         TeacherReverseKl(m) +
         absl::StrFormat(
             " | train tok/s %.0f | sample tok/s %.0f | groups %d (stale %d, masked samples %d) | "
             "judge p50/p95 %.0f/%.0f ms, cache %.0f%%, $%.4f | %s ETA %s",
             m.tokens_per_s(), status.sample_tokens_per_s(), status.groups_received(), status.groups_dropped_stale(),
             status.samples_masked(), judge.latency_p50_ms, judge.latency_p95_ms, 100 * judge.cache_hit_rate(),
             judge.cost_usd, FormatDuration(elapsed_s), eta) +
         SkipsAndOutage(status, judges);
}

std::string HeldOutProgress(bool periodic, const std::optional<logs::EvalPoint>& latest) {
  if (!periodic) return "";
  if (!latest) return " | held-out: pending";
  return absl::StrFormat(" | held-out %.3f @%d", latest->accuracy, latest->step);
}

std::optional<double> EvalBeforeAccuracy(const nlohmann::json& summary) {
  const auto before = summary.find("eval_before");
  if (before == summary.end() || !before->contains("accuracy") || !(*before)["accuracy"].is_number()) {
    return std::nullopt;
  }
  return (*before)["accuracy"].get<double>();
}

std::string ProgressAlarms(const logs::JudgeTrafficSnapshot& judge, std::optional<double> eval_before,
                           const std::optional<logs::EvalPoint>& latest) {
  std::vector<logs::EvalPoint> curve;
  if (eval_before && latest) {
    logs::EvalPoint before;
    before.kind = "before";
    before.accuracy = *eval_before;
    curve = {before, *latest};
  }
  return logs::AlarmTags(judge.canary, judge.length, curve, judge.reward_first, judge.reward_recent);
}

std::vector<std::string> JudgeAlarmsOfRun(const std::string& run_dir, const v1::QualityConfig& quality) {
  RewardLogReadOptions options;
  options.with_text = false;
  absl::StatusOr<logs::RunLogs> run_logs = logs::LoadRunLogs(run_dir, options);
  if (!run_logs.ok()) return {absl::StrCat("the reward logs could not be read: ", run_logs.status().message())};
  return logs::Summarize(*run_logs, logs::SummaryOptionsFromConfig(quality)).warnings;
}

std::string EarlyStopReason(int no_gain_for, const std::optional<logs::EvalPoint>& best,
                            const std::string& best_checkpoint_dir) {
  return absl::StrFormat(
      "no held-out gain in %d evaluations (eval.stop_when_no_gain_for): the best was "
      "accuracy %.3f at step %d, kept in %s",
      no_gain_for, best ? best->accuracy : 0.0, best ? best->step : 0, best_checkpoint_dir);
}

void AddTrainingSummary(const RunOutcome& outcome, const absl::StatusOr<std::vector<v1::StepMetrics>>& steps,
                        double training_s, nlohmann::json* summary) {
  const v1::LearnerStatus& status = outcome.status;
  nlohmann::json& out = *summary;
  out["steps"] = status.step();
  out["policy_version"] = status.version();
  out["interrupted"] = outcome.interrupted;
  if (!outcome.early_stop.empty()) out["stop_reason"] = outcome.early_stop;
  if (!outcome.stop_reason.empty()) out["stop_reason"] = outcome.stop_reason;
  out["groups_received"] = status.groups_received();
  out["groups_dropped_stale"] = status.groups_dropped_stale();
  out["groups_skipped_no_signal"] = status.groups_skipped_no_signal();
  out["samples_masked"] = status.samples_masked();
  // Batches the learner could not learn from: not steps (no update, no new version), counted by reason.
  out["batches_skipped"] = {{"all_masked", status.batches_skipped_all_masked()},
                            {"no_signal", status.batches_skipped_no_signal()}};
  // The curve comes from the learner's own per-step log, not from polling (which can miss fast steps).
  nlohmann::json reward_curve = nlohmann::json::array();
  if (steps.ok()) {
    for (const v1::StepMetrics& m : *steps) {
      reward_curve.push_back({{"step", m.step()},
                              {"reward_mean", m.reward_mean()},
                              {"reward_std", m.reward_std()},
                              {"kl", m.kl()},
                              {"step_s", m.step_s()}});
    }
    // The last status polled can lag the learner by a step or more (a stop request ends polling); its own
    // per-step log says where it really got to.
    if (!steps->empty()) {
      out["steps"] = std::max<int64_t>(status.step(), steps->back().step());
      out["policy_version"] = std::max<int64_t>(status.version(), steps->back().version());
    }
  }
  out["reward_curve"] = reward_curve;
  out["training_s"] = training_s;
}

absl::StatusOr<std::string> LatestCheckpoint(const std::string& checkpoints_dir) {
  absl::StatusOr<std::string> latest = ReadFile(checkpoints_dir + "/latest");
  if (!latest.ok()) return latest.status();
  std::string name = *latest;
  while (!name.empty() && (name.back() == '\n' || name.back() == ' ')) name.pop_back();
  return checkpoints_dir + "/" + name;
}

void AddEvalCurveSummary(const std::vector<logs::EvalPoint>& curve, const std::string& best_checkpoint_dir,
                         nlohmann::json* summary) {
  if (curve.empty()) return;
  nlohmann::json points = nlohmann::json::array();
  for (const logs::EvalPoint& point : curve) points.push_back(logs::EvalPointToJson(point));
  (*summary)["eval_curve"] = points;
  if (const logs::EvalPoint* best = logs::BestPeriodicPoint(curve); best != nullptr) {
    (*summary)["best_checkpoint"] = {{"step", best->step}, {"accuracy", best->accuracy}, {"path", best_checkpoint_dir}};
  }
}

std::string FinalReport(const std::string& name, int64_t steps, double wall_s, const nlohmann::json& summary,
                        const std::string& summary_path) {
  std::string report =
      absl::StrFormat("run %s: %lld steps in %s", name, static_cast<long long>(steps), FormatDuration(wall_s));
  if (summary.contains("eval_before") && summary.contains("eval_after")) {
    absl::StrAppendFormat(&report, " | held-out accuracy %.3f -> %.3f",
                          summary["eval_before"]["accuracy"].get<double>(),
                          summary["eval_after"]["accuracy"].get<double>());
  }
  if (const auto alarms = summary.find("alarms"); alarms != summary.end() && alarms->is_array()) {
    for (const auto& alarm : *alarms) absl::StrAppend(&report, "\nALARM: ", alarm.get<std::string>());
  }
  absl::StrAppend(&report, "\nsummary: ", summary_path, "\n");
  return report;
}

}  // namespace rlj::tools
