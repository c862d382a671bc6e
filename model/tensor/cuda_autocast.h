// cuda_autocast.h: bf16 autocast of CUDA forward passes for a scope, the one guard the GRPO and SFT trainers use.
#pragma once

#include <c10/core/ScalarType.h>

namespace rlj {

// While it lives (and `enabled`), CUDA ops run under autocast in bf16; the previous state comes back after.
// Disabled, it does nothing: the CPU and learner.bf16 = false.
class CudaAutocast {
 public:
  explicit CudaAutocast(bool enabled);
  ~CudaAutocast();
  CudaAutocast(const CudaAutocast&) = delete;
  CudaAutocast& operator=(const CudaAutocast&) = delete;

 private:
  bool enabled_;
  bool previous_ = false;
  c10::ScalarType previous_dtype_ = c10::kBFloat16;
};

}  // namespace rlj
