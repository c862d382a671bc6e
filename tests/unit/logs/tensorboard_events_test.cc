// tensorboard_events_test.cc: TFRecord framing against bytes computed by hand (an independent bitwise
// CRC-32C in this file checks every record), torn and corrupt files, and TensorBoard event files written by
// TensorBoardWriter parsed back: file_version first, scalar tags, steps and values, histogram buckets.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "common/crc32c.h"
#include "common/file_util.h"
#include "common/telemetry/tensorboard_writer.h"
#include "common/telemetry/tfrecord.h"
#include "tensorboard/event.pb.h"
#include "test_util.h"

namespace rlj::telemetry {
namespace {

using testing::ScratchDir;

// CRC-32C bit by bit (polynomial 0x82F63B78 reflected), independent of common/crc32c.
uint32_t BitwiseCrc32c(const std::string& data) {
  uint32_t crc = 0xFFFFFFFFu;
  for (unsigned char byte : data) {
    crc ^= byte;
    for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ ((crc & 1u) ? 0x82F63B78u : 0u);
  }
  return crc ^ 0xFFFFFFFFu;
}

uint32_t Mask(uint32_t crc) { return ((crc >> 15) | (crc << 17)) + 0xa282ead8u; }

uint64_t LittleEndian(const std::string& bytes, size_t offset, int n) {
  uint64_t value = 0;
  for (int i = 0; i < n; ++i) value |= static_cast<uint64_t>(static_cast<unsigned char>(bytes[offset + i])) << (8 * i);
  return value;
}

// The records of a TFRecord file, checking both CRCs of each with the bitwise CRC; fails the test on a
// mismatch or a torn record.
std::vector<std::string> ReadRecordsIndependently(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  std::vector<std::string> records;
  size_t offset = 0;
  while (offset < bytes.size()) {
    EXPECT_GE(bytes.size() - offset, 16u) << "torn record at " << offset;
    if (bytes.size() - offset < 16) break;
    const uint64_t length = LittleEndian(bytes, offset, 8);
    EXPECT_EQ(LittleEndian(bytes, offset + 8, 4), Mask(BitwiseCrc32c(bytes.substr(offset, 8)))) << "at " << offset;
    const std::string data = bytes.substr(offset + 12, length);
    EXPECT_EQ(LittleEndian(bytes, offset + 12 + length, 4), Mask(BitwiseCrc32c(data))) << "at " << offset;
    records.push_back(data);
    offset += 12 + length + 4;
  }
  return records;
}

std::string Hex(const std::string& bytes) {
  static const char digits[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : bytes) {
    out += digits[c >> 4];
    out += digits[c & 15];
  }
  return out;
}

TEST(TfRecord, Crc32cAndFramingMatchHandComputedBytes) {
  EXPECT_EQ(Crc32c(std::string_view("123456789")), 0xE3069283u);  // the CRC-32C check value
  EXPECT_EQ(BitwiseCrc32c("123456789"), 0xE3069283u);
  // length 3 (8 bytes LE), masked CRC of those, "abc", masked CRC of "abc" (computed with a Python CRC-32C).
  EXPECT_EQ(Hex(FrameRecord("abc")), "0300000000000000b099490e6162636e57f121");
}

TEST(TfRecord, WritesRecordsThatReadBackWithCheckedCrcs) {
  ScratchDir dir;
  const std::string path = dir.file("records.tfrecord");
  {
    RLJ_ASSERT_OK_AND_ASSIGN(auto writer, TfRecordWriter::Create(path));
    RLJ_ASSERT_OK(writer->Write("first"));
    RLJ_ASSERT_OK(writer->Write(""));
    RLJ_ASSERT_OK(writer->Write(std::string(100000, 'z')));
  }
  RLJ_ASSERT_OK_AND_ASSIGN(std::vector<std::string> records, ReadTfRecords(path));
  ASSERT_EQ(records.size(), 3u);
  EXPECT_EQ(records[0], "first");
  EXPECT_EQ(records[1], "");
  EXPECT_EQ(records[2], std::string(100000, 'z'));
  EXPECT_EQ(ReadRecordsIndependently(path), records);
}

TEST(TfRecord, TornTailIsDroppedAndCorruptionIsDataLoss) {
  ScratchDir dir;
  const std::string path = dir.file("records.tfrecord");
  {
    RLJ_ASSERT_OK_AND_ASSIGN(auto writer, TfRecordWriter::Create(path));
    RLJ_ASSERT_OK(writer->Write("kept"));
    RLJ_ASSERT_OK(writer->Write("torn away"));
  }
  RLJ_ASSERT_OK_AND_ASSIGN(std::string bytes, ReadFile(path));
  const size_t first_record = 16 + 4;
  {
    std::ofstream torn(path, std::ios::binary | std::ios::trunc);
    torn << bytes.substr(0, bytes.size() - 3);  // a writer killed mid-record
  }
  RLJ_ASSERT_OK_AND_ASSIGN(std::vector<std::string> records, ReadTfRecords(path));
  EXPECT_EQ(records, std::vector<std::string>{"kept"});
  EXPECT_TRUE(testing::FailsWith(ReadTfRecords(path, /*allow_torn_tail=*/false), absl::StatusCode::kDataLoss,
                                 "truncated record at offset 20"));

  std::string corrupt = bytes;
  corrupt[12] ^= 0x01;  // a bit of "kept"
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << corrupt;
  }
  EXPECT_TRUE(testing::FailsWith(ReadTfRecords(path), absl::StatusCode::kDataLoss, "bad data CRC at offset 0"));
  corrupt = bytes;
  corrupt[first_record] ^= 0x01;  // the second record's length
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << corrupt;
  }
  EXPECT_TRUE(testing::FailsWith(ReadTfRecords(path), absl::StatusCode::kDataLoss, "bad length CRC at offset 20"));
}

