// torch_util.cc: LibTorch exception messages, device resolution and thread settings.
#include "model/tensor/torch_util.h"

#include <ATen/Parallel.h>
#include <c10/util/Exception.h>
#include <torch/cuda.h>

#include "absl/strings/str_cat.h"
#include "common/device_name.h"
#include "common/status.h"

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
  RLJ_ASSIGN_OR_RETURN(const DeviceName name, ParseDeviceName(requested));
  const bool has_cuda = torch::cuda::is_available();
  switch (name.kind) {
    case DeviceName::Kind::kCpu:
      return c10::Device(c10::kCPU);
    case DeviceName::Kind::kAuto:
      return has_cuda ? c10::Device(c10::kCUDA, 0) : c10::Device(c10::kCPU);
    case DeviceName::Kind::kCuda:
      break;
  }
  const auto gpus = static_cast<int>(has_cuda ? torch::cuda::device_count() : 0);
  if (name.index >= gpus) {
    return absl::FailedPreconditionError(absl::StrCat("device '", std::string(requested),
                                                      "' was asked for, but LibTorch sees ",
                                                      gpus == 0 ? "no CUDA device" : absl::StrCat(gpus, " GPUs"),
                                                      gpus == 0 ? " (a CPU build, or no GPU visible)" : ""));
  }
  return c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(name.index));
}

absl::StatusOr<c10::Device> ResolveRankDevice(std::string_view requested, int local_rank) {
  RLJ_ASSIGN_OR_RETURN(const c10::Device device, ResolveDevice(requested));
  if (!device.is_cuda() || requested.find(':') != std::string_view::npos || local_rank <= 0) return device;
  const auto gpus = static_cast<int>(torch::cuda::device_count());
  return c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(local_rank % gpus));
}

absl::StatusOr<ModelPlacement> ResolvePlacement(std::string_view requested, bool bf16_on_cuda) {
  RLJ_ASSIGN_OR_RETURN(const c10::Device device, ResolveDevice(requested));
  return ModelPlacement{device, device.is_cuda() && bf16_on_cuda ? c10::kBFloat16 : c10::kFloat};
}

void SetTorchThreads(int n) { at::set_num_threads(std::max(1, n)); }

}  // namespace rlj
