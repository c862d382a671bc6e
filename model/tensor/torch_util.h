// torch_util.h: the boundary between LibTorch's exceptions and absl::Status, device choice and thread
// settings. Every call into LibTorch from a module boundary goes through TorchCall.
#pragma once

#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include <exception>
#include <string>
#include <string_view>
#include <type_traits>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace rlj {

// The message of a LibTorch (or std) exception without its C++ backtrace.
std::string TorchErrorMessage(const std::exception& error);

// Runs `fn`; a thrown exception becomes InternalError("<context>: <message>"). `fn` may return void,
// absl::Status or absl::StatusOr<T>.
template <typename Fn>
auto TorchCall(std::string_view context, Fn&& fn) {
  using Result = std::invoke_result_t<Fn>;
  try {
    if constexpr (std::is_void_v<Result>) {
      fn();
      return absl::OkStatus();
    } else {
      return Result(fn());
    }
  } catch (const std::exception& error) {
    absl::Status status = absl::InternalError(std::string(context) + ": " + TorchErrorMessage(error));
    if constexpr (std::is_void_v<Result>) {
      return status;
    } else {
      return Result(status);
    }
  }
}

// A device name (common/device_name.h) → the device: "auto" is GPU 0 when LibTorch sees one, else the CPU;
// "cuda" / "cuda:N" without that GPU is FailedPrecondition, naming how many GPUs LibTorch sees.
absl::StatusOr<c10::Device> ResolveDevice(std::string_view requested);

// The device of data-parallel learner rank `local_rank`: where the name gives no GPU index ("auto", "cuda") and
// LibTorch sees GPUs, GPU local_rank modulo their count, so that the ranks of a node each have their own (NCCL
// needs one GPU per rank); otherwise what ResolveDevice gives.
absl::StatusOr<c10::Device> ResolveRankDevice(std::string_view requested, int local_rank);

// Where a sampling model (actor, teacher) keeps its weights and KV cache: its device, in bf16 there when that is
// CUDA and `bf16_on_cuda` (actor.bf16, teacher.bf16), else float32.
struct ModelPlacement {
  c10::Device device = c10::Device(c10::kCPU);
  c10::ScalarType dtype = c10::kFloat;
};
absl::StatusOr<ModelPlacement> ResolvePlacement(std::string_view requested, bool bf16_on_cuda);

// Sets LibTorch's intra-op threads (and OpenBLAS/OpenMP's) for this process; n >= 1.
void SetTorchThreads(int n);

}  // namespace rlj
