// weight_publisher.cc: CPU snapshots of the policy weights, their chunk tables and the latest-version slot.
#include "learner/weight_publisher.h"

#include <grpcpp/support/slice.h>

#include <algorithm>
#include <optional>

#include "absl/strings/str_cat.h"
#include "common/crc32c.h"
#include "common/status.h"
#include "model/tensor/tensor_codec.h"
#include "model/tensor/torch_util.h"

namespace rlj {
namespace {

// Just enough of the protobuf wire format to write PolicyMessage{chunk: WeightChunk} around a payload that
// stays where it is. Zero-valued scalars and empty bytes are left out, as proto3 serializers do.
enum WireType : uint32_t { kVarint = 0, kLengthDelimited = 2 };

void PutVarint(std::string* out, uint64_t value) {
  while (value >= 0x80) {
    out->push_back(static_cast<char>((value & 0x7f) | 0x80));
    value >>= 7;
  }
  out->push_back(static_cast<char>(value));
}

size_t VarintSize(uint64_t value) {
  size_t size = 1;
  while (value >= 0x80) {
    value >>= 7;
    ++size;
  }
  return size;
}

void PutTag(std::string* out, int field, WireType type) { PutVarint(out, (static_cast<uint64_t>(field) << 3) | type); }

void PutVarintField(std::string* out, int field, uint64_t value) {
  if (value == 0) return;
  PutTag(out, field, kVarint);
  PutVarint(out, value);
}

void ReleaseTensorBytes(void* holder) { delete static_cast<std::shared_ptr<const std::string>*>(holder); }

// A slice over all of `bytes` that owns a reference to them (gRPC may hold it after the snapshot is gone).
grpc::Slice SharedSlice(const std::shared_ptr<const std::string>& bytes) {
  return grpc::Slice(const_cast<char*>(bytes->data()), bytes->size(), &ReleaseTensorBytes,
                     new std::shared_ptr<const std::string>(bytes));
}

// PolicyMessage{chunk} as [tag, length, version, tensor_index, offset, data tag and length] + payload +
// [crc32c]: the payload is a sub-slice of `whole` (a reference, not a copy).
grpc::ByteBuffer SerializeChunk(int64_t version, const PolicySnapshot::ChunkRef& ref, const grpc::Slice* whole) {
  std::string fields;
  PutVarintField(&fields, v1::WeightChunk::kVersionFieldNumber, static_cast<uint64_t>(version));
  PutVarintField(&fields, v1::WeightChunk::kTensorIndexFieldNumber, ref.tensor_index);
  PutVarintField(&fields, v1::WeightChunk::kOffsetFieldNumber, ref.offset);
  std::string crc_field;
  PutVarintField(&crc_field, v1::WeightChunk::kCrc32CFieldNumber, ref.crc32c);
  const size_t data_field =
      ref.size == 0 ? 0 : VarintSize(v1::WeightChunk::kDataFieldNumber << 3) + VarintSize(ref.size) + ref.size;
  std::string head;
  PutTag(&head, v1::PolicyMessage::kChunkFieldNumber, kLengthDelimited);
  PutVarint(&head, fields.size() + data_field + crc_field.size());
  head += fields;
  if (ref.size == 0) {
    head += crc_field;
    grpc::Slice only(head);
    return grpc::ByteBuffer(&only, 1);
  }
  PutTag(&head, v1::WeightChunk::kDataFieldNumber, kLengthDelimited);
  PutVarint(&head, ref.size);
  std::vector<grpc::Slice> slices;
  slices.emplace_back(head);
  slices.push_back(whole->sub(ref.offset, ref.offset + ref.size));
  if (!crc_field.empty()) slices.emplace_back(crc_field);
  return grpc::ByteBuffer(slices.data(), slices.size());
}

}  // namespace

absl::StatusOr<std::shared_ptr<const PolicySnapshot>> PolicySnapshot::Build(int64_t version,
                                                                            const v1::ModelConfig& model,
                                                                            const NamedTensors& tensors,
                                                                            const WeightPublisherOptions& options) {
  if (options.chunk_bytes < 1 || options.chunk_bytes > kMaxWeightChunkBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("weight chunk size ", options.chunk_bytes, " is outside 1..", kMaxWeightChunkBytes, " bytes"));
  }
  if (options.wire_dtype != v1::FLOAT32 && options.wire_dtype != v1::BFLOAT16 && options.wire_dtype != v1::FLOAT16) {
    return absl::InvalidArgumentError(
        absl::StrCat("weight wire dtype ", v1::DType_Name(options.wire_dtype), " is not FLOAT32, BFLOAT16 or FLOAT16"));
  }
  std::shared_ptr<PolicySnapshot> snapshot(new PolicySnapshot());
  snapshot->manifest_.set_version(version);
  *snapshot->manifest_.mutable_model() = model;
  snapshot->tensor_bytes_.reserve(tensors.size());
  uint64_t total_bytes = 0;
  for (size_t index = 0; index < tensors.size(); ++index) {
    const auto& [name, tensor] = tensors[index];
    if (!tensor.defined()) return absl::InvalidArgumentError(absl::StrCat("tensor '", name, "' is undefined"));
    if (!tensor.is_floating_point()) {
      return absl::InvalidArgumentError(absl::StrCat("tensor '", name, "' is not floating point"));
    }
    RLJ_ASSIGN_OR_RETURN(v1::Tensor encoded, EncodeTensor(name, tensor, options.wire_dtype));
    *snapshot->manifest_.add_tensors() = encoded.spec();
    auto bytes = std::make_shared<const std::string>(std::move(*encoded.mutable_data()));
    const uint64_t size = bytes->size();
    std::optional<grpc::Slice> whole;
    if (size > 0) whole = SharedSlice(bytes);
    uint64_t offset = 0;
    do {
      const uint64_t length = std::min<uint64_t>(options.chunk_bytes, size - offset);
      const ChunkRef ref{static_cast<uint32_t>(index), offset, length, Crc32c(bytes->data() + offset, length)};
      snapshot->chunks_.push_back(ref);
      snapshot->serialized_chunks_.push_back(SerializeChunk(version, ref, whole ? &*whole : nullptr));
      offset += length;
    } while (offset < size);
    total_bytes += size;
    snapshot->tensor_bytes_.push_back(std::move(bytes));
  }
  snapshot->manifest_.set_total_bytes(total_bytes);
  return std::shared_ptr<const PolicySnapshot>(std::move(snapshot));
}

