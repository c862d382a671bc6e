// summary.h: a run at a glance (`rlj logs summary`): counts, reward spread and trend, judge latency, cost,
// tokens, cache hits, errors grouped by kind, canary accuracy, self-consistency, the reward/length
// correlation warning, the reverse KL to the teacher (distillation runs), the teacher backends' retries by cause,
// breaker and concurrency, and the learner's last metrics; as a terminal table or as JSON.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "logs/distill_signal.h"
#include "logs/quality_signals.h"
#include "logs/run_logs.h"
#include "nlohmann/json.hpp"
#include "rlj/v1/config.pb.h"

namespace rlj::logs {

struct SummaryOptions {
  double consistency_tolerance = 0.1;
  double length_threshold = 0.5;
  int64_t length_min_samples = 64;
  int64_t length_recent = 512;  // the "recent" correlation looks at the last this many scored samples
};

// The quality section of a run config as summary options.
SummaryOptions SummaryOptionsFromConfig(const v1::QualityConfig& quality);

struct ErrorGroup {
  std::string kind;
  int64_t count = 0;
  std::string example_message;  // the most recent message of this kind
  std::string example_key;      // its row (replica:id)
  double first_time_unix_s = 0, last_time_unix_s = 0;
};

// Failed verdicts (every kind of row) grouped by error kind, most frequent first.
std::vector<ErrorGroup> GroupErrors(const std::vector<RewardLogRow>& rows);

struct RunSummary {
  std::vector<std::string> runs;          // run names seen in the rows
  std::vector<std::string> replicas;      // replica files with rows
  std::map<std::string, int64_t> judges;  // "backend/model" → rows
  int64_t rows = 0, train_rows = 0, canary_rows = 0, consistency_rows = 0;
  int64_t scored = 0, errors = 0;  // train rows
  double error_rate = 0;
  int64_t first_step = 0, last_step = 0, steps_with_rows = 0;
  double first_time_unix_s = 0, last_time_unix_s = 0;
  double reward_mean = 0, reward_std = 0, reward_p10 = 0, reward_p50 = 0, reward_p90 = 0;
  double reward_first_step_mean = 0, reward_last_step_mean = 0;  // trend: first and last step with rewards
  double latency_ms_p50 = 0, latency_ms_p95 = 0, latency_ms_p99 = 0;
  double cost_usd = 0;
  int64_t tokens_in = 0, tokens_out = 0;
  double cache_hit_rate = 0;
  double completion_chars_mean = 0;
  std::vector<ErrorGroup> error_groups;
  CanaryStats canary;
  ConsistencyStats consistency;
  LengthCorrelation length_all;     // every scored train row
  LengthCorrelation length_recent;  // the last options.length_recent
  ReverseKlSummary reverse_kl;      // distill verdicts' reverse KL to the teacher; samples 0 without them
  // The teacher backends' machinery, one entry per backend name summed over the judge replicas (the limit
  // and in-flight counts too; the breaker state is the worst one).
  std::vector<v1::JudgeBackendStatus> teacher_backends;
  // Held-out evaluations (eval_curve.jsonl): every point, and the best periodic one (null when none).
  std::vector<EvalPoint> eval_curve;
  std::optional<EvalPoint> eval_best;
  int64_t learner_steps = 0;     // lines of metrics.jsonl
  v1::StepMetrics learner_last;  // the last of them
  std::vector<std::string> warnings;
};

RunSummary Summarize(const RunLogs& logs, const SummaryOptions& options);

// Stable keys, NaN as null.
nlohmann::json SummaryToJson(const RunSummary& summary);

// A few labelled sections that fit `width` columns.
std::string FormatSummary(const RunSummary& summary, int width);

// JSON number or null for NaN/inf.
nlohmann::json JsonNumber(double value);

}  // namespace rlj::logs
