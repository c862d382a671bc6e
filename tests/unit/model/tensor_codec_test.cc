// tensor_codec_test.cc: the wire tensor codec: byte layout, round trips for every dtype, conversions,
// non-contiguous inputs and size checks.
#include "model/tensor/tensor_codec.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstring>

#include "test_util.h"

namespace rlj {
namespace {

using ::rlj::testing::FailsWith;

TEST(TensorCodec, DTypeTables) {
  EXPECT_EQ(DTypeSize(v1::FLOAT32), 4u);
  EXPECT_EQ(DTypeSize(v1::BFLOAT16), 2u);
  EXPECT_EQ(DTypeSize(v1::FLOAT16), 2u);
  EXPECT_EQ(DTypeSize(v1::INT32), 4u);
  EXPECT_EQ(DTypeSize(v1::INT64), 8u);
  EXPECT_EQ(DTypeSize(v1::UINT8), 1u);
  EXPECT_EQ(DTypeSize(v1::DTYPE_UNSPECIFIED), 0u);
  for (const auto type : {torch::kFloat, torch::kBFloat16, torch::kHalf, torch::kInt, torch::kLong, torch::kByte}) {
    RLJ_ASSERT_OK_AND_ASSIGN(const v1::DType wire, ToWireDType(type));
    RLJ_ASSERT_OK_AND_ASSIGN(const c10::ScalarType back, FromWireDType(wire));
    EXPECT_EQ(back, type);
  }
  EXPECT_TRUE(FailsWith(ToWireDType(torch::kDouble), absl::StatusCode::kInvalidArgument, "Double"));
  EXPECT_TRUE(FailsWith(FromWireDType(v1::DTYPE_UNSPECIFIED), absl::StatusCode::kInvalidArgument, "unknown"));
}

TEST(TensorCodec, LittleEndianRowMajorBytes) {
  // float32 1.0 = 0x3f800000, -2.0 = 0xc0000000; stored low byte first, row by row.
  const torch::Tensor tensor = torch::tensor({{1.0f, -2.0f}}, torch::kFloat);
  RLJ_ASSERT_OK_AND_ASSIGN(const v1::Tensor wire, EncodeTensor("w", tensor));
  EXPECT_EQ(wire.spec().name(), "w");
  EXPECT_EQ(wire.spec().dtype(), v1::FLOAT32);
  EXPECT_EQ(std::vector<int64_t>(wire.spec().shape().begin(), wire.spec().shape().end()), (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(wire.data(), std::string("\x00\x00\x80\x3f\x00\x00\x00\xc0", 8));
  // bfloat16 keeps the top half of the float32: 1.0 → 0x3f80.
  RLJ_ASSERT_OK_AND_ASSIGN(const v1::Tensor bf16, EncodeTensor("w", tensor, v1::BFLOAT16));
  EXPECT_EQ(bf16.data(), std::string("\x80\x3f\x00\xc0", 4));
  // int64 258 = 0x0102.
  RLJ_ASSERT_OK_AND_ASSIGN(const v1::Tensor ids, EncodeTensor("ids", torch::tensor({258L})));
  EXPECT_EQ(ids.data(), std::string("\x02\x01\x00\x00\x00\x00\x00\x00", 8));
}

TEST(TensorCodec, RoundTripEveryDType) {
  torch::manual_seed(3);
  const torch::Tensor floats = torch::randn({3, 4, 5});
  const std::vector<torch::Tensor> tensors = {
      floats,
      floats.to(torch::kBFloat16),
      floats.to(torch::kHalf),
      torch::randint(-1000000, 1000000, {7}, torch::kInt),
      torch::randint(-(1LL << 40), 1LL << 40, {2, 3}, torch::kLong),
      torch::randint(0, 256, {4, 4}, torch::kByte),
      torch::zeros({0, 3}),        // empty
      torch::scalar_tensor(3.5f),  // scalar
  };
  for (const auto& tensor : tensors) {
    RLJ_ASSERT_OK_AND_ASSIGN(const v1::Tensor wire, EncodeTensor("t", tensor));
    EXPECT_EQ(wire.data().size(), tensor.numel() * tensor.element_size());
    RLJ_ASSERT_OK_AND_ASSIGN(const torch::Tensor back, DecodeTensor(wire));
    EXPECT_EQ(back.scalar_type(), tensor.scalar_type());
    EXPECT_EQ(back.sizes(), tensor.sizes());
    EXPECT_TRUE(torch::equal(back, tensor)) << tensor.scalar_type();
  }
}

TEST(TensorCodec, EncodeConvertsToTheWireDType) {
  const torch::Tensor tensor = torch::tensor({1.0f, 0.5f, 3.140625f, -100.0f});
  RLJ_ASSERT_OK_AND_ASSIGN(const v1::Tensor wire, EncodeTensor("x", tensor, v1::BFLOAT16));
  EXPECT_EQ(wire.spec().dtype(), v1::BFLOAT16);
  EXPECT_EQ(wire.data().size(), 8u);
  RLJ_ASSERT_OK_AND_ASSIGN(const torch::Tensor back, DecodeTensor(wire));
  EXPECT_EQ(back.scalar_type(), torch::kBFloat16);
  EXPECT_TRUE(torch::equal(back.to(torch::kFloat), tensor));  // all four are exact in bfloat16
  RLJ_ASSERT_OK_AND_ASSIGN(const v1::Tensor ints, EncodeTensor("x", torch::tensor({1L, 2L}), v1::INT32));
  EXPECT_EQ(ints.data(), std::string("\x01\x00\x00\x00\x02\x00\x00\x00", 8));
}

TEST(TensorCodec, NonContiguousInputsEncodeInLogicalOrder) {
  const torch::Tensor base = torch::arange(12, torch::kFloat).view({3, 4});
  for (const torch::Tensor& view : {base.t(), base.narrow(1, 1, 2), base.select(1, 3), base.expand({2, 3, 4})}) {
    ASSERT_FALSE(view.is_contiguous());
    RLJ_ASSERT_OK_AND_ASSIGN(const v1::Tensor wire, EncodeTensor("v", view));
    const torch::Tensor contiguous = view.contiguous();
    EXPECT_EQ(wire.data(), std::string(static_cast<const char*>(contiguous.data_ptr()), contiguous.nbytes()));
    RLJ_ASSERT_OK_AND_ASSIGN(const torch::Tensor back, DecodeTensor(wire));
    EXPECT_TRUE(torch::equal(back, view));
  }
}

TEST(TensorCodec, DecodeChecksSizesNamingTheTensor) {
  RLJ_ASSERT_OK_AND_ASSIGN(v1::Tensor wire, EncodeTensor("layers.0.weight", torch::ones({2, 3})));
  wire.mutable_data()->pop_back();
  EXPECT_TRUE(FailsWith(DecodeTensor(wire), absl::StatusCode::kInvalidArgument,
                        "tensor 'layers.0.weight': 23 bytes of data, but shape [2, 3] needs 24"));
  wire.mutable_data()->append("xy");
  EXPECT_TRUE(FailsWith(DecodeTensor(wire), absl::StatusCode::kInvalidArgument, "25 bytes"));

  v1::TensorSpec spec;
  spec.set_name("bad");
  spec.set_dtype(v1::FLOAT32);
  spec.add_shape(2);
  spec.add_shape(-1);
  EXPECT_TRUE(FailsWith(TensorSpecBytes(spec), absl::StatusCode::kInvalidArgument, "tensor 'bad': negative dimension"));
  spec.set_shape(1, 1LL << 62);
  EXPECT_TRUE(FailsWith(TensorSpecBytes(spec), absl::StatusCode::kInvalidArgument, "overflows"));
  spec.set_shape(1, 5);
  RLJ_ASSERT_OK_AND_ASSIGN(const size_t bytes, TensorSpecBytes(spec));
  EXPECT_EQ(bytes, 40u);
  spec.set_dtype(v1::DTYPE_UNSPECIFIED);
  EXPECT_TRUE(FailsWith(TensorSpecBytes(spec), absl::StatusCode::kInvalidArgument, "tensor 'bad': unknown dtype"));
  EXPECT_TRUE(FailsWith(DecodeTensorBytes(spec, std::string(40, '\0')), absl::StatusCode::kInvalidArgument, "bad"));
  EXPECT_TRUE(
      FailsWith(EncodeTensor("d", torch::ones({2}, torch::kDouble)), absl::StatusCode::kInvalidArgument, "tensor 'd'"));
}

TEST(TensorCodec, DecodeTensorBytesFromAChunkedStream) {
  const torch::Tensor tensor = torch::arange(10, torch::kInt).view({2, 5});
  RLJ_ASSERT_OK_AND_ASSIGN(const v1::Tensor wire, EncodeTensor("chunked", tensor));
  std::string joined = wire.data().substr(0, 16);
  joined += wire.data().substr(16);
  RLJ_ASSERT_OK_AND_ASSIGN(const torch::Tensor back, DecodeTensorBytes(wire.spec(), joined));
  EXPECT_TRUE(torch::equal(back, tensor));
}

}  // namespace
}  // namespace rlj
