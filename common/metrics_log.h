// metrics_log.h: the learner's per-step training metrics as JSON lines in the run directory
// (<run dir>/metrics.jsonl): appended and flushed after every step, read by `rlj run` and the log tools.
#pragma once

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "rlj/v1/learner.pb.h"

namespace rlj {

class MetricsLogWriter {
 public:
  // Appends to `path`, creating it when missing.
  static absl::StatusOr<std::unique_ptr<MetricsLogWriter>> Open(const std::string& path);
  ~MetricsLogWriter();

  // One line per call, flushed to the OS so a killed process loses nothing already appended.
  absl::Status Append(const v1::StepMetrics& metrics);

 private:
  MetricsLogWriter(std::string path, std::FILE* file) : path_(std::move(path)), file_(file) {}
  std::string path_;
  std::FILE* file_;
};

// Every complete line of `path`, in order; a torn last line (a kill mid-write) is skipped.
absl::StatusOr<std::vector<v1::StepMetrics>> ReadMetricsLog(const std::string& path);

}  // namespace rlj
