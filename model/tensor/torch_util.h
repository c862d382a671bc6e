// torch_util.h: the boundary between LibTorch's exceptions and absl::Status, device choice and thread
// settings. Every call into LibTorch from a module boundary goes through TorchCall.
#pragma once

#include <c10/core/Device.h>

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

// "auto" → CUDA when LibTorch sees a GPU, else CPU; "cuda" without a GPU is an error.
absl::StatusOr<c10::Device> ResolveDevice(std::string_view requested);

// Sets LibTorch's intra-op threads (and OpenBLAS/OpenMP's) for this process; n >= 1.
void SetTorchThreads(int n);

}  // namespace rlj
