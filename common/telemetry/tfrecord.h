// tfrecord.h: TFRecord framing, as TensorBoard event files use it: each record is
// uint64 length (little endian), uint32 masked CRC-32C of those 8 bytes, the data, uint32 masked CRC-32C of
// the data. A writer that appends records to a file, and a reader that checks every CRC.
#pragma once

#include <cstdio>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace rlj::telemetry {

// The framed bytes of one record.
std::string FrameRecord(std::string_view data);

class TfRecordWriter {
 public:
  // Creates (truncates) `path`.
  static absl::StatusOr<std::unique_ptr<TfRecordWriter>> Create(const std::string& path);
  ~TfRecordWriter();

  // Appends one record and hands it to the OS (fflush): a killed process loses nothing written.
  absl::Status Write(std::string_view data);

  const std::string& path() const { return path_; }

 private:
  TfRecordWriter(std::string path, std::FILE* file) : path_(std::move(path)), file_(file) {}
  std::string path_;
  std::FILE* file_;
};

// Every record of `path`, checking both CRCs of each. A truncated last record (a writer killed mid-write)
// ends the list without an error when `allow_torn_tail`; a CRC mismatch is always DataLoss naming the offset.
absl::StatusOr<std::vector<std::string>> ReadTfRecords(const std::string& path, bool allow_torn_tail = true);

}  // namespace rlj::telemetry