v1::WeightChunk PolicySnapshot::Chunk(size_t index) const {
  const ChunkRef& ref = chunks_.at(index);
  v1::WeightChunk chunk;
  chunk.set_version(version());
  chunk.set_tensor_index(ref.tensor_index);
  chunk.set_offset(ref.offset);
  chunk.set_data(tensor_bytes_[ref.tensor_index]->substr(ref.offset, ref.size));
  chunk.set_crc32c(ref.crc32c);
  return chunk;
}

WeightPublisher::WeightPublisher(WeightPublisherOptions options) : options_(options) {}

absl::Status WeightPublisher::Publish(int64_t version, const v1::ModelConfig& model, const NamedTensors& tensors) {
  const int64_t previous = latest_version();
  if (version <= previous) {
    return absl::InvalidArgumentError(
        absl::StrCat("policy version ", version, " is not newer than the published version ", previous));
  }
  RLJ_ASSIGN_OR_RETURN(std::shared_ptr<const PolicySnapshot> snapshot, TorchCall("snapshot policy weights", [&] {
                         return PolicySnapshot::Build(version, model, tensors, options_);
                       }));
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (latest_ != nullptr && version <= latest_->version()) {
      return absl::InvalidArgumentError(
          absl::StrCat("policy version ", version, " is not newer than the published version ", latest_->version()));
    }
    latest_ = std::move(snapshot);
  }
  published_.notify_all();
  return absl::OkStatus();
}

std::shared_ptr<const PolicySnapshot> WeightPublisher::Latest() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return latest_;
}

int64_t WeightPublisher::latest_version() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return latest_ == nullptr ? -1 : latest_->version();
}

std::shared_ptr<const PolicySnapshot> WeightPublisher::WaitForNewer(int64_t have_version,
                                                                    std::chrono::milliseconds timeout) const {
  std::unique_lock<std::mutex> lock(mutex_);
  published_.wait_for(lock, std::max(timeout, std::chrono::milliseconds(0)),
                      [&] { return closed_ || (latest_ != nullptr && latest_->version() > have_version); });
  return latest_;
}

void WeightPublisher::Close() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    closed_ = true;
  }
  published_.notify_all();
}

bool WeightPublisher::closed() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return closed_;
}

}  // namespace rlj
