// weight_publisher.h: versioned, immutable CPU snapshots of the policy's weights and their chunking into
// the WeightChunk messages of Learner.GetPolicy, each serialized once per version for every stream.
#pragma once

#include <grpcpp/support/byte_buffer.h>

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "model/checkpoint/safetensors.h"
#include "rlj/v1/config.pb.h"
#include "rlj/v1/learner.pb.h"

namespace rlj {

inline constexpr size_t kDefaultWeightChunkBytes = size_t{1} << 20;
inline constexpr size_t kMaxWeightChunkBytes = size_t{4} << 20;

struct WeightPublisherOptions {
  size_t chunk_bytes = kDefaultWeightChunkBytes;  // 1 .. kMaxWeightChunkBytes; 1-4 MiB in production
  v1::DType wire_dtype = v1::FLOAT32;             // FLOAT32, BFLOAT16 or FLOAT16
};

// One published version: the manifest and every tensor's wire bytes, with the chunk table (and each
// chunk's CRC-32C) and each chunk's serialized PolicyMessage computed once at publication. Immutable; shared
// by every stream that sends it.
class PolicySnapshot {
 public:
  struct ChunkRef {
    uint32_t tensor_index = 0;
    uint64_t offset = 0;
    uint64_t size = 0;
    uint32_t crc32c = 0;
  };

  // Copies `tensors` (any device) to CPU bytes of `options.wire_dtype`, in order.
  static absl::StatusOr<std::shared_ptr<const PolicySnapshot>> Build(int64_t version, const v1::ModelConfig& model,
                                                                     const NamedTensors& tensors,
                                                                     const WeightPublisherOptions& options);

  int64_t version() const { return manifest_.version(); }
  const v1::PolicyManifest& manifest() const { return manifest_; }
  // Chunks in stream order: tensors in manifest order, each tensor's chunks by offset, covering it exactly
  // (a tensor of 0 bytes has one empty chunk).
  const std::vector<ChunkRef>& chunks() const { return chunks_; }
  size_t num_chunks() const { return chunks_.size(); }
  // The WeightChunk message of chunks()[index].
  v1::WeightChunk Chunk(size_t index) const;
  // The PolicyMessage{chunk: Chunk(index)} in protobuf wire format, byte for byte what SerializeAsString
  // writes. Its payload slice points into this snapshot's tensor bytes (no copy) and keeps them alive, so
  // copies of the buffer (reference counted, not copied) can be handed to any number of gRPC writes.
  const grpc::ByteBuffer& SerializedChunk(size_t index) const { return serialized_chunks_.at(index); }
  std::string_view tensor_bytes(size_t tensor_index) const { return *tensor_bytes_.at(tensor_index); }

 private:
  PolicySnapshot() = default;

  v1::PolicyManifest manifest_;
  // Shared with the payload slices of serialized_chunks_, which gRPC may still hold after a stream ends.
  std::vector<std::shared_ptr<const std::string>> tensor_bytes_;
  std::vector<ChunkRef> chunks_;
  std::vector<grpc::ByteBuffer> serialized_chunks_;
};

// Holds the latest snapshot; the training loop publishes, Learner.GetPolicy readers wait for newer ones.
class WeightPublisher {
 public:
  explicit WeightPublisher(WeightPublisherOptions options = {});

  WeightPublisher(const WeightPublisher&) = delete;
  WeightPublisher& operator=(const WeightPublisher&) = delete;

  // Snapshots `tensors` as `version`, which must be greater than the latest published one.
  absl::Status Publish(int64_t version, const v1::ModelConfig& model, const NamedTensors& tensors);

  // The latest snapshot; null before the first Publish.
  std::shared_ptr<const PolicySnapshot> Latest() const;
  int64_t latest_version() const;  // -1 before the first Publish

  // Waits up to `timeout` for a snapshot with version > have_version, then returns the latest one (which
  // is not newer when the wait timed out or the publisher was closed; null when nothing was published).
  std::shared_ptr<const PolicySnapshot> WaitForNewer(int64_t have_version, std::chrono::milliseconds timeout) const;

  // Wakes every waiter at once (shutdown); later waits return immediately.
  void Close();
  bool closed() const;

  const WeightPublisherOptions& options() const { return options_; }

 private:
  const WeightPublisherOptions options_;
  mutable std::mutex mutex_;
  mutable std::condition_variable published_;
  std::shared_ptr<const PolicySnapshot> latest_;
  bool closed_ = false;
};

}  // namespace rlj
