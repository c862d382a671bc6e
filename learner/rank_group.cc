// rank_group.cc: c10d process groups for data-parallel learners: a TCPStore rendezvous, then Gloo (CPU, or
// CUDA tensors staged through the CPU) or NCCL (CUDA builds that ship its header).
#include "learner/rank_group.h"

#include <ATen/ATen.h>

#include <cstdlib>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "model/tensor/torch_util.h"

// The c10d headers declare the Gloo and NCCL groups only under these macros; the libraries themselves are
// part of LibTorch. Gloo's headers come from libgloo-dev (Debian) or the LibTorch distribution: CMake looks for
// them at configure time and defines RLJ_HAVE_GLOO (learner/CMakeLists.txt). Without them this file still
// compiles, and RankGroup::Connect refuses a CPU group of more than one rank with a clear error.
#include <torch/csrc/distributed/c10d/Types.hpp>
#if defined(RLJ_HAVE_GLOO)
#ifndef USE_C10D_GLOO
#define USE_C10D_GLOO 1
#endif
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#endif
#if defined(RLJ_WITH_NCCL) && __has_include(<nccl.h>)
#ifndef USE_C10D_NCCL
#define USE_C10D_NCCL 1
#endif
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#define RLJ_HAVE_NCCL 1
#endif
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

namespace rlj {
namespace {

absl::StatusOr<int> IntFromEnvironment(const char* name, int fallback) {
  const char* value = std::getenv(name);
  if (value == nullptr || *value == '\0') return fallback;
  int parsed = 0;
  if (!absl::SimpleAtoi(value, &parsed)) {
    return absl::InvalidArgumentError(absl::StrCat("environment variable ", name, "='", value, "' is not an integer"));
  }
  return parsed;
}

[[maybe_unused]] bool IsLoopback(const std::string& host) {  // unused in a build without Gloo
  return host == "localhost" || host == "::1" || host.rfind("127.", 0) == 0;
}

}  // namespace

absl::StatusOr<RankGroupOptions> RankGroupOptionsFromEnvironment() {
  RankGroupOptions options;
  RLJ_ASSIGN_OR_RETURN(options.rank, IntFromEnvironment("RANK", 0));
  RLJ_ASSIGN_OR_RETURN(options.world_size, IntFromEnvironment("WORLD_SIZE", 1));
  RLJ_ASSIGN_OR_RETURN(options.master_port, IntFromEnvironment("MASTER_PORT", 29500));
  if (const char* addr = std::getenv("MASTER_ADDR"); addr != nullptr && *addr != '\0') options.master_addr = addr;
  if (options.world_size < 1) return absl::InvalidArgumentError("WORLD_SIZE must be >= 1");
  if (options.rank < 0 || options.rank >= options.world_size) {
    return absl::InvalidArgumentError(
        absl::StrCat("RANK ", options.rank, " is outside 0..", options.world_size - 1, " (WORLD_SIZE)"));
  }
  if (options.master_port < 0 || options.master_port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat("MASTER_PORT ", options.master_port, " is not a port"));
  }
  return options;
}

bool RankGroupAvailable(const std::string& device) {
#if defined(RLJ_HAVE_GLOO)
  (void)device;
  return true;
#elif defined(RLJ_HAVE_NCCL)
  return device == "cuda";
#else
  (void)device;
  return false;
#endif
}

struct RankGroup::State {
  RankGroupOptions options;
  c10::intrusive_ptr<c10d::TCPStore> store;
#if defined(RLJ_HAVE_GLOO)
  c10::intrusive_ptr<c10d::ProcessGroupGloo> gloo;
#endif
#if defined(RLJ_HAVE_NCCL)
  c10::intrusive_ptr<c10d::ProcessGroupNCCL> nccl;
#endif

  bool UsesNccl() const {
#if defined(RLJ_HAVE_NCCL)
    return nccl.defined();
#else
    return false;
#endif
  }

  // Runs one collective on `tensor`, staging CUDA tensors through the CPU for Gloo.
  template <typename Collective>
  void Run(at::Tensor& tensor, Collective&& collective) {
    if (UsesNccl() || !tensor.is_cuda()) {
      std::vector<at::Tensor> tensors{tensor};
      collective(tensors);
      return;
    }
    std::vector<at::Tensor> staged{tensor.to(at::kCPU).contiguous()};
    collective(staged);
    tensor.copy_(staged[0]);
  }

  template <typename Fn>
  void Dispatch(Fn&& fn) {
#if defined(RLJ_HAVE_NCCL)
    if (nccl.defined()) return fn(*nccl);
#endif
#if defined(RLJ_HAVE_GLOO)
    return fn(*gloo);
#else
    (void)fn;  // unreachable: Connect refuses to make a group this build cannot run
    TORCH_CHECK(false, "no process group");
#endif
  }
};

RankGroup::RankGroup(std::unique_ptr<State> state) : state_(std::move(state)) {}
RankGroup::~RankGroup() = default;

