// rank_group.h: data-parallel learner ranks over torch.distributed's c10d: rendezvous through a TCPStore
// (the torchrun variables MASTER_ADDR, MASTER_PORT, RANK, WORLD_SIZE), Gloo on the CPU, NCCL on CUDA.
#pragma once

#include <ATen/core/Tensor.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace rlj {

struct RankGroupOptions {
  int rank = 0;
  int world_size = 1;
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;     // rank 0 binds it (0: any free port, see RankGroup::store_port)
  std::string device = "cpu";  // "cpu" → Gloo; "cuda" → NCCL when this build has it, else Gloo
  std::chrono::milliseconds timeout{30 * 60 * 1000};  // rendezvous and every collective
};

// The torchrun variables from the environment (unset RANK/WORLD_SIZE → rank 0 of 1). Reads the
// environment, so only the tools/ layer calls it.
absl::StatusOr<RankGroupOptions> RankGroupOptionsFromEnvironment();

class RankGroup {
 public:
  // Rank 0 starts the TCPStore server; every rank connects and joins the process group. Blocks until all
  // world_size ranks have joined (or the timeout passes).
  static absl::StatusOr<std::unique_ptr<RankGroup>> Connect(const RankGroupOptions& options);
  ~RankGroup();

  RankGroup(const RankGroup&) = delete;
  RankGroup& operator=(const RankGroup&) = delete;

  int rank() const;
  int world_size() const;
  const char* backend() const;  // "gloo" or "nccl"
  int store_port() const;       // the TCPStore's port (the bound one when 0 was asked for)

  // In-place sum over every rank; every rank passes a tensor of the same shape and dtype.
  absl::Status AllReduceSum(at::Tensor& tensor);
  // In-place copy of `root`'s tensor to every rank.
  absl::Status Broadcast(at::Tensor& tensor, int root = 0);
  // `root`'s bytes to every rank (the size goes first, so receivers need not know it).
  absl::Status BroadcastBytes(std::string* bytes, int root = 0);

 private:
  struct State;
  explicit RankGroup(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

// Whether this build can make a process group for `device` ("cpu": Gloo; "cuda": NCCL or Gloo).
bool RankGroupAvailable(const std::string& device);

}  // namespace rlj
