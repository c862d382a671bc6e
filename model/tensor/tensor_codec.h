// tensor_codec.h: the one converter between torch tensors and the rlj.v1.Tensor wire message.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstddef>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "rlj/v1/tensor.pb.h"

namespace rlj {

// Bytes per element of a wire dtype; 0 for DTYPE_UNSPECIFIED.
size_t DTypeSize(v1::DType dtype);
absl::StatusOr<v1::DType> ToWireDType(c10::ScalarType type);
absl::StatusOr<c10::ScalarType> FromWireDType(v1::DType dtype);

// numel × element size; an error for negative dimensions, overflow or an unknown dtype.
absl::StatusOr<size_t> TensorSpecBytes(const v1::TensorSpec& spec);

// Encodes `tensor` (any device, any layout) as `wire_dtype` (DTYPE_UNSPECIFIED keeps its own dtype).
absl::StatusOr<v1::Tensor> EncodeTensor(const std::string& name, const at::Tensor& tensor,
                                        v1::DType wire_dtype = v1::DTYPE_UNSPECIFIED);

// Decodes to a CPU tensor of the wire dtype; the data size must equal the spec's.
absl::StatusOr<at::Tensor> DecodeTensor(const v1::Tensor& tensor);

// Decodes raw little-endian bytes against a spec (used by chunked weight streams).
absl::StatusOr<at::Tensor> DecodeTensorBytes(const v1::TensorSpec& spec, std::string_view bytes);

}  // namespace rlj
