// torch_util.cc: LibTorch exception messages, device resolution and thread settings.
#include "model/tensor/torch_util.h"

#include <ATen/Parallel.h>
#include <c10/util/Exception.h>
#include <torch/cuda.h>

#include "absl/strings/str_cat.h"

namespace rlj {

std::string TorchErrorMessage(const std::exception& error) {
  if (const auto* torch_error = dynamic_cast<const c10::Error*>(&error)) {
    return torch_error->what_without_backtrace();
  }
  std::string message = error.what();
  if (const size_t newline = message.find("\nException raised from"); newline != std::string::npos) {
    message.resize(newline);
  }
  return message;
}

absl::StatusOr<c10::Device> ResolveDevice(std::string_view requested) {
  const bool has_cuda = torch::cuda::is_available();
  if (requested == "cpu") return c10::Device(c10::kCPU);
  if (requested == "cuda") {
    if (!has_cuda)
      return absl::FailedPreconditionError("device 'cuda' was asked for, but LibTorch sees no CUDA device");
    return c10::Device(c10::kCUDA, 0);
  }
  if (requested == "auto" || requested.empty()) return has_cuda ? c10::Device(c10::kCUDA, 0) : c10::Device(c10::kCPU);
  return absl::InvalidArgumentError(absl::StrCat("device '", std::string(requested), "': use auto, cpu or cuda"));
}

void SetTorchThreads(int n) { at::set_num_threads(std::max(1, n)); }

}  // namespace rlj
