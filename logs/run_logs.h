// run_logs.h: what `rlj logs` reads from a run directory: the verdict rows of every judge replica
// (<run>/reward_log/*.sqlite), the learner's per-step metrics (<run>/metrics.jsonl, when present), the teacher
// backends' machinery (<run>/judge_backends.json, when present), and
// the ways rows are picked out of them (by id, by pattern, best and worst by reward).
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/reward_log.h"
#include "logs/eval_curve.h"
#include "rlj/v1/judge.pb.h"
#include "rlj/v1/learner.pb.h"

namespace rlj::logs {

struct RunLogs {
  std::string run_dir;                 // as given
  std::string reward_log;              // the directory or file the rows came from
  std::vector<RewardLogRow> rows;      // every replica, by time
  std::vector<v1::StepMetrics> steps;  // the learner's metrics.jsonl; empty when there is none
  // Each judge replica's teacher backends as `rlj run` last saw them (judge_backends.json); empty without it.
  std::vector<v1::JudgeBackendStatus> backends;
  // Held-out evaluations over the steps (eval_curve.jsonl); empty without it.
  std::vector<EvalPoint> eval_curve;
};

// `path` is a run directory (reward_log/ inside), a directory of *.sqlite files, or one reward log file.
// A run directory without any reward log is NotFound naming what was looked for.
absl::StatusOr<RunLogs> LoadRunLogs(const std::string& path, const RewardLogReadOptions& options = {});

// Where LoadRunLogs finds the reward log of `path` (see above).
absl::StatusOr<std::string> RewardLogLocation(const std::string& path);

// judge_backends.json (written by `rlj run`): every replica's teacher backends, in file order.
absl::StatusOr<std::vector<v1::JudgeBackendStatus>> ReadJudgeBackends(const std::string& path);

// A row's id for people: "<replica>:<id>" (ids are per replica file).
std::string RowKey(const RewardLogRow& row);

// The row `key` names: "<replica>:<id>", or a bare id when it is unambiguous (one replica has it). Errors
// name the key and, for an ambiguous bare id, the replicas that have it.
absl::StatusOr<const RewardLogRow*> FindRow(const std::vector<RewardLogRow>& rows, const std::string& key);

// Rows whose prompt, completion, reference, rationale, raw answer or error message matches the RE2
// `pattern` (unanchored). A bad pattern is InvalidArgument.
absl::StatusOr<std::vector<const RewardLogRow*>> GrepRows(const std::vector<RewardLogRow>& rows,
                                                          const std::string& pattern);

// The `n` train rows with the highest (top) or lowest reward; failed verdicts have no reward and are left
// out. Ties keep log order.
std::vector<const RewardLogRow*> RankByReward(const std::vector<RewardLogRow>& rows, size_t n, bool highest);

}  // namespace rlj::logs
