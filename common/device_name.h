// device_name.h: the device names of rlj's config keys and flags (auto, cpu, cuda, cuda:N), parsed in one place.
#pragma once

#include <string_view>

#include "absl/status/statusor.h"

namespace rlj {

struct DeviceName {
  enum class Kind { kAuto, kCpu, kCuda };
  Kind kind = Kind::kAuto;
  int index = 0;  // the GPU of "cuda:N"; "cuda" is GPU 0
};

// "auto" (or ""), "cpu", "cuda", "cuda:N" (N a decimal GPU index below 4096). Anything else is InvalidArgument,
// naming the text and the accepted forms.
absl::StatusOr<DeviceName> ParseDeviceName(std::string_view text);

}  // namespace rlj
