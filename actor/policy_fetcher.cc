// policy_fetcher.cc: reads a GetPolicy stream and checks every chunk against the manifest.
#include "actor/policy_fetcher.h"


#include "absl/strings/str_cat.h"
#include "common/crc32c.h"
#include "common/grpc_util.h"
#include "common/status.h"
#include "common/tensor/tensor_codec.h"

namespace rlj {

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
  if (!reader->Read(&message) || !message.has_manifest()) {
    RLJ_RETURN_IF_ERROR(FromGrpcStatus(reader->Finish(), "Learner.GetPolicy"));
    return absl::DataLossError("Learner.GetPolicy: the stream did not start with a manifest");
  }
  const v1::PolicyManifest manifest = message.manifest();
  if (manifest.unchanged()) {
    RLJ_RETURN_IF_ERROR(FromGrpcStatus(reader->Finish(), "Learner.GetPolicy"));
    return std::optional<FetchedPolicy>();
  }

  // One buffer per tensor, filled strictly in order.
  std::vector<std::string> buffers(manifest.tensors_size());
  std::vector<size_t> expected(manifest.tensors_size());
  uint64_t total = 0;
  for (int i = 0; i < manifest.tensors_size(); ++i) {
    RLJ_ASSIGN_OR_RETURN(expected[i], TensorSpecBytes(manifest.tensors(i)));
    buffers[i].reserve(expected[i]);
    total += expected[i];
  }
  if (total != manifest.total_bytes()) {
    return absl::DataLossError(absl::StrCat("policy v", manifest.version(), ": manifest total_bytes ", manifest.total_bytes(),
                                            " != sum of tensor sizes ", total));
  }
  while (reader->Read(&message)) {
    if (!message.has_chunk()) return absl::DataLossError("policy stream: a second manifest arrived");
    const v1::WeightChunk& chunk = message.chunk();
    if (chunk.version() != manifest.version()) {
      return absl::DataLossError(absl::StrCat("policy stream: chunk of v", chunk.version(), " inside v", manifest.version()));
    }
    if (chunk.tensor_index() >= buffers.size()) {
      return absl::DataLossError(absl::StrCat("policy stream: chunk for tensor index ", chunk.tensor_index(), " of ", buffers.size()));
    }
    std::string& buffer = buffers[chunk.tensor_index()];
    const std::string& name = manifest.tensors(chunk.tensor_index()).name();
    if (chunk.offset() != buffer.size()) {
      return absl::DataLossError(absl::StrCat("policy stream: tensor ", name, " chunk at offset ", chunk.offset(), ", expected ", buffer.size()));
    }
    if (buffer.size() + chunk.data().size() > expected[chunk.tensor_index()]) {
      return absl::DataLossError(absl::StrCat("policy stream: tensor ", name, " receives more bytes than its shape holds"));
    }
    if (Crc32c(chunk.data()) != chunk.crc32c()) {
      return absl::DataLossError(absl::StrCat("policy stream: CRC-32C mismatch in tensor ", name, " at offset ", chunk.offset()));
    }
    buffer.append(chunk.data());
  }
  RLJ_RETURN_IF_ERROR(FromGrpcStatus(reader->Finish(), "Learner.GetPolicy"));

  FetchedPolicy policy;
  policy.version = manifest.version();
  policy.model = manifest.model();
  policy.bytes = total;
  for (int i = 0; i < manifest.tensors_size(); ++i) {
    if (buffers[i].size() != expected[i]) {
      return absl::DataLossError(absl::StrCat("policy stream ended early: tensor ", manifest.tensors(i).name(), " has ",
                                              buffers[i].size(), " of ", expected[i], " bytes"));
    }
    RLJ_ASSIGN_OR_RETURN(at::Tensor tensor, DecodeTensorBytes(manifest.tensors(i), buffers[i]));
    std::string().swap(buffers[i]);
    policy.tensors.emplace_back(manifest.tensors(i).name(), std::move(tensor));
  }
  return std::optional<FetchedPolicy>(std::move(policy));
}

}  // namespace rlj
