// process_telemetry.cc: the /metrics server, endpoint file and TensorBoard writer of one process, and the
// learner's per-step metrics exported through both.
#include "common/telemetry/process_telemetry.h"

#include <chrono>
#include <cmath>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/log.h"
#include "common/run_dir.h"
#include "common/status.h"

namespace rlj::telemetry {

std::string MetricsListenFor(const v1::TelemetryConfig& config, std::string_view role) {
  const std::string* specific = nullptr;
  if (role == "learner") specific = &config.learner_metrics_listen();
  if (role == "judge") specific = &config.judge_metrics_listen();
  if (role == "actor") specific = &config.actor_metrics_listen();
  if (role == "teacher") specific = &config.teacher_metrics_listen();
  if (specific != nullptr && !specific->empty()) return *specific;
  return config.metrics_listen();
}

std::string PrometheusFieldName(std::string_view field, double* scale) {
  *scale = 1;
  std::vector<std::string> parts = absl::StrSplit(AsAbsl(field), '_');
  for (size_t i = 0; i < parts.size(); ++i) {
    const bool after_per = i > 0 && parts[i - 1] == "per";
    if (parts[i] == "s") {
      parts[i] = after_per ? "second" : "seconds";
    } else if (parts[i] == "ms") {
      parts[i] = after_per ? "second" : "seconds";
      *scale = after_per ? 1000 : 0.001;
    }
  }
  return absl::StrJoin(parts, "_");
}

absl::StatusOr<std::unique_ptr<ProcessTelemetry>> ProcessTelemetry::Start(const v1::RunConfig& config,
                                                                          const std::string& run_dir,
                                                                          const std::string& process,
                                                                          const std::string& role,
                                                                          bool with_tensorboard) {
  std::unique_ptr<ProcessTelemetry> telemetry(new ProcessTelemetry());
  const v1::TelemetryConfig& t = config.telemetry();
  const Labels labels = {{"process", process}, {"role", role}};
  telemetry->registry_.GetGauge("rlj_process_info", "Always 1; labels name the rlj process and its role", labels)
      .Set(1);
  telemetry->registry_
      .GetGauge("rlj_process_start_time_seconds", "Start time of the process since the Unix epoch", labels)
      .Set(std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count());
  if (t.metrics()) {
    const std::string listen = MetricsListenFor(t, role);
    RLJ_ASSIGN_OR_RETURN(telemetry->server_, MetricsServer::Start(listen, &telemetry->registry_));
    if (!run_dir.empty()) {
      RLJ_RETURN_IF_ERROR(RunDir(run_dir).WriteEndpoint("metrics-" + process, telemetry->server_->address()));
    }
    log::Info("{} serves Prometheus metrics on http://{}/metrics", process, telemetry->server_->address());
  }
  if (with_tensorboard && t.tensorboard() && !run_dir.empty()) {
    RLJ_ASSIGN_OR_RETURN(telemetry->tensorboard_,
                         TensorBoardWriter::Open(absl::StrCat(run_dir, "/tensorboard/", process)));
    log::Info("{} writes TensorBoard scalars to {}", process, telemetry->tensorboard_->path());
  }
  return telemetry;
}

namespace {

// A step without teacher log-probabilities (distill_tokens 0, every run without learner.distill) has no reverse KL
// to the teacher; its field reads 0, which would claim a student identical to the teacher, so it is not exported.
bool HasNoValue(const v1::StepMetrics& metrics, const google::protobuf::FieldDescriptor& field) {
  return field.number() == v1::StepMetrics::kTeacherReverseKlFieldNumber && metrics.distill_tokens() == 0;
}

}  // namespace

ProcessTelemetry::~ProcessTelemetry() {
  if (server_ != nullptr) server_->Stop();
}

void ProcessTelemetry::RecordLearnerStep(const v1::StepMetrics& metrics) {
  const google::protobuf::Descriptor* descriptor = metrics.GetDescriptor();
  const google::protobuf::Reflection* reflection = metrics.GetReflection();
  std::vector<std::pair<std::string, double>> scalars;
  for (int i = 0; i < descriptor->field_count(); ++i) {
    const google::protobuf::FieldDescriptor* field = descriptor->field(i);
    if (field->is_repeated() || HasNoValue(metrics, *field)) continue;
    double value = 0;
    switch (field->cpp_type()) {
      case google::protobuf::FieldDescriptor::CPPTYPE_DOUBLE:
        value = reflection->GetDouble(metrics, field);
        break;
      case google::protobuf::FieldDescriptor::CPPTYPE_FLOAT:
        value = reflection->GetFloat(metrics, field);
        break;
      case google::protobuf::FieldDescriptor::CPPTYPE_INT64:
        value = static_cast<double>(reflection->GetInt64(metrics, field));
        break;
      case google::protobuf::FieldDescriptor::CPPTYPE_INT32:
        value = reflection->GetInt32(metrics, field);
        break;
      case google::protobuf::FieldDescriptor::CPPTYPE_UINT64:
        value = static_cast<double>(reflection->GetUInt64(metrics, field));
        break;
      case google::protobuf::FieldDescriptor::CPPTYPE_UINT32:
        value = reflection->GetUInt32(metrics, field);
        break;
      case google::protobuf::FieldDescriptor::CPPTYPE_BOOL:
        value = reflection->GetBool(metrics, field) ? 1 : 0;
        break;
      default:
        continue;
    }
    double scale = 1;
    const std::string name = PrometheusFieldName(field->name(), &scale);
    registry_
        .GetGauge(absl::StrCat("rlj_learner_", name),
                  absl::StrCat("Learner step metric ", field->name(), " (last step)"))
        .Set(value * scale);
    if (field->name() != "step" && field->name() != "time_unix_s")
      scalars.emplace_back("learner/" + field->name(), value);
  }
  registry_.GetCounter("rlj_learner_steps_total", "Learner steps taken").Increment();
  if (tensorboard_ != nullptr) {
    if (absl::Status written = tensorboard_->AddScalars(scalars, metrics.step()); !written.ok()) {
      RLJ_EVERY(60, log::Warn("TensorBoard scalars not written: {}", std::string(written.message())));
    }
  }
}

}  // namespace rlj::telemetry
