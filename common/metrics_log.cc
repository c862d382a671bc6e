// metrics_log.cc: StepMetrics ⇄ JSON lines through protobuf's JSON mapping (snake_case field names).
#include "common/metrics_log.h"

#include <google/protobuf/util/json_util.h>

#include <cerrno>
#include <cstring>
#include <fstream>

#include "absl/strings/str_cat.h"

namespace rlj {

absl::StatusOr<std::unique_ptr<MetricsLogWriter>> MetricsLogWriter::Open(const std::string& path) {
  std::FILE* file = std::fopen(path.c_str(), "ae");
  if (file == nullptr) return absl::UnavailableError(absl::StrCat("cannot open ", path, ": ", std::strerror(errno)));
  return std::unique_ptr<MetricsLogWriter>(new MetricsLogWriter(path, file));
}

MetricsLogWriter::~MetricsLogWriter() { std::fclose(file_); }

absl::Status MetricsLogWriter::Append(const v1::StepMetrics& metrics) {
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  options.always_print_primitive_fields = true;
  std::string line;
  if (const auto status = google::protobuf::util::MessageToJsonString(metrics, &line, options); !status.ok()) {
    return absl::InternalError(absl::StrCat("metrics to JSON: ", status.ToString()));
  }
  line += '\n';
  if (std::fwrite(line.data(), 1, line.size(), file_) != line.size() || std::fflush(file_) != 0) {
    return absl::UnavailableError(absl::StrCat("cannot append to ", path_, ": ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<v1::StepMetrics>> ReadMetricsLog(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open ", path, ": ", std::strerror(errno)));
  std::vector<v1::StepMetrics> steps;
  std::string line;
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = true;  // lines from a newer rlj stay readable
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    v1::StepMetrics metrics;
    if (!google::protobuf::util::JsonStringToMessage(line, &metrics, options).ok()) continue;
    steps.push_back(std::move(metrics));
  }
  return steps;
}

}  // namespace rlj
