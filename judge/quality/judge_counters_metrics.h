// judge_counters_metrics.h: the JudgeService's own counters (requests, samples, errors, reward log write
// failures) and each teacher backend's HTTP machinery (concurrency limit, in flight, breaker, retries by
// cause, Retry-After waits) as Prometheus metrics, read at scrape time.
#pragma once

#include "common/telemetry/metrics_registry.h"

namespace rlj {

class JudgeService;

// The returned handle must be destroyed before `service`.
[[nodiscard]] telemetry::MetricsRegistry::CollectorHandle ExportJudgeCounters(const JudgeService* service,
                                                                              telemetry::MetricsRegistry* registry);

}  // namespace rlj
