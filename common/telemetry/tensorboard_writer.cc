// tensorboard_writer.cc: Event protos for scalars and histograms, written as TFRecords.
#include "common/telemetry/tensorboard_writer.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/status.h"

namespace rlj::telemetry {
namespace {

double NowUnixSeconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string HostName() {
  char name[256] = {};
  if (::gethostname(name, sizeof(name) - 1) != 0 || name[0] == '\0') return "localhost";
  return name;
}

}  // namespace

absl::StatusOr<std::unique_ptr<TensorBoardWriter>> TensorBoardWriter::Open(const std::string& dir) {
  RLJ_RETURN_IF_ERROR(MakeDirectories(dir));
  const double now = NowUnixSeconds();
  std::string path =
      absl::StrCat(dir, "/events.out.tfevents.", static_cast<int64_t>(now), ".", HostName(), ".", ::getpid());
  // Two writers of one process in one second (a restarted server in tests) must not truncate each other.
  std::error_code error;
  for (int n = 1; std::filesystem::exists(path, error); ++n) {
    path =
        absl::StrCat(dir, "/events.out.tfevents.", static_cast<int64_t>(now), ".", HostName(), ".", ::getpid(), ".", n);
  }
  RLJ_ASSIGN_OR_RETURN(std::unique_ptr<TfRecordWriter> file, TfRecordWriter::Create(path));
  std::unique_ptr<TensorBoardWriter> writer(new TensorBoardWriter(std::move(file)));
  tensorboard::Event version;
  version.set_wall_time(now);
  version.set_file_version("brain.Event:2");
  RLJ_RETURN_IF_ERROR(writer->WriteEvent(version));
  return writer;
}

absl::Status TensorBoardWriter::WriteEvent(const tensorboard::Event& event) {
  std::string bytes;
  if (!event.SerializeToString(&bytes)) return absl::InternalError("cannot serialize a TensorBoard event");
  absl::MutexLock lock(&mutex_);
  return writer_->Write(bytes);
}

absl::Status TensorBoardWriter::AddScalar(const std::string& tag, int64_t step, double value) {
  return AddScalars({{tag, value}}, step);
}

absl::Status TensorBoardWriter::AddScalars(const std::vector<std::pair<std::string, double>>& values, int64_t step) {
  tensorboard::Event event;
  event.set_wall_time(NowUnixSeconds());
  event.set_step(step);
  tensorboard::Summary* summary = event.mutable_summary();
  for (const auto& [tag, value] : values) {
    if (!std::isfinite(value)) continue;  // TensorBoard draws NaN as a gap anyway; keep the file clean
    tensorboard::Summary::Value* v = summary->add_value();
    v->set_tag(tag);
    v->set_simple_value(static_cast<float>(value));
    v->mutable_metadata()->mutable_plugin_data()->set_plugin_name("scalars");
  }
  if (summary->value_size() == 0) return absl::OkStatus();
  return WriteEvent(event);
}

absl::Status TensorBoardWriter::AddHistogram(const std::string& tag, int64_t step, const std::vector<double>& values,
                                             int bins) {
  std::vector<double> finite;
  for (double v : values) {
    if (std::isfinite(v)) finite.push_back(v);
  }
  if (finite.empty()) return absl::OkStatus();
  bins = std::max(bins, 1);
  const auto [min_it, max_it] = std::minmax_element(finite.begin(), finite.end());
  const double low = *min_it, high = *max_it > *min_it ? *max_it : *min_it + 1;
  tensorboard::HistogramProto histogram;
  histogram.set_min(*min_it);
  histogram.set_max(*max_it);
  histogram.set_num(static_cast<double>(finite.size()));
  double sum = 0, sum_squares = 0;
  for (double v : finite) {
    sum += v;
    sum_squares += v * v;
  }
  histogram.set_sum(sum);
  histogram.set_sum_squares(sum_squares);
  // Bucket i holds (limit[i-1], limit[i]]; the first bucket also takes the minimum.
  const double width = (high - low) / bins;
  std::vector<double> counts(static_cast<size_t>(bins), 0);
  for (double v : finite) {
    int bucket = static_cast<int>(std::ceil((v - low) / width)) - 1;
    counts[static_cast<size_t>(std::clamp(bucket, 0, bins - 1))] += 1;
  }
  for (int i = 0; i < bins; ++i) {
    histogram.add_bucket_limit(i == bins - 1 ? high : low + width * (i + 1));
    histogram.add_bucket(counts[static_cast<size_t>(i)]);
  }
  tensorboard::Event event;
  event.set_wall_time(NowUnixSeconds());
  event.set_step(step);
  tensorboard::Summary::Value* value = event.mutable_summary()->add_value();
  value->set_tag(tag);
  *value->mutable_histo() = std::move(histogram);
  return WriteEvent(event);
}

absl::StatusOr<std::vector<tensorboard::Event>> ReadEventFile(const std::string& path) {
  RLJ_ASSIGN_OR_RETURN(std::vector<std::string> records, ReadTfRecords(path));
  std::vector<tensorboard::Event> events;
  for (size_t i = 0; i < records.size(); ++i) {
    tensorboard::Event event;
    if (!event.ParseFromString(records[i])) {
      return absl::DataLossError(absl::StrCat(path, ": record ", i, " is not a tensorboard.Event"));
    }
    events.push_back(std::move(event));
  }
  return events;
}

std::vector<std::string> EventFiles(const std::string& dir) {
  std::vector<std::string> files;
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator(dir, error)) {
    if (entry.is_regular_file() && entry.path().filename().string().find("tfevents") != std::string::npos) {
      files.push_back(entry.path().string());
    }
  }
  std::sort(files.begin(), files.end());
  return files;
}

}  // namespace rlj::telemetry
