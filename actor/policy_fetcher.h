// policy_fetcher.h: the client side of Learner.GetPolicy: reassembles a versioned, chunked, checksummed
// weight stream into tensors, or reports that the caller is up to date; and installs what it fetched into a
// model (actors, `rlj run`'s periodic evaluation).
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "model/checkpoint/safetensors.h"
#include "model/tensor/torch_util.h"
#include "rlj/v1/learner.grpc.pb.h"

namespace rlj {

class Transformer;

struct FetchedPolicy {
  int64_t version = 0;
  v1::ModelConfig model;
  NamedTensors tensors;  // CPU (pinned when the fetcher pins), in the wire dtype
  uint64_t bytes = 0;
};

class PolicyFetcher {
 public:
  // pinned: receive into pinned host memory (for a model on a GPU; needs a CUDA build that sees one).
  PolicyFetcher(std::shared_ptr<v1::Learner::StubInterface> stub, std::string actor_name, bool pinned = false)
      : stub_(std::move(stub)), actor_name_(std::move(actor_name)), pinned_(pinned) {}

  // Asks for a version newer than `have_version` (-1: any), letting the learner wait up to `wait` for one.
  // nullopt when the caller is already up to date. Corrupt streams (bad CRC, gaps, wrong sizes, a changed
  // version mid-stream) are DataLoss errors; RPC failures keep their gRPC code.
  absl::StatusOr<std::optional<FetchedPolicy>> Fetch(int64_t have_version, std::chrono::milliseconds wait,
                                                     std::chrono::milliseconds deadline);

 private:
  std::shared_ptr<v1::Learner::StubInterface> stub_;
  std::string actor_name_;
  bool pinned_;
};

// Installs a fetched policy into `model`, building it on first use (or when the shape changed) on the placement's
// device and dtype; the weights are converted on the way in. A policy whose vocabulary is smaller than the
// tokenizer's (`tokenizer_vocab`) is refused.
absl::Status InstallPolicy(FetchedPolicy policy, int64_t tokenizer_vocab, const ModelPlacement& placement,
                           Transformer* model);

}  // namespace rlj
