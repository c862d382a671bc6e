// safetensors_header_test.cc: the LibTorch-free safetensors header parser on hand-built files: order, offsets,
// metadata, and the malformed headers it refuses (each a DATA_LOSS error naming the tensor).
#include "common/safetensors_header.h"

#include <gtest/gtest.h>

#include <cstring>
#include <nlohmann/json.hpp>
#include <string>

#include "test_util.h"

namespace rlj {
namespace {

using nlohmann::json;
using ::rlj::testing::FailsWith;

// 8-byte little-endian length, the header, then `data_bytes` bytes of data.
std::string File(const json& header, size_t data_bytes) {
  const std::string text = header.dump();
  const uint64_t length = text.size();
  std::string file(8, '\0');
  std::memcpy(file.data(), &length, 8);
  return file + text + std::string(data_bytes, '\x01');
}

TEST(SafetensorsHeaderTest, TensorsComeInFileOrderWithTheirOffsets) {
  const json header = {{"b", {{"dtype", "I64"}, {"shape", {2}}, {"data_offsets", {24, 40}}}},
                       {"a", {{"dtype", "F32"}, {"shape", {2, 3}}, {"data_offsets", {0, 24}}}},
                       {"__metadata__", {{"format", "pt"}}}};
  const std::string file = File(header, 40);
  RLJ_ASSERT_OK_AND_ASSIGN(const SafetensorsHeader parsed, ParseSafetensorsHeader(file, "m.safetensors"));
  ASSERT_EQ(parsed.tensors.size(), 2u);
  EXPECT_EQ(parsed.tensors[0].name, "a");
  EXPECT_EQ(parsed.tensors[0].shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(parsed.tensors[0].element_size, 4u);
  EXPECT_EQ(parsed.tensors[1].name, "b");
  EXPECT_EQ(parsed.tensors[1].begin, 24u);
  EXPECT_EQ(parsed.tensors[1].end, 40u);
  EXPECT_EQ(parsed.data_offset, file.size() - 40);
  EXPECT_EQ(parsed.data_bytes, 40u);
  EXPECT_EQ(parsed.metadata.at("format"), "pt");
}

TEST(SafetensorsHeaderTest, EmptyTensorsAtOneOffsetComeInNameOrder) {
  const json header = {{"z", {{"dtype", "F32"}, {"shape", {0}}, {"data_offsets", {4, 4}}}},
                       {"m", {{"dtype", "U8"}, {"shape", {0, 7}}, {"data_offsets", {4, 4}}}},
                       {"a", {{"dtype", "F32"}, {"shape", json::array()}, {"data_offsets", {0, 4}}}}};
  RLJ_ASSERT_OK_AND_ASSIGN(const SafetensorsHeader parsed, ParseSafetensorsHeader(File(header, 4), "m.safetensors"));
  ASSERT_EQ(parsed.tensors.size(), 3u);
  EXPECT_EQ(parsed.tensors[0].name, "a");
  EXPECT_EQ(parsed.tensors[1].name, "m");
  EXPECT_EQ(parsed.tensors[2].name, "z");
}

TEST(SafetensorsHeaderTest, AnEmptyTensorWithHugeOtherDimensionsIsRefused) {
  // Zero bytes, but 2^62 · 4 elements per row would overflow LibTorch's strides.
  const json header = {{"e", {{"dtype", "F32"}, {"shape", {0, uint64_t{1} << 62, 4}}, {"data_offsets", {0, 0}}}}};
  EXPECT_TRUE(FailsWith(ParseSafetensorsHeader(File(header, 0), "m.safetensors"), absl::StatusCode::kDataLoss,
                        "m.safetensors: tensor 'e': shape overflows"));
}

TEST(SafetensorsHeaderTest, MalformedHeadersAreDataLossNamingTheProblem) {
  EXPECT_TRUE(FailsWith(ParseSafetensorsHeader("abc", "m"), absl::StatusCode::kDataLoss, "truncated: 3 bytes"));
  std::string too_long(8, '\0');
  too_long[0] = 100;
  EXPECT_TRUE(FailsWith(ParseSafetensorsHeader(too_long + "{}", "m"), absl::StatusCode::kDataLoss,
                        "header size 100 goes beyond the file (10 bytes)"));
  EXPECT_TRUE(FailsWith(
      ParseSafetensorsHeader(File({{"a", {{"dtype", "F64"}, {"shape", {1}}, {"data_offsets", {0, 8}}}}}, 8), "m"),
      absl::StatusCode::kDataLoss, "tensor 'a': unsupported dtype 'F64'"));
  EXPECT_TRUE(FailsWith(
      ParseSafetensorsHeader(File({{"a", {{"dtype", "F32"}, {"shape", {2}}, {"data_offsets", {0, 8}}}}}, 4), "m"),
      absl::StatusCode::kDataLoss, "go beyond the data section (4 bytes; file truncated?)"));
  EXPECT_TRUE(
      FailsWith(ParseSafetensorsHeader(File({{"a", {{"dtype", "F32"}, {"shape", {1}}, {"data_offsets", {0, 4}}}},
                                             {"b", {{"dtype", "F32"}, {"shape", {1}}, {"data_offsets", {2, 6}}}}},
                                            6),
                                       "m"),
                absl::StatusCode::kDataLoss, "overlap the previous tensor"));
  EXPECT_TRUE(FailsWith(
      ParseSafetensorsHeader(File({{"a", {{"dtype", "U8"}, {"shape", {1}}, {"data_offsets", {0, 1}}}}}, 3), "m"),
      absl::StatusCode::kDataLoss, "the tensors cover 1 of 3 data bytes"));
  EXPECT_TRUE(FailsWith(ParseSafetensorsHeader(File(json::array(), 0), "m"), absl::StatusCode::kDataLoss,
                        "header is not a JSON object"));
}

}  // namespace
}  // namespace rlj
