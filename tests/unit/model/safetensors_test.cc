// safetensors_test.cc: the safetensors writer's exact layout, round trips, and every malformed file the
// reader must refuse with the file and tensor named.
#include "model/checkpoint/safetensors.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "common/file_util.h"
#include "test_util.h"

namespace rlj {
namespace {

using ::rlj::testing::FailsWith;
using ::rlj::testing::ScratchDir;

std::string LittleEndian64(uint64_t value) {
  std::string bytes(8, '\0');
  for (int i = 0; i < 8; ++i) bytes[i] = static_cast<char>((value >> (8 * i)) & 0xff);
  return bytes;
}

// A file of header `header` (its length written first) and the raw data bytes.
std::string WriteRaw(const ScratchDir& dir, const std::string& header, const std::string& data,
                     const std::string& name = "raw.safetensors") {
  const std::string path = dir.file(name);
  std::ofstream out(path, std::ios::binary);
  out << LittleEndian64(header.size()) << header << data;
  return path;
}

TEST(Safetensors, WriterLayoutFollowsTheSpec) {
  ScratchDir dir;
  const std::string path = dir.file("a.safetensors");
  RLJ_ASSERT_OK(
      WriteSafetensors(path, {{"b", torch::tensor({1.0f, 2.0f})}, {"a", torch::tensor({{7L}})}}, {{"format", "pt"}}));
  RLJ_ASSERT_OK_AND_ASSIGN(const std::string content, ReadFile(path));
  uint64_t header_size = 0;
  std::memcpy(&header_size, content.data(), 8);
  EXPECT_EQ(header_size % 8, 0u);  // padded with spaces so the data section starts aligned
  const std::string header = content.substr(8, header_size);
  EXPECT_EQ(header.substr(0, header.find_last_not_of(' ') + 1),
            R"({"__metadata__":{"format":"pt"},"b":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
            R"("a":{"dtype":"I64","shape":[1,1],"data_offsets":[8,16]}})");
  EXPECT_EQ(content.size(), 8 + header_size + 16);
  EXPECT_EQ(content.substr(8 + header_size), std::string("\x00\x00\x80\x3f\x00\x00\x00\x40\x07\0\0\0\0\0\0\0", 16));
}

TEST(Safetensors, RoundTripEveryDTypeInFileOrder) {
  ScratchDir dir;
  torch::manual_seed(4);
  const NamedTensors tensors = {
      {"z.f32", torch::randn({3, 5})},
      {"y.bf16", torch::randn({4}).to(torch::kBFloat16)},
      {"x.f16", torch::randn({2, 2, 2}).to(torch::kHalf)},
      {"w.i32", torch::randint(-50, 50, {6}, torch::kInt)},
      {"v.i64", torch::randint(-(1LL << 40), 1LL << 40, {1, 3}, torch::kLong)},
      {"u.u8", torch::randint(0, 256, {9}, torch::kByte)},
      {"t.empty", torch::zeros({0})},
      {"s.scalar", torch::scalar_tensor(2.5f)},
      {"r.strided", torch::arange(6, torch::kFloat).view({2, 3}).t()},
  };
  const std::string path = dir.file("all.safetensors");
  RLJ_ASSERT_OK(WriteSafetensors(path, tensors));
  RLJ_ASSERT_OK_AND_ASSIGN(const NamedTensors back, ReadSafetensors(path));
  ASSERT_EQ(back.size(), tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) {
    EXPECT_EQ(back[i].first, tensors[i].first);  // written order = data order = read order
    EXPECT_EQ(back[i].second.scalar_type(), tensors[i].second.scalar_type()) << tensors[i].first;
    EXPECT_EQ(back[i].second.sizes(), tensors[i].second.sizes()) << tensors[i].first;
    EXPECT_TRUE(torch::equal(back[i].second, tensors[i].second)) << tensors[i].first;
  }
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp." + std::to_string(::getpid())));
}

TEST(Safetensors, ReadsHandWrittenFileWithPaddingAndMetadata) {
  ScratchDir dir;
  // Data offsets are relative to the data section; the header may end with spaces.
  const std::string header =
      R"({"__metadata__":{"note":"hi"},"second":{"dtype":"U8","shape":[2],"data_offsets":[4,6]},)"
      R"("first":{"dtype":"I32","shape":[1],"data_offsets":[0,4]}}    )";
  const std::string path = WriteRaw(dir, header, std::string("\x05\x00\x00\x00\x09\x0a", 6));
  RLJ_ASSERT_OK_AND_ASSIGN(const NamedTensors tensors, ReadSafetensors(path));
  ASSERT_EQ(tensors.size(), 2u);
  EXPECT_EQ(tensors[0].first, "first");
  EXPECT_EQ(tensors[0].second.item<int32_t>(), 5);
  EXPECT_EQ(tensors[1].first, "second");
  EXPECT_TRUE(torch::equal(tensors[1].second, torch::tensor({9, 10}, torch::kByte)));
}

TEST(Safetensors, RejectsMalformedFilesNamingFileAndTensor) {
  ScratchDir dir;
  const auto loss = absl::StatusCode::kDataLoss;
  const std::string ok_entry = R"("w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]})";
  const std::string eight(8, '\0');

  {  // shorter than the 8-byte header size
    const std::string path = dir.file("short.safetensors");
    std::ofstream(path, std::ios::binary) << "abc";
    EXPECT_TRUE(FailsWith(ReadSafetensors(path), loss, "short.safetensors: truncated"));
  }
  {  // header size beyond the file
    const std::string path = dir.file("big_header.safetensors");
    std::ofstream(path, std::ios::binary) << LittleEndian64(1000) << "{}";
    EXPECT_TRUE(
        FailsWith(ReadSafetensors(path), loss, "big_header.safetensors: header size 1000 goes beyond the file"));
  }
  EXPECT_TRUE(FailsWith(ReadSafetensors(WriteRaw(dir, "{\"w\": [", "", "json.safetensors")), loss,
                        "json.safetensors: header is not valid JSON"));
  EXPECT_TRUE(FailsWith(ReadSafetensors(WriteRaw(dir, "[1, 2]", "", "array.safetensors")), loss, "not a JSON object"));
  EXPECT_TRUE(FailsWith(ReadSafetensors(WriteRaw(dir, R"({"w":{"dtype":"F64","shape":[1],"data_offsets":[0,8]}})",
                                                 eight, "dtype.safetensors")),
                        loss, "dtype.safetensors: tensor 'w': unsupported dtype 'F64'"));
  EXPECT_TRUE(
      FailsWith(ReadSafetensors(WriteRaw(dir, R"({"w":{"dtype":"F32","data_offsets":[0,8]}})", eight, "noshape.st")),
                loss, "tensor 'w': missing array field 'shape'"));
  EXPECT_TRUE(FailsWith(
      ReadSafetensors(WriteRaw(dir, R"({"w":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", eight, "neg.st")),
      loss, "tensor 'w': shape holds a non-integer or negative dimension"));
  EXPECT_TRUE(FailsWith(
      ReadSafetensors(WriteRaw(dir, R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0]}})", eight, "offsets.st")),
      loss, "tensor 'w': 'data_offsets' must be two"));
  // Offsets that disagree with shape × dtype.
  EXPECT_TRUE(FailsWith(
      ReadSafetensors(WriteRaw(dir, R"({"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", eight, "size.st")),
      loss, "size.st: tensor 'w': data_offsets [0, 8] hold 8 bytes, but the shape and dtype need 12"));
  // Offsets past the data section (a truncated file).
  EXPECT_TRUE(FailsWith(ReadSafetensors(WriteRaw(dir, "{" + ok_entry + "}", "1234", "truncated.st")), loss,
                        "truncated.st: tensor 'w': data_offsets [0, 8] go beyond the data section (4 bytes"));
  // Overlapping ranges.
  EXPECT_TRUE(FailsWith(
      ReadSafetensors(WriteRaw(dir, "{" + ok_entry + R"(,"v":{"dtype":"I32","shape":[1],"data_offsets":[4,8]}})", eight,
                               "overlap.st")),
      loss, "overlap the previous tensor"));
  // A hole before a tensor, and bytes nobody owns at the end.
  EXPECT_TRUE(FailsWith(
      ReadSafetensors(WriteRaw(dir, R"({"w":{"dtype":"I32","shape":[1],"data_offsets":[4,8]}})", eight, "hole.st")),
      loss, "tensor 'w': data_offsets begin at 4, leaving a hole"));
  EXPECT_TRUE(FailsWith(ReadSafetensors(WriteRaw(dir, "{" + ok_entry + "}", eight + "xx", "trailing.st")), loss,
                        "the tensors cover 8 of 10 data bytes"));
  EXPECT_TRUE(
      FailsWith(ReadSafetensors(WriteRaw(dir, R"({"__metadata__":{"a":1},)" + ok_entry + "}", eight, "meta.st")), loss,
                "__metadata__ value 'a' is not a string"));
  // A real file cut short.
  {
    const std::string path = dir.file("cut.safetensors");
    RLJ_ASSERT_OK(WriteSafetensors(path, {{"big", torch::ones({100})}}));
    std::filesystem::resize_file(path, std::filesystem::file_size(path) - 10);
    EXPECT_TRUE(
        FailsWith(ReadSafetensors(path), loss, "cut.safetensors: tensor 'big': data_offsets [0, 400] go beyond"));
  }
  EXPECT_TRUE(
      FailsWith(ReadSafetensors(dir.file("missing.safetensors")), absl::StatusCode::kNotFound, "missing.safetensors"));
}

TEST(Safetensors, WriterRejectsBadInputs) {
  ScratchDir dir;
  const std::string path = dir.file("bad.safetensors");
  EXPECT_TRUE(FailsWith(WriteSafetensors(path, {{"a", torch::ones({1})}, {"a", torch::ones({1})}}),
                        absl::StatusCode::kInvalidArgument, "tensor 'a' appears twice"));
  EXPECT_TRUE(FailsWith(WriteSafetensors(path, {{"__metadata__", torch::ones({1})}}),
                        absl::StatusCode::kInvalidArgument, "reserved"));
  EXPECT_TRUE(FailsWith(WriteSafetensors(path, {{"d", torch::ones({1}, torch::kDouble)}}),
                        absl::StatusCode::kInvalidArgument, "tensor 'd'"));
  EXPECT_FALSE(std::filesystem::exists(path));
}

}  // namespace
}  // namespace rlj
