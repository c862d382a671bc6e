// cuda_autocast.cc: CudaAutocast over torch_compat's version-independent autocast switches.
#include "model/tensor/cuda_autocast.h"

#include <ATen/autocast_mode.h>

#include "model/tensor/torch_compat.h"

namespace rlj {

CudaAutocast::CudaAutocast(bool enabled) : enabled_(enabled) {
  if (!enabled_) return;
  previous_ = torch_compat::CudaAutocastEnabled();
  previous_dtype_ = torch_compat::CudaAutocastDtype();
  torch_compat::SetCudaAutocast(true, c10::kBFloat16);
  at::autocast::increment_nesting();
}

CudaAutocast::~CudaAutocast() {
  if (!enabled_) return;
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
  torch_compat::SetCudaAutocast(previous_, previous_dtype_);
}

}  // namespace rlj
