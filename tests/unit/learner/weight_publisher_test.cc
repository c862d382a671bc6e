// weight_publisher_test.cc: snapshots, chunking (exact reassembly, CRC-32C), the pre-serialized chunk
// messages (byte-identical to protobuf's, payload shared not copied), wire dtypes and versions.
#include "learner/weight_publisher.h"

#include <ATen/ATen.h>
#include <grpcpp/support/byte_buffer.h>
#include <gtest/gtest.h>

#include <cstring>
#include <future>
#include <string>
#include <vector>

#include "common/crc32c.h"
#include "model/tensor/tensor_codec.h"
#include "test_util.h"

namespace rlj {
namespace {

using std::chrono::milliseconds;

v1::ModelConfig TinyModel() {
  v1::ModelConfig model;
  model.set_d_model(8);
  model.set_n_layers(1);
  return model;
}

NamedTensors SomeTensors() {
  at::manual_seed(3);
  return {{"a.weight", at::randn({3, 5})}, {"b.weight", at::randn({1000})}, {"c.bias", at::randn({7})}};
}

// Reassembles every tensor of a snapshot from its chunks, checking order, coverage and CRCs.
std::vector<std::string> Reassemble(const PolicySnapshot& snapshot) {
  std::vector<std::string> tensors(snapshot.manifest().tensors_size());
  uint32_t last_index = 0;
  for (size_t i = 0; i < snapshot.num_chunks(); ++i) {
    const v1::WeightChunk chunk = snapshot.Chunk(i);
    EXPECT_EQ(chunk.version(), snapshot.version());
    EXPECT_GE(chunk.tensor_index(), last_index) << "tensors out of order";
    last_index = chunk.tensor_index();
    std::string& bytes = tensors.at(chunk.tensor_index());
    EXPECT_EQ(chunk.offset(), bytes.size()) << "chunk " << i << " is not contiguous";
    EXPECT_EQ(Crc32c(chunk.data()), chunk.crc32c()) << "chunk " << i;
    bytes += chunk.data();
  }
  return tensors;
}

std::string FloatBytes(const at::Tensor& tensor) {
  const at::Tensor contiguous = tensor.contiguous();
  return std::string(static_cast<const char*>(contiguous.data_ptr()), contiguous.numel() * contiguous.element_size());
}

TEST(WeightPublisher, ChunksReassembleToTheExactBytes) {
  const NamedTensors tensors = SomeTensors();
  WeightPublisher publisher(WeightPublisherOptions{.chunk_bytes = 1000});
  RLJ_ASSERT_OK(publisher.Publish(0, TinyModel(), tensors));
  const auto snapshot = publisher.Latest();
  ASSERT_NE(snapshot, nullptr);
  const v1::PolicyManifest& manifest = snapshot->manifest();
  EXPECT_EQ(manifest.version(), 0);
  EXPECT_FALSE(manifest.unchanged());
  EXPECT_EQ(manifest.model().d_model(), 8);
  ASSERT_EQ(manifest.tensors_size(), 3);
  EXPECT_EQ(manifest.tensors(0).name(), "a.weight");
  EXPECT_EQ(manifest.tensors(1).name(), "b.weight");
  EXPECT_EQ(manifest.tensors(2).name(), "c.bias");
  EXPECT_EQ(manifest.tensors(0).dtype(), v1::FLOAT32);
  EXPECT_EQ(std::vector<int64_t>(manifest.tensors(0).shape().begin(), manifest.tensors(0).shape().end()),
            std::vector<int64_t>({3, 5}));
  EXPECT_EQ(manifest.total_bytes(), (15u + 1000u + 7u) * 4u);

  // 60 bytes → 1 chunk; 4000 bytes → 4 chunks of 1000; 28 bytes → 1 chunk.
  ASSERT_EQ(snapshot->num_chunks(), 6u);
  EXPECT_EQ(snapshot->chunks()[1].size, 1000u);
  EXPECT_EQ(snapshot->chunks()[4].offset, 3000u);

  const std::vector<std::string> bytes = Reassemble(*snapshot);
  for (size_t i = 0; i < tensors.size(); ++i) {
    EXPECT_EQ(bytes[i], FloatBytes(tensors[i].second)) << tensors[i].first;
    RLJ_ASSERT_OK_AND_ASSIGN(at::Tensor decoded, DecodeTensorBytes(manifest.tensors(i), bytes[i]));
    EXPECT_TRUE(at::equal(decoded, tensors[i].second)) << tensors[i].first;
  }
}

TEST(WeightPublisher, DefaultChunkIsOneMebibyteAndSmallTensorIsOneChunk) {
  const at::Tensor big = at::arange(300000, at::kFloat);  // 1,200,000 bytes
  const at::Tensor small = at::ones({4});
  WeightPublisher publisher;
  RLJ_ASSERT_OK(publisher.Publish(1, TinyModel(), {{"big", big}, {"small", small}}));
  const auto snapshot = publisher.Latest();
  ASSERT_EQ(snapshot->num_chunks(), 3u);
  EXPECT_EQ(snapshot->chunks()[0].size, 1048576u);
  EXPECT_EQ(snapshot->chunks()[1].offset, 1048576u);
  EXPECT_EQ(snapshot->chunks()[1].size, 1200000u - 1048576u);
  EXPECT_EQ(snapshot->chunks()[2].tensor_index, 1u);
  EXPECT_EQ(snapshot->chunks()[2].size, 16u);
  const std::vector<std::string> bytes = Reassemble(*snapshot);
  EXPECT_EQ(bytes[0], FloatBytes(big));
  EXPECT_EQ(bytes[1], FloatBytes(small));
}

TEST(WeightPublisher, Bfloat16WireHalvesTheBytes) {
  const NamedTensors tensors = SomeTensors();
  WeightPublisher fp32(WeightPublisherOptions{.chunk_bytes = 512});
  WeightPublisher bf16(WeightPublisherOptions{.chunk_bytes = 512, .wire_dtype = v1::BFLOAT16});
  RLJ_ASSERT_OK(fp32.Publish(0, TinyModel(), tensors));
  RLJ_ASSERT_OK(bf16.Publish(0, TinyModel(), tensors));
  EXPECT_EQ(bf16.Latest()->manifest().total_bytes() * 2, fp32.Latest()->manifest().total_bytes());
  EXPECT_EQ(bf16.Latest()->manifest().tensors(1).dtype(), v1::BFLOAT16);
  const std::vector<std::string> bytes = Reassemble(*bf16.Latest());
  for (size_t i = 0; i < tensors.size(); ++i) {
    EXPECT_EQ(bytes[i].size() * 2, FloatBytes(tensors[i].second).size());
    RLJ_ASSERT_OK_AND_ASSIGN(at::Tensor decoded, DecodeTensorBytes(bf16.Latest()->manifest().tensors(i), bytes[i]));
    EXPECT_TRUE(at::equal(decoded, tensors[i].second.to(at::kBFloat16))) << tensors[i].first;
  }
}

TEST(WeightPublisher, SnapshotIsIndependentOfLaterChanges) {
  at::Tensor weight = at::zeros({4});
  WeightPublisher publisher;
  RLJ_ASSERT_OK(publisher.Publish(0, TinyModel(), {{"w", weight}}));
  const auto snapshot = publisher.Latest();
  weight.fill_(5.0f);
  EXPECT_EQ(snapshot->tensor_bytes(0), std::string(16, '\0'));
}

// The bytes of a ByteBuffer, and the address of each of its slices.
std::string Flatten(const grpc::ByteBuffer& buffer, std::vector<const uint8_t*>* slice_starts = nullptr) {
  std::vector<grpc::Slice> slices;
  EXPECT_TRUE(buffer.Dump(&slices).ok());
  std::string out;
  for (const grpc::Slice& slice : slices) {
    if (slice_starts != nullptr) slice_starts->push_back(slice.begin());
    out.append(reinterpret_cast<const char*>(slice.begin()), slice.size());
  }
  return out;
}

TEST(WeightPublisher, SerializedChunksAreProtobufsOwnBytesAroundTheSharedPayload) {
  // Version 0 and tensor 0 / offset 0 (fields proto3 leaves out), a multi-byte varint version, a 0-byte tensor
  // (one empty chunk, no data field, CRC 0) and a chunk larger than 127 bytes (two-byte length varints).
  for (const int64_t version : {int64_t{0}, int64_t{300}}) {
    const NamedTensors tensors = {
        {"a.weight", at::randn({3, 5})}, {"empty", at::zeros({0})}, {"b.weight", at::randn({1000})}};
    WeightPublisher publisher(WeightPublisherOptions{.chunk_bytes = 1000});
    RLJ_ASSERT_OK(publisher.Publish(version, TinyModel(), tensors));
    const auto snapshot = publisher.Latest();
    ASSERT_EQ(snapshot->num_chunks(), 6u);  // 60 bytes: 1 chunk; 0 bytes: 1; 4000 bytes: 4
    for (size_t i = 0; i < snapshot->num_chunks(); ++i) {
      v1::PolicyMessage expected;
      *expected.mutable_chunk() = snapshot->Chunk(i);
      std::vector<const uint8_t*> slice_starts;
      EXPECT_EQ(Flatten(snapshot->SerializedChunk(i), &slice_starts), expected.SerializeAsString())
          << "version " << version << " chunk " << i;
      const PolicySnapshot::ChunkRef& ref = snapshot->chunks()[i];
      if (ref.size > 0) {
        // The payload is the snapshot's own memory, not a copy.
        ASSERT_GE(slice_starts.size(), 2u);
        EXPECT_EQ(static_cast<const void*>(slice_starts[1]),
                  static_cast<const void*>(snapshot->tensor_bytes(ref.tensor_index).data() + ref.offset));
      }
    }
  }
}

TEST(WeightPublisher, SerializedChunkOutlivesItsSnapshot) {
  const at::Tensor weight = at::arange(1000, at::kFloat);
  grpc::ByteBuffer kept;
  std::string expected;
  {
    WeightPublisher publisher(WeightPublisherOptions{.chunk_bytes = 1024});
    RLJ_ASSERT_OK(publisher.Publish(5, TinyModel(), {{"w", weight}}));
    kept = publisher.Latest()->SerializedChunk(2);  // bytes 2048..3071: floats 512..767
    v1::PolicyMessage message;
    *message.mutable_chunk() = publisher.Latest()->Chunk(2);
    expected = message.SerializeAsString();
  }  // publisher and snapshot gone; the buffer still holds the payload
  const std::string bytes = Flatten(kept);
  EXPECT_EQ(bytes, expected);
  v1::PolicyMessage parsed;
  ASSERT_TRUE(parsed.ParseFromString(bytes));
  EXPECT_EQ(parsed.chunk().version(), 5);
  EXPECT_EQ(parsed.chunk().offset(), 2048u);
  ASSERT_EQ(parsed.chunk().data().size(), 1024u);
  float first = 0;
  std::memcpy(&first, parsed.chunk().data().data(), sizeof(first));
  EXPECT_EQ(first, 512.0f);
  EXPECT_EQ(parsed.chunk().crc32c(), Crc32c(parsed.chunk().data()));
}

TEST(WeightPublisher, VersionsMustIncrease) {
  WeightPublisher publisher;
  EXPECT_EQ(publisher.latest_version(), -1);
  EXPECT_EQ(publisher.Latest(), nullptr);
  RLJ_ASSERT_OK(publisher.Publish(3, TinyModel(), SomeTensors()));
  EXPECT_TRUE(testing::FailsWith(publisher.Publish(3, TinyModel(), SomeTensors()), absl::StatusCode::kInvalidArgument,
                                 "not newer"));
  EXPECT_TRUE(testing::FailsWith(publisher.Publish(2, TinyModel(), SomeTensors()), absl::StatusCode::kInvalidArgument,
                                 "not newer"));
  EXPECT_EQ(publisher.latest_version(), 3);
}

TEST(WeightPublisher, RejectsBadOptionsAndTensors) {
  WeightPublisher zero_chunks(WeightPublisherOptions{.chunk_bytes = 0});
  EXPECT_TRUE(testing::FailsWith(zero_chunks.Publish(0, TinyModel(), SomeTensors()), absl::StatusCode::kInvalidArgument,
                                 "chunk size"));
  WeightPublisher huge_chunks(WeightPublisherOptions{.chunk_bytes = 5u << 20});
  EXPECT_TRUE(testing::FailsWith(huge_chunks.Publish(0, TinyModel(), SomeTensors()), absl::StatusCode::kInvalidArgument,
                                 "chunk size"));
  WeightPublisher integer_wire(WeightPublisherOptions{.wire_dtype = v1::INT32});
  EXPECT_TRUE(testing::FailsWith(integer_wire.Publish(0, TinyModel(), SomeTensors()),
                                 absl::StatusCode::kInvalidArgument, "wire dtype"));
  WeightPublisher publisher;
  EXPECT_TRUE(testing::FailsWith(publisher.Publish(0, TinyModel(), {{"ids", at::arange(4)}}),
                                 absl::StatusCode::kInvalidArgument, "'ids' is not floating point"));
}

TEST(WeightPublisher, WaitForNewerTimesOutWithCurrentAndWakesOnPublish) {
  WeightPublisher publisher;
  RLJ_ASSERT_OK(publisher.Publish(1, TinyModel(), SomeTensors()));
  const auto current = publisher.WaitForNewer(1, milliseconds(20));
  ASSERT_NE(current, nullptr);
  EXPECT_EQ(current->version(), 1);
  EXPECT_EQ(publisher.WaitForNewer(0, milliseconds(60000))->version(), 1);  // already newer: no wait

  auto waiter = std::async(std::launch::async, [&] { return publisher.WaitForNewer(1, milliseconds(60000)); });
  RLJ_ASSERT_OK(publisher.Publish(2, TinyModel(), SomeTensors()));
  const auto newer = waiter.get();
  ASSERT_NE(newer, nullptr);
  EXPECT_EQ(newer->version(), 2);
}

TEST(WeightPublisher, CloseWakesWaiters) {
  WeightPublisher publisher;
  RLJ_ASSERT_OK(publisher.Publish(0, TinyModel(), SomeTensors()));
  auto waiter = std::async(std::launch::async, [&] { return publisher.WaitForNewer(0, milliseconds(60000)); });
  publisher.Close();
  const auto latest = waiter.get();
  ASSERT_NE(latest, nullptr);
  EXPECT_EQ(latest->version(), 0);
}

}  // namespace
}  // namespace rlj
