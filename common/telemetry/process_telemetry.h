// process_telemetry.h: what every rlj process sets up for observability in one call: its /metrics server
// (address in <run dir>/endpoints/metrics-<process>) over its own registry, and optionally a TensorBoard
// writer in <run dir>/tensorboard/<process>/, both as the run config's `telemetry` section says.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "common/telemetry/metrics_registry.h"
#include "common/telemetry/metrics_server.h"
#include "common/telemetry/tensorboard_writer.h"
#include "rlj/v1/config.pb.h"
#include "rlj/v1/learner.pb.h"

namespace rlj::telemetry {

// The roles whose listen address the config can set: learner, judge, actor, teacher.
std::string MetricsListenFor(const v1::TelemetryConfig& config, std::string_view role);

// A metric name part from a field name with its unit spelled out the way Prometheus wants it:
// "step_s" → "step_seconds", "tokens_per_s" → "tokens_per_second", "latency_ms" → "latency_seconds"
// (`scale` becomes 0.001). Other names are unchanged.
std::string PrometheusFieldName(std::string_view field, double* scale);

class ProcessTelemetry {
 public:
  // `process` names the files (learner, judge-0, actor-1); `role` picks the listen address and labels.
  // Without a run directory nothing is written to disk (the server still runs when enabled).
  static absl::StatusOr<std::unique_ptr<ProcessTelemetry>> Start(const v1::RunConfig& config,
                                                                 const std::string& run_dir, const std::string& process,
                                                                 const std::string& role, bool with_tensorboard);
  ~ProcessTelemetry();

  MetricsRegistry& metrics() { return registry_; }
  // Null when TensorBoard is off for this process.
  TensorBoardWriter* tensorboard() { return tensorboard_.get(); }
  // host:port of /metrics; empty when telemetry.metrics is off.
  std::string metrics_address() const { return server_ ? server_->address() : std::string(); }

  // The learner's step: every numeric field of StepMetrics as gauge rlj_learner_<field> and as the
  // TensorBoard scalar learner/<field> at the step (teacher_reverse_kl only when distill_tokens > 0);
  // rlj_learner_steps_total counts the calls.
  void RecordLearnerStep(const v1::StepMetrics& metrics);

 private:
  ProcessTelemetry() = default;
  MetricsRegistry registry_;
  std::unique_ptr<MetricsServer> server_;
  std::unique_ptr<TensorBoardWriter> tensorboard_;
};

}  // namespace rlj::telemetry
