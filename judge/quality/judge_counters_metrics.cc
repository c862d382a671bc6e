// judge_counters_metrics.cc: a scrape-time collector over JudgeService::counters().
#include "judge/quality/judge_counters_metrics.h"

#include "judge/judge_service.h"

namespace rlj {

telemetry::MetricsRegistry::CollectorHandle ExportJudgeCounters(const JudgeService* service,
                                                                telemetry::MetricsRegistry* registry) {
  return registry->AddCollector([service](telemetry::MetricsSnapshotWriter& out) {
    const JudgeCounters c = service->counters();
    out.Counter("rlj_judge_requests_total", "Judge.Score calls answered (rejected ones included)",
                static_cast<double>(c.requests));
    out.Counter("rlj_judge_rejected_requests_total", "Judge.Score calls rejected as invalid",
                static_cast<double>(c.rejected_requests));
    out.Counter("rlj_judge_samples_total", "Verdicts returned to actors", static_cast<double>(c.samples));
    out.Counter("rlj_judge_errors_total", "Verdicts returned with an error", static_cast<double>(c.errors));
    out.Counter("rlj_judge_reward_log_failures_total", "Reward log appends that failed (their rows are lost)",
                static_cast<double>(c.reward_log_failures));
  });
}

}  // namespace rlj
