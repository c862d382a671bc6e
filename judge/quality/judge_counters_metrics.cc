// judge_counters_metrics.cc: a scrape-time collector over JudgeService::counters().
#include "judge/quality/judge_counters_metrics.h"

#include <utility>

#include "judge/judge_service.h"

namespace rlj {
namespace {

// One teacher backend's HTTP machinery, labelled by backend: the adaptive concurrency limit, requests in
// flight, the circuit breaker, and retries by cause with the server's Retry-After waits.
void ExportBackend(const v1::JudgeBackendStatus& b, telemetry::MetricsSnapshotWriter& out) {
  if (b.http_requests() == 0 && b.concurrency_limit() == 0) return;  // a rule or cached-only backend
  const telemetry::Labels labels = {{"backend", b.name()}};
  out.Gauge("rlj_judge_backend_concurrency_limit", "The adaptive limit on requests in flight now",
            b.concurrency_limit(), labels);
  out.Gauge("rlj_judge_backend_in_flight", "Requests to the teacher in flight now", b.in_flight(), labels);
  out.Gauge("rlj_judge_backend_circuit_open", "Circuit breaker: 0 closed, 0.5 half-open (probing), 1 open",
            b.circuit() == "open"        ? 1.0
            : b.circuit() == "half_open" ? 0.5
                                         : 0.0,
            labels);
  out.Counter("rlj_judge_backend_circuit_opened_total", "Times the circuit breaker opened",
              static_cast<double>(b.circuit_opened()), labels);
  out.Counter("rlj_judge_backend_http_requests_total", "HTTP attempts sent, retries included",
              static_cast<double>(b.http_requests()), labels);
  const std::pair<const char*, int64_t> causes[] = {{"rate_limited", b.retries_rate_limited()},
                                                    {"server_error", b.retries_server_error()},
                                                    {"timeout", b.retries_timeout()},
                                                    {"transport", b.retries_transport()},
                                                    {"malformed", b.retries_malformed()}};
  for (const auto& [cause, count] : causes) {
    telemetry::Labels with_cause = labels;
    with_cause["cause"] = cause;
    out.Counter("rlj_judge_backend_retries_total", "HTTP retries by cause", static_cast<double>(count), with_cause);
  }
  out.Counter("rlj_judge_backend_retry_after_waits_total", "Retries that waited for the server's Retry-After",
              static_cast<double>(b.retry_after_waits()), labels);
  out.Counter("rlj_judge_backend_retry_after_wait_seconds_total", "Seconds of Retry-After waits asked for",
              b.retry_after_seconds(), labels);
}

}  // namespace

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
    const v1::JudgeStatus status = service->StatusNow();  // held: a range-for over a temporary's field dangles
    for (const v1::JudgeBackendStatus& backend : status.backends()) ExportBackend(backend, out);
  });
}

}  // namespace rlj
