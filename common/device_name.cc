// device_name.cc: ParseDeviceName.
#include "common/device_name.h"

#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace rlj {

absl::StatusOr<DeviceName> ParseDeviceName(std::string_view text) {
  DeviceName name;
  if (text.empty() || text == "auto") return name;
  if (text == "cpu") {
    name.kind = DeviceName::Kind::kCpu;
    return name;
  }
  name.kind = DeviceName::Kind::kCuda;
  if (text == "cuda") return name;
  constexpr std::string_view kCudaPrefix = "cuda:";
  const std::string_view index = text.substr(std::min(text.size(), kCudaPrefix.size()));
  if (text.starts_with(kCudaPrefix) && !index.empty() && index.find_first_not_of("0123456789") == index.npos &&
      index.size() <= 4 && absl::SimpleAtoi(std::string(index), &name.index) && name.index < 4096) {
    return name;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("device '", std::string(text), "': use auto, cpu, cuda or cuda:N (N the GPU's index)"));
}

}  // namespace rlj