TEST(TensorBoardWriter, ScalarEventsParseBackWithTagsStepsAndValues) {
  ScratchDir dir;
  std::string path;
  {
    RLJ_ASSERT_OK_AND_ASSIGN(auto writer, TensorBoardWriter::Open(dir.file("tensorboard/learner")));
    path = writer->path();
    RLJ_ASSERT_OK(writer->AddScalar("learner/loss", 1, 0.5));
    RLJ_ASSERT_OK(writer->AddScalars(
        {{"judge/reward_mean", 0.25}, {"judge/nan_is_skipped", std::nan("")}, {"judge/error_rate", 0.125}}, 2));
    RLJ_ASSERT_OK(writer->AddScalars({{"only_nan", std::nan("")}}, 3));  // nothing to write: no record
  }
  EXPECT_NE(path.find("/tensorboard/learner/events.out.tfevents."), std::string::npos) << path;
  EXPECT_EQ(EventFiles(dir.file("tensorboard/learner")), std::vector<std::string>{path});

  const std::vector<std::string> records = ReadRecordsIndependently(path);
  ASSERT_EQ(records.size(), 3u);
  std::vector<tensorboard::Event> events;
  for (const std::string& record : records) {
    tensorboard::Event event;
    ASSERT_TRUE(event.ParseFromString(record));
    events.push_back(event);
  }
  EXPECT_EQ(events[0].file_version(), "brain.Event:2");
  EXPECT_GT(events[0].wall_time(), 1.6e9);
  EXPECT_EQ(events[1].step(), 1);
  ASSERT_EQ(events[1].summary().value_size(), 1);
  EXPECT_EQ(events[1].summary().value(0).tag(), "learner/loss");
  EXPECT_FLOAT_EQ(events[1].summary().value(0).simple_value(), 0.5f);
  EXPECT_EQ(events[1].summary().value(0).metadata().plugin_data().plugin_name(), "scalars");
  EXPECT_EQ(events[2].step(), 2);
  ASSERT_EQ(events[2].summary().value_size(), 2);
  EXPECT_EQ(events[2].summary().value(0).tag(), "judge/reward_mean");
  EXPECT_FLOAT_EQ(events[2].summary().value(0).simple_value(), 0.25f);
  EXPECT_EQ(events[2].summary().value(1).tag(), "judge/error_rate");
  EXPECT_FLOAT_EQ(events[2].summary().value(1).simple_value(), 0.125f);

  // The library's reader agrees.
  RLJ_ASSERT_OK_AND_ASSIGN(std::vector<tensorboard::Event> read, ReadEventFile(path));
  ASSERT_EQ(read.size(), 3u);
  EXPECT_EQ(read[2].SerializeAsString(), events[2].SerializeAsString());
}

TEST(TensorBoardWriter, HistogramHasHandComputedBuckets) {
  ScratchDir dir;
  RLJ_ASSERT_OK_AND_ASSIGN(auto writer, TensorBoardWriter::Open(dir.path()));
  // Values 0, 0.25, 0.5, 1 in 2 buckets over [0, 1]: (.., 0.5] holds 0, 0.25, 0.5; (0.5, 1] holds 1.
  RLJ_ASSERT_OK(writer->AddHistogram("judge/reward", 7, {0, 0.25, 0.5, 1}, 2));
  RLJ_ASSERT_OK_AND_ASSIGN(std::vector<tensorboard::Event> events, ReadEventFile(writer->path()));
  ASSERT_EQ(events.size(), 2u);
  const tensorboard::Event& event = events[1];
  EXPECT_EQ(event.step(), 7);
  ASSERT_EQ(event.summary().value_size(), 1);
  const tensorboard::HistogramProto& h = event.summary().value(0).histo();
  EXPECT_EQ(event.summary().value(0).tag(), "judge/reward");
  EXPECT_DOUBLE_EQ(h.min(), 0);
  EXPECT_DOUBLE_EQ(h.max(), 1);
  EXPECT_DOUBLE_EQ(h.num(), 4);
  EXPECT_DOUBLE_EQ(h.sum(), 1.75);
  EXPECT_DOUBLE_EQ(h.sum_squares(), 0.0625 + 0.25 + 1);
  ASSERT_EQ(h.bucket_limit_size(), 2);
  EXPECT_DOUBLE_EQ(h.bucket_limit(0), 0.5);
  EXPECT_DOUBLE_EQ(h.bucket_limit(1), 1);
  EXPECT_DOUBLE_EQ(h.bucket(0), 3);
  EXPECT_DOUBLE_EQ(h.bucket(1), 1);
}

TEST(TensorBoardWriter, TwoWritersInOneDirectoryKeepTheirOwnFiles) {
  ScratchDir dir;
  RLJ_ASSERT_OK_AND_ASSIGN(auto first, TensorBoardWriter::Open(dir.path()));
  RLJ_ASSERT_OK_AND_ASSIGN(auto second, TensorBoardWriter::Open(dir.path()));
  EXPECT_NE(first->path(), second->path());
  RLJ_ASSERT_OK(first->AddScalar("a", 1, 1.0));
  RLJ_ASSERT_OK(second->AddScalar("b", 1, 2.0));
  EXPECT_EQ(EventFiles(dir.path()).size(), 2u);
  RLJ_ASSERT_OK_AND_ASSIGN(std::vector<tensorboard::Event> events, ReadEventFile(first->path()));
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[1].summary().value(0).tag(), "a");
}

}  // namespace
}  // namespace rlj::telemetry