absl::StatusOr<std::unique_ptr<RankGroup>> RankGroup::Connect(const RankGroupOptions& options) {
  if (options.world_size < 1 || options.rank < 0 || options.rank >= options.world_size) {
    return absl::InvalidArgumentError(absl::StrCat("rank ", options.rank, " of world size ", options.world_size));
  }
  if (!RankGroupAvailable(options.device)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "this build has no c10d process group for device ", options.device,
        " (Gloo needs its headers at build time: Debian's libgloo-dev; NCCL needs a CUDA LibTorch and nccl.h)"));
  }
  auto state = std::make_unique<State>();
  state->options = options;
  RLJ_RETURN_IF_ERROR(TorchCall(
      absl::StrCat("joining rank group at ", options.master_addr, ":", options.master_port, " as rank ", options.rank,
                   " of ", options.world_size),
      [&] {
        c10d::TCPStoreOptions store_options;
        store_options.port = static_cast<std::uint16_t>(options.master_port);
        store_options.isServer = options.rank == 0;
        store_options.numWorkers = static_cast<std::size_t>(options.world_size);
        store_options.waitWorkers = false;
        store_options.timeout = options.timeout;
        state->store = c10::make_intrusive<c10d::TCPStore>(options.master_addr, store_options);
#if defined(RLJ_HAVE_NCCL)
        if (options.device == "cuda") {
          auto nccl_options = c10d::ProcessGroupNCCL::Options::create();
          nccl_options->timeout = options.timeout;
          state->nccl =
              c10::make_intrusive<c10d::ProcessGroupNCCL>(state->store, options.rank, options.world_size, nccl_options);
          return;
        }
#endif
#if defined(RLJ_HAVE_GLOO)
        auto gloo_options = c10d::ProcessGroupGloo::Options::create(options.timeout);
        gloo_options->devices.push_back(IsLoopback(options.master_addr)
                                            ? c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1")
                                            : c10d::ProcessGroupGloo::createDefaultDevice());
        state->gloo =
            c10::make_intrusive<c10d::ProcessGroupGloo>(state->store, options.rank, options.world_size, gloo_options);
#endif
      }));
  return std::unique_ptr<RankGroup>(new RankGroup(std::move(state)));
}

int RankGroup::rank() const { return state_->options.rank; }
int RankGroup::world_size() const { return state_->options.world_size; }
const char* RankGroup::backend() const { return state_->UsesNccl() ? "nccl" : "gloo"; }
int RankGroup::store_port() const { return state_->store ? state_->store->getPort() : state_->options.master_port; }

absl::Status RankGroup::AllReduceSum(at::Tensor& tensor) {
  return TorchCall("all-reduce", [&] {
    state_->Run(tensor, [&](std::vector<at::Tensor>& tensors) {
      state_->Dispatch([&](auto& group) {
        c10d::AllreduceOptions options;
        options.reduceOp = c10d::ReduceOp::SUM;
        group.allreduce(tensors, options)->wait();
      });
    });
  });
}

absl::Status RankGroup::Broadcast(at::Tensor& tensor, int root) {
  return TorchCall("broadcast", [&] {
    state_->Run(tensor, [&](std::vector<at::Tensor>& tensors) {
      state_->Dispatch([&](auto& group) {
        c10d::BroadcastOptions options;
        options.rootRank = root;
        group.broadcast(tensors, options)->wait();
      });
    });
  });
}

absl::Status RankGroup::BroadcastBytes(std::string* bytes, int root) {
  const bool cuda = state_->UsesNccl();
  const auto options = at::TensorOptions().device(cuda ? at::Device(at::kCUDA) : at::Device(at::kCPU));
  at::Tensor size;
  RLJ_RETURN_IF_ERROR(TorchCall("broadcast size", [&] {
    size = at::full({1}, rank() == root ? static_cast<int64_t>(bytes->size()) : 0, options.dtype(at::kLong));
  }));
  RLJ_RETURN_IF_ERROR(Broadcast(size, root));
  int64_t length = 0;
  RLJ_RETURN_IF_ERROR(TorchCall("read size", [&] { length = size.cpu().item<int64_t>(); }));
  if (length == 0) {
    bytes->clear();
    return absl::OkStatus();
  }
  at::Tensor data;
  RLJ_RETURN_IF_ERROR(TorchCall("broadcast buffer", [&] {
    if (rank() == root) {
      data = at::from_blob(bytes->data(), {length}, at::TensorOptions().dtype(at::kByte)).clone().to(options.device());
    } else {
      data = at::empty({length}, options.dtype(at::kByte));
    }
  }));
  RLJ_RETURN_IF_ERROR(Broadcast(data, root));
  if (rank() != root) {
    return TorchCall("read buffer", [&] {
      const at::Tensor host = data.cpu().contiguous();
      bytes->assign(static_cast<const char*>(host.data_ptr()), static_cast<size_t>(length));
    });
  }
  return absl::OkStatus();
}

}  // namespace rlj
