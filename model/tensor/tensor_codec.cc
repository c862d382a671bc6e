// tensor_codec.cc: torch tensors ↔ rlj.v1.Tensor (little-endian, row-major bytes of the wire dtype).
#include "model/tensor/tensor_codec.h"

#include <ATen/ops/empty.h>

#include <bit>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status.h"
#include "model/tensor/torch_util.h"

namespace rlj {

static_assert(std::endian::native == std::endian::little, "the tensor codec copies host bytes as little-endian");

size_t DTypeSize(v1::DType dtype) {
  switch (dtype) {
    case v1::FLOAT32:
      return 4;
    case v1::BFLOAT16:
      return 2;
    case v1::FLOAT16:
      return 2;
    case v1::INT32:
      return 4;
    case v1::INT64:
      return 8;
    case v1::UINT8:
      return 1;
    default:
      return 0;
  }
}

absl::StatusOr<v1::DType> ToWireDType(c10::ScalarType type) {
  switch (type) {
    case c10::kFloat:
      return v1::FLOAT32;
    case c10::kBFloat16:
      return v1::BFLOAT16;
    case c10::kHalf:
      return v1::FLOAT16;
    case c10::kInt:
      return v1::INT32;
    case c10::kLong:
      return v1::INT64;
    case c10::kByte:
      return v1::UINT8;
    default:
      return absl::InvalidArgumentError(absl::StrCat(
          "dtype ", c10::toString(type), " has no wire dtype (float32, bfloat16, float16, int32, int64, uint8)"));
  }
}

absl::StatusOr<c10::ScalarType> FromWireDType(v1::DType dtype) {
  switch (dtype) {
    case v1::FLOAT32:
      return c10::kFloat;
    case v1::BFLOAT16:
      return c10::kBFloat16;
    case v1::FLOAT16:
      return c10::kHalf;
    case v1::INT32:
      return c10::kInt;
    case v1::INT64:
      return c10::kLong;
    case v1::UINT8:
      return c10::kByte;
    default:
      return absl::InvalidArgumentError(absl::StrCat("unknown wire dtype ", static_cast<int>(dtype)));
  }
}

absl::StatusOr<size_t> TensorSpecBytes(const v1::TensorSpec& spec) {
  const size_t element_size = DTypeSize(spec.dtype());
  if (element_size == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("tensor '", spec.name(), "': unknown dtype ", static_cast<int>(spec.dtype())));
  }
  size_t bytes = element_size;
  for (const int64_t dim : spec.shape()) {
    if (dim < 0) {
      return absl::InvalidArgumentError(absl::StrCat("tensor '", spec.name(), "': negative dimension in shape [",
                                                     absl::StrJoin(spec.shape(), ", "), "]"));
    }
    if (__builtin_mul_overflow(bytes, static_cast<size_t>(dim), &bytes)) {
      return absl::InvalidArgumentError(
          absl::StrCat("tensor '", spec.name(), "': shape [", absl::StrJoin(spec.shape(), ", "), "] overflows"));
    }
  }
  return bytes;
}

absl::StatusOr<v1::Tensor> EncodeTensor(const std::string& name, const at::Tensor& tensor, v1::DType wire_dtype) {
  if (!tensor.defined()) return absl::InvalidArgumentError(absl::StrCat("tensor '", name, "': undefined tensor"));
  v1::DType dtype = wire_dtype;
  if (dtype == v1::DTYPE_UNSPECIFIED) {
    auto own = ToWireDType(tensor.scalar_type());
    if (!own.ok()) return Annotate(own.status(), absl::StrCat("tensor '", name, "'"));
    dtype = *own;
  }
  auto scalar_type = FromWireDType(dtype);
  if (!scalar_type.ok()) return Annotate(scalar_type.status(), absl::StrCat("tensor '", name, "'"));
  return TorchCall(absl::StrCat("encoding tensor '", name, "'"), [&]() -> absl::StatusOr<v1::Tensor> {
    const at::Tensor wire = tensor.detach().to(c10::kCPU, *scalar_type).contiguous();
    v1::Tensor message;
    message.mutable_spec()->set_name(name);
    message.mutable_spec()->set_dtype(dtype);
    for (const int64_t dim : wire.sizes()) message.mutable_spec()->add_shape(dim);
    message.set_data(static_cast<const char*>(wire.data_ptr()), wire.numel() * wire.element_size());
    return message;
  });
}

absl::StatusOr<at::Tensor> DecodeTensorBytes(const v1::TensorSpec& spec, std::string_view bytes) {
  RLJ_ASSIGN_OR_RETURN(const size_t expected, TensorSpecBytes(spec));
  if (bytes.size() != expected) {
    return absl::InvalidArgumentError(absl::StrCat("tensor '", spec.name(), "': ", bytes.size(),
                                                   " bytes of data, but shape [", absl::StrJoin(spec.shape(), ", "),
                                                   "] needs ", expected));
  }
  RLJ_ASSIGN_OR_RETURN(const c10::ScalarType scalar_type, FromWireDType(spec.dtype()));
  return TorchCall(absl::StrCat("decoding tensor '", spec.name(), "'"), [&]() -> absl::StatusOr<at::Tensor> {
    const std::vector<int64_t> shape(spec.shape().begin(), spec.shape().end());
    at::Tensor tensor = at::empty(shape, at::TensorOptions().dtype(scalar_type));
    if (expected > 0) std::memcpy(tensor.data_ptr(), bytes.data(), expected);
    return tensor;
  });
}

absl::StatusOr<at::Tensor> DecodeTensor(const v1::Tensor& tensor) {
  return DecodeTensorBytes(tensor.spec(), tensor.data());
}

}  // namespace rlj
