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
#include "rlj/v1/learner.grpc.pb.h"

namespace rlj {

class Transformer;

struct FetchedPolicy {
  int64_t version = 0;
  v1::ModelConfig model;
  NamedTensors tensors;  // CPU, in the wire dtype
  uint64_t bytes = 0;
};

class PolicyFetcher {
 public:
  PolicyFetcher(std::shared_ptr<v1::Learner::StubInterface> stub, std::string actor_name)
      : stub_(std::move(stub)), actor_name_(std::move(actor_name)) {}

  // Asks for a version newer than `have_version` (-1: any), letting the learner wait up to `wait` for one.
  // nullopt when the caller is already up to date. Corrupt streams (bad CRC, gaps, wrong sizes, a changed
  // version mid-stream) are DataLoss errors; RPC failures keep their gRPC code.
  absl::StatusOr<std::optional<FetchedPolicy>> Fetch(int64_t have_version, std::chrono::milliseconds wait,
                                                     std::chrono::milliseconds deadline);

 private:
  std::shared_ptr<v1::Learner::StubInterface> stub_;
  std::string actor_name_;
};

// Installs a fetched policy into `model`, building it on first use (or when the shape changed). A policy
// whose vocabulary is smaller than the tokenizer's (`tokenizer_vocab`) is refused.
absl::Status InstallPolicy(FetchedPolicy policy, int64_t tokenizer_vocab, Transformer* model);

}  // namespace rlj
