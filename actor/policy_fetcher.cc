// policy_fetcher.cc: reads a GetPolicy stream, checks every chunk against the manifest and copies its bytes
// straight into the destination tensors.
#include "actor/policy_fetcher.h"

#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>

#include <algorithm>
#include <cstring>
#include <string_view>

#include "absl/strings/str_cat.h"
#include "common/crc32c.h"
#include "common/grpc_util.h"
#include "common/status.h"
#include "model/checkpoint/checkpoint.h"
#include "model/tensor/tensor_codec.h"
#include "model/tensor/torch_util.h"
#include "model/transformer.h"

namespace rlj {
namespace {

// CRC and copy go block by block so each block is read from memory once and copied while it is in cache.
constexpr size_t kCopyBlockBytes = size_t{128} << 10;

// One tensor being filled strictly in order from the stream.
struct Destination {
  at::Tensor tensor;
  char* data = nullptr;
  size_t expected = 0;
  size_t filled = 0;
};

// Allocates the CPU tensor a manifest entry describes (uninitialised; every byte will be written), in pinned
// memory when the weights go on to a GPU: the copy there is then asynchronous, and LibTorch's caching host
// allocator hands the same pinned blocks to the next version.
absl::StatusOr<Destination> AllocateDestination(const v1::TensorSpec& spec, bool pinned) {
  Destination destination;
  RLJ_ASSIGN_OR_RETURN(destination.expected, TensorSpecBytes(spec));
  RLJ_ASSIGN_OR_RETURN(const c10::ScalarType scalar_type, FromWireDType(spec.dtype()));
  RLJ_RETURN_IF_ERROR(TorchCall(absl::StrCat("allocating tensor '", spec.name(), "'"), [&] {
    const std::vector<int64_t> shape(spec.shape().begin(), spec.shape().end());
    destination.tensor = at::empty(shape, at::TensorOptions().dtype(scalar_type).pinned_memory(pinned));
  }));
  destination.data = static_cast<char*>(destination.tensor.data_ptr());
  return destination;
}

// CRC-32C of `bytes`, copied to `out` on the way.
uint32_t Crc32cAndCopy(std::string_view bytes, char* out) {
  uint32_t crc = 0;
  for (size_t offset = 0; offset < bytes.size(); offset += kCopyBlockBytes) {
    const size_t length = std::min(kCopyBlockBytes, bytes.size() - offset);
    crc = Crc32cExtend(crc, bytes.data() + offset, length);
    std::memcpy(out + offset, bytes.data() + offset, length);
  }
  return crc;
}

}  // namespace

absl::StatusOr<std::optional<FetchedPolicy>> PolicyFetcher::Fetch(int64_t have_version, std::chrono::milliseconds wait,
                                                                  std::chrono::milliseconds deadline) {
  grpc::ClientContext context;
  SetDeadline(&context, deadline + wait);
  v1::GetPolicyRequest request;
  request.set_have_version(have_version);
  request.set_actor(actor_name_);
  request.set_wait_ms(wait.count());
  std::unique_ptr<grpc::ClientReaderInterface<v1::PolicyMessage>> reader = stub_->GetPolicy(&context, request);

  v1::PolicyMessage message;
  if (!reader->Read(&message)) {
    RLJ_RETURN_IF_ERROR(FromGrpcStatus(reader->Finish(), "Learner.GetPolicy"));
    return absl::DataLossError("Learner.GetPolicy: the stream ended without a manifest");
  }
  if (!message.has_manifest()) {
    // Finish would wait for the unread rest of the stream; the call is abandoned instead (as on every
    // DataLoss below, where the context's destructor cancels it).
    context.TryCancel();
    return absl::DataLossError("Learner.GetPolicy: the stream did not start with a manifest");
  }
  const v1::PolicyManifest manifest = message.manifest();
  if (manifest.unchanged()) {
    RLJ_RETURN_IF_ERROR(FromGrpcStatus(reader->Finish(), "Learner.GetPolicy"));
    return std::optional<FetchedPolicy>();
  }

  // One tensor per manifest entry, filled strictly in order.
  std::vector<Destination> destinations;
  destinations.reserve(static_cast<size_t>(manifest.tensors_size()));
  uint64_t total = 0;
  for (int i = 0; i < manifest.tensors_size(); ++i) {
    RLJ_ASSIGN_OR_RETURN(Destination destination, AllocateDestination(manifest.tensors(i), pinned_));
    total += destination.expected;
    destinations.push_back(std::move(destination));
  }
  if (total != manifest.total_bytes()) {
    return absl::DataLossError(absl::StrCat("policy v", manifest.version(), ": manifest total_bytes ",
                                            manifest.total_bytes(), " != sum of tensor sizes ", total));
  }
  while (reader->Read(&message)) {
    if (!message.has_chunk()) return absl::DataLossError("policy stream: a second manifest arrived");
    const v1::WeightChunk& chunk = message.chunk();
    if (chunk.version() != manifest.version()) {
      return absl::DataLossError(
          absl::StrCat("policy stream: chunk of v", chunk.version(), " inside v", manifest.version()));
    }
    if (chunk.tensor_index() >= destinations.size()) {
      return absl::DataLossError(
          absl::StrCat("policy stream: chunk for tensor index ", chunk.tensor_index(), " of ", destinations.size()));
    }
    Destination& destination = destinations[chunk.tensor_index()];
    const std::string& name = manifest.tensors(static_cast<int>(chunk.tensor_index())).name();
    if (chunk.offset() != destination.filled) {
      return absl::DataLossError(absl::StrCat("policy stream: tensor ", name, " chunk at offset ", chunk.offset(),
                                              ", expected ", destination.filled));
    }
    if (chunk.data().size() > destination.expected - destination.filled) {
      return absl::DataLossError(
          absl::StrCat("policy stream: tensor ", name, " receives more bytes than its shape holds"));
    }
    if (Crc32cAndCopy(chunk.data(), destination.data + destination.filled) != chunk.crc32c()) {
      return absl::DataLossError(
          absl::StrCat("policy stream: CRC-32C mismatch in tensor ", name, " at offset ", chunk.offset()));
    }
    destination.filled += chunk.data().size();
  }
  RLJ_RETURN_IF_ERROR(FromGrpcStatus(reader->Finish(), "Learner.GetPolicy"));

  FetchedPolicy policy;
  policy.version = manifest.version();
  policy.model = manifest.model();
  policy.bytes = total;
  for (int i = 0; i < manifest.tensors_size(); ++i) {
    Destination& destination = destinations[static_cast<size_t>(i)];
    if (destination.filled != destination.expected) {
      return absl::DataLossError(absl::StrCat("policy stream ended early: tensor ", manifest.tensors(i).name(), " has ",
                                              destination.filled, " of ", destination.expected, " bytes"));
    }
    policy.tensors.emplace_back(manifest.tensors(i).name(), std::move(destination.tensor));
  }
  return std::optional<FetchedPolicy>(std::move(policy));
}

absl::Status InstallPolicy(FetchedPolicy policy, int64_t tokenizer_vocab, const ModelPlacement& placement,
                           Transformer* model) {
  RLJ_ASSIGN_OR_RETURN(TransformerConfig shape, TransformerConfig::FromProto(policy.model));
  if (shape.vocab_size < tokenizer_vocab) {
    return absl::FailedPreconditionError(absl::StrCat("the policy's vocab_size ", shape.vocab_size,
                                                      " is smaller than the tokenizer's ", tokenizer_vocab));
  }
  return TorchCall("installing policy weights", [&]() -> absl::Status {
    if (model->is_empty() || (*model)->config().ToProto().SerializeAsString() != shape.ToProto().SerializeAsString()) {
      *model = Transformer(shape);
      (*model)->to(placement.device, placement.dtype);
      (*model)->eval();
    }
    return LoadNamedTensors(*model, policy.tensors);
  });
}

}  // namespace rlj
