// torch_compat.cc: the version switches behind torch_compat.h.
#include "model/tensor/torch_compat.h"

#include <ATen/ATen.h>
#include <ATen/autocast_mode.h>
#include <c10/util/Exception.h>
#include <torch/version.h>

namespace rlj::torch_compat {

#define RLJ_TORCH_AT_LEAST(major, minor) \
  (TORCH_VERSION_MAJOR > (major) || (TORCH_VERSION_MAJOR == (major) && TORCH_VERSION_MINOR >= (minor)))

const char* TorchVersion() { return TORCH_VERSION; }

bool HasFusedAttention() { return RLJ_TORCH_AT_LEAST(2, 1); }

at::Tensor FusedAttention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& bias,
                          bool causal, double scale) {
#if RLJ_TORCH_AT_LEAST(2, 1)
  // The mask in the query's dtype: the kernels take a floating mask only of that dtype (under autocast the
  // query is bf16 while the mask was made in the weights' float32).
  const at::Tensor mask = bias.defined() && bias.scalar_type() != q.scalar_type() ? bias.to(q.scalar_type()) : bias;
  return at::scaled_dot_product_attention(q, k, v, mask.defined() ? std::optional<at::Tensor>(mask) : std::nullopt,
                                          /*dropout_p=*/0.0, causal && !mask.defined(), scale);
#else
  (void)q, (void)k, (void)v, (void)bias, (void)causal, (void)scale;
  TORCH_CHECK(false, "FusedAttention: LibTorch ", TORCH_VERSION, " has no scaled_dot_product_attention");
#endif
}

bool CudaAutocastEnabled() {
#if RLJ_TORCH_AT_LEAST(2, 4)
  return at::autocast::is_autocast_enabled(at::kCUDA);
#else
  return at::autocast::is_enabled();
#endif
}

c10::ScalarType CudaAutocastDtype() {
#if RLJ_TORCH_AT_LEAST(2, 4)
  return at::autocast::get_autocast_dtype(at::kCUDA);
#else
  return at::autocast::get_autocast_gpu_dtype();
#endif
}

void SetCudaAutocast(bool enabled, c10::ScalarType dtype) {
#if RLJ_TORCH_AT_LEAST(2, 4)
  at::autocast::set_autocast_enabled(at::kCUDA, enabled);
  at::autocast::set_autocast_dtype(at::kCUDA, dtype);
#else
  at::autocast::set_enabled(enabled);
  at::autocast::set_autocast_gpu_dtype(dtype);
#endif
}

}  // namespace rlj::torch_compat
