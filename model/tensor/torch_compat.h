// torch_compat.h: what differs between LibTorch 1.13 (Debian's, the default build) and 2.x (a PyTorch install's,
// tools/build-libtorch2.sh), one function each. torch_compat.cc is the only file that looks at LibTorch's version.
#pragma once

#include <c10/core/ScalarType.h>

namespace at {
class Tensor;
}  // namespace at

namespace rlj::torch_compat {

// "1.13.0", "2.11.0": the LibTorch this binary was built against.
const char* TorchVersion();

// Whether at::scaled_dot_product_attention exists (2.x): flash and memory-efficient kernels on CUDA.
bool HasFusedAttention();

// softmax(q kᵀ · scale + bias) v with q [B, H, T, hd], k and v [B, H, S, hd]; bias additive, [B or 1, 1, T, S], or
// undefined with `causal` (query t sees keys 0..t, T == S). Only where HasFusedAttention(); elsewhere it throws.
at::Tensor FusedAttention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& bias,
                          bool causal, double scale);

// CUDA autocast: whether it is on and in which dtype, and switching it (the API moved in LibTorch 2.4).
bool CudaAutocastEnabled();
c10::ScalarType CudaAutocastDtype();
void SetCudaAutocast(bool enabled, c10::ScalarType dtype);

}  // namespace rlj::torch_compat
