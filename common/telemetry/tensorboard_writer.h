// tensorboard_writer.h: scalars and histograms as a TensorBoard event file
// (<dir>/events.out.tfevents.<time>.<host>.<pid>): TFRecord-framed tensorboard.Event protos, the first one
// carrying file_version "brain.Event:2". `tensorboard --logdir <run dir>/tensorboard` reads them.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/telemetry/tfrecord.h"
#include "tensorboard/event.pb.h"

namespace rlj::telemetry {

class TensorBoardWriter {
 public:
  // Creates `dir` and a new event file in it.
  static absl::StatusOr<std::unique_ptr<TensorBoardWriter>> Open(const std::string& dir);

  // One scalar at `step`; wall time now. Thread-safe; each call is one record, flushed.
  absl::Status AddScalar(const std::string& tag, int64_t step, double value);
  // Several scalars at one step in one record.
  absl::Status AddScalars(const std::vector<std::pair<std::string, double>>& values, int64_t step);
  // A histogram of `values` (`bins` equal buckets between their min and max).
  absl::Status AddHistogram(const std::string& tag, int64_t step, const std::vector<double>& values, int bins = 30);

  const std::string& path() const { return writer_->path(); }

 private:
  explicit TensorBoardWriter(std::unique_ptr<TfRecordWriter> writer) : writer_(std::move(writer)) {}
  absl::Status WriteEvent(const tensorboard::Event& event);

  absl::Mutex mutex_;
  std::unique_ptr<TfRecordWriter> writer_ ABSL_GUARDED_BY(mutex_);
};

// The events of a file (CRCs checked; a torn last record is dropped).
absl::StatusOr<std::vector<tensorboard::Event>> ReadEventFile(const std::string& path);

// The event files of `dir` (names containing "tfevents"), sorted.
std::vector<std::string> EventFiles(const std::string& dir);

}  // namespace rlj::telemetry
