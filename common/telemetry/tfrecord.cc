// tfrecord.cc: TFRecord framing with masked CRC-32C, written through stdio and read back with checks.
#include "common/telemetry/tfrecord.h"

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/crc32c.h"
#include "common/file_util.h"
#include "common/status.h"

namespace rlj::telemetry {
namespace {

void PutLittleEndian(uint64_t value, int bytes, std::string* out) {
  for (int i = 0; i < bytes; ++i) out->push_back(static_cast<char>((value >> (8 * i)) & 0xFF));
}

uint64_t GetLittleEndian(const char* data, int bytes) {
  uint64_t value = 0;
  for (int i = 0; i < bytes; ++i) value |= static_cast<uint64_t>(static_cast<unsigned char>(data[i])) << (8 * i);
  return value;
}

}  // namespace

std::string FrameRecord(std::string_view data) {
  std::string record;
  record.reserve(data.size() + 16);
  PutLittleEndian(data.size(), 8, &record);
  PutLittleEndian(MaskCrc32c(Crc32c(record.data(), 8)), 4, &record);
  record.append(data);
  PutLittleEndian(MaskCrc32c(Crc32c(data)), 4, &record);
  return record;
}

absl::StatusOr<std::unique_ptr<TfRecordWriter>> TfRecordWriter::Create(const std::string& path) {
  std::FILE* file = std::fopen(path.c_str(), "wbe");
  if (file == nullptr) return absl::UnavailableError(absl::StrCat("cannot create ", path, ": ", std::strerror(errno)));
  return std::unique_ptr<TfRecordWriter>(new TfRecordWriter(path, file));
}

TfRecordWriter::~TfRecordWriter() { std::fclose(file_); }

absl::Status TfRecordWriter::Write(std::string_view data) {
  const std::string record = FrameRecord(data);
  if (std::fwrite(record.data(), 1, record.size(), file_) != record.size() || std::fflush(file_) != 0) {
    return absl::UnavailableError(absl::StrCat("cannot append to ", path_, ": ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::string>> ReadTfRecords(const std::string& path, bool allow_torn_tail) {
  RLJ_ASSIGN_OR_RETURN(std::string bytes, ReadFile(path));
  std::vector<std::string> records;
  size_t offset = 0;
  while (offset < bytes.size()) {
    const auto torn = [&]() -> absl::Status {
      if (allow_torn_tail) return absl::OkStatus();
      return absl::DataLossError(absl::StrCat(path, ": truncated record at offset ", offset));
    };
    if (bytes.size() - offset < 12) {
      RLJ_RETURN_IF_ERROR(torn());
      break;
    }
    const uint64_t length = GetLittleEndian(bytes.data() + offset, 8);
    const uint32_t length_crc = static_cast<uint32_t>(GetLittleEndian(bytes.data() + offset + 8, 4));
    if (length_crc != MaskCrc32c(Crc32c(bytes.data() + offset, 8))) {
      return absl::DataLossError(absl::StrCat(path, ": bad length CRC at offset ", offset));
    }
    if (bytes.size() - offset - 12 < length + 4) {
      RLJ_RETURN_IF_ERROR(torn());
      break;
    }
    const std::string_view data(bytes.data() + offset + 12, length);
    const uint32_t data_crc = static_cast<uint32_t>(GetLittleEndian(bytes.data() + offset + 12 + length, 4));
    if (data_crc != MaskCrc32c(Crc32c(data))) {
      return absl::DataLossError(absl::StrCat(path, ": bad data CRC at offset ", offset));
    }
    records.emplace_back(data);
    offset += 12 + length + 4;
  }
  return records;
}

}  // namespace rlj::telemetry
