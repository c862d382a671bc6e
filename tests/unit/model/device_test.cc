// device_test.cc: device choice (ResolveDevice, ResolvePlacement), LibTorch 2.x's fused attention against the
// plain arithmetic, sampling with bf16 weights, and the same generation on CUDA as on the CPU. The CUDA tests
// skip, saying so, where LibTorch sees no GPU (every CPU machine and CI); the CPU tests run the same code paths
// (device-resident logits, the sampler on the logits' device, bf16 weights, the fused attention on 2.x).
#include <gtest/gtest.h>
#include <torch/cuda.h>
#include <torch/torch.h>

#include <cmath>

#include "common/tokenizer/byte_tokenizer.h"
#include "model/checkpoint/checkpoint.h"
#include "model/sampler.h"
#include "model/tensor/torch_compat.h"
#include "model/tensor/torch_util.h"
#include "model/transformer.h"
#include "model_test_util.h"
#include "test_util.h"

namespace rlj {
namespace {

using ::rlj::testing::MakeModel;
using ::rlj::testing::MaxAbsDiff;
using ::rlj::testing::SmallConfig;
using ::rlj::testing::TokensTensor;

constexpr const char* kNoGpu =
    "LibTorch sees no CUDA device (a CPU machine or a CPU build); the CPU tests of "
    "this file run the same code paths";

TEST(Device, ResolveDeviceNamesTheDevice) {
  EXPECT_EQ(ResolveDevice("cpu").value(), c10::Device(c10::kCPU));
  const bool gpu = torch::cuda::is_available();
  EXPECT_EQ(ResolveDevice("auto").value(), gpu ? c10::Device(c10::kCUDA, 0) : c10::Device(c10::kCPU));
  EXPECT_TRUE(testing::FailsWith(ResolveDevice("gpu"), absl::StatusCode::kInvalidArgument,
                                 "device 'gpu': use auto, cpu, cuda or cuda:N"));
  // A GPU index beyond what LibTorch sees: FailedPrecondition naming the count.
  const auto gpus = gpu ? static_cast<int>(torch::cuda::device_count()) : 0;
  const std::string beyond = "cuda:" + std::to_string(gpus);
  EXPECT_TRUE(testing::FailsWith(ResolveDevice(beyond), absl::StatusCode::kFailedPrecondition,
                                 "device '" + beyond + "' was asked for, but LibTorch sees " +
                                     (gpus == 0 ? std::string("no CUDA device") : std::to_string(gpus) + " GPUs")));
}

TEST(Device, EachLearnerRankGetsItsOwnGpuUnlessOneIsNamed) {
  EXPECT_EQ(ResolveRankDevice("cpu", 3).value(), c10::Device(c10::kCPU));
  if (!torch::cuda::is_available()) {
    EXPECT_EQ(ResolveRankDevice("auto", 3).value(), c10::Device(c10::kCPU));
    GTEST_SKIP() << kNoGpu;
  }
  const auto gpus = static_cast<int>(torch::cuda::device_count());
  EXPECT_EQ(ResolveRankDevice("cuda", 0).value(), c10::Device(c10::kCUDA, 0));
  EXPECT_EQ(ResolveRankDevice("auto", 3).value(), c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(3 % gpus)));
  EXPECT_EQ(ResolveRankDevice("cuda:0", 3).value(), c10::Device(c10::kCUDA, 0));  // named: every rank there
}

TEST(Device, PlacementIsBf16OnlyOnCudaAndOnlyWhenAsked) {
  const ModelPlacement cpu = ResolvePlacement("cpu", /*bf16_on_cuda=*/true).value();
  EXPECT_EQ(cpu.device, c10::Device(c10::kCPU));
  EXPECT_EQ(cpu.dtype, c10::kFloat);
  if (!torch::cuda::is_available()) GTEST_SKIP() << kNoGpu;
  EXPECT_EQ(ResolvePlacement("cuda", true).value().dtype, c10::kBFloat16);
  EXPECT_EQ(ResolvePlacement("cuda:0", false).value().dtype, c10::kFloat);
}

// softmax(q kᵀ · scale + bias) v, written out.
torch::Tensor PlainAttention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                             const torch::Tensor& bias, double scale) {
  torch::Tensor scores = torch::matmul(q, k.transpose(-2, -1)) * scale;
  if (bias.defined()) scores = scores + bias;
  return torch::matmul(torch::softmax(scores, -1), v);
}

TEST(Device, FusedAttentionMatchesThePlainArithmetic) {
  if (!torch_compat::HasFusedAttention()) {
    GTEST_SKIP() << "LibTorch " << torch_compat::TorchVersion()
                 << " has no scaled_dot_product_attention (tools/build-libtorch2.sh builds against 2.x)";
  }
  torch::manual_seed(3);
  const torch::Tensor q = torch::randn({2, 4, 5, 8}), k = torch::randn({2, 4, 5, 8}), v = torch::randn({2, 4, 5, 8});
  // A causal mask with the first key of row 0 padded out, as MaskBias makes it: [B, 1, T, S].
  torch::Tensor bias = torch::zeros({2, 1, 5, 5});
  bias.masked_fill_(torch::ones({5, 5}, torch::kBool).triu(1), -INFINITY);
  bias.index_put_({0, 0, torch::indexing::Slice(1), 0}, -INFINITY);
  EXPECT_LT(MaxAbsDiff(torch_compat::FusedAttention(q, k, v, bias, false, 0.5), PlainAttention(q, k, v, bias, 0.5)),
            1e-5);
  const torch::Tensor causal =
      torch::zeros({1, 1, 5, 5}).masked_fill(torch::ones({5, 5}, torch::kBool).triu(1), -INFINITY);
  EXPECT_LT(MaxAbsDiff(torch_compat::FusedAttention(q, k, v, {}, true, 1.0), PlainAttention(q, k, v, causal, 1.0)),
            1e-5);
  // A decode step: one query per row over all keys.
  const torch::Tensor q1 = q.narrow(2, 4, 1);
  EXPECT_LT(MaxAbsDiff(torch_compat::FusedAttention(q1, k, v, {}, false, 1.0), PlainAttention(q1, k, v, {}, 1.0)),
            1e-5);
}

std::vector<std::vector<int32_t>> Prompts() { return {{256, 'a', 'b'}, {256, 'h', 'e', 'l', 'l', 'o'}, {256, '1'}}; }

SamplingOptions Greedy() {
  SamplingOptions options;
  options.temperature = 0;
  options.max_new_tokens = 12;
  return options;
}

// A float32 model and its copy in `dtype` on `device`: the same weights, rounded.
Transformer Placed(Transformer& model, c10::Device device, c10::ScalarType dtype) {
  Transformer placed = CloneTransformer(model);
  placed->to(device, dtype);
  placed->eval();
  return placed;
}

TEST(Device, Bf16WeightsSampleAndScoreCloseToFloat32) {
  const TransformerConfig config = SmallConfig();
  Transformer model = MakeModel(config, 11, /*matrix_std=*/0.3);
  model->eval();
  Transformer bf16 = Placed(model, c10::Device(c10::kCPU), c10::kBFloat16);
  ASSERT_EQ(bf16->parameters().front().scalar_type(), c10::kBFloat16);
  const ByteTokenizer tokenizer;
  const auto f32_out = SampleCompletions(model, tokenizer, Prompts(), Greedy());
  const auto bf16_out = SampleCompletions(bf16, tokenizer, Prompts(), Greedy());
  RLJ_ASSERT_OK(f32_out.status());
  RLJ_ASSERT_OK(bf16_out.status());
  for (size_t p = 0; p < Prompts().size(); ++p) {
    ASSERT_FALSE((*bf16_out)[p].tokens.empty());
    // Wide margins (matrix_std 0.3): the first greedy token agrees; log-probs agree to bf16's precision.
    EXPECT_EQ((*bf16_out)[p].tokens[0], (*f32_out)[p].tokens[0]) << "prompt " << p;
    EXPECT_NEAR((*bf16_out)[p].logprobs[0], (*f32_out)[p].logprobs[0], 0.1) << "prompt " << p;
  }
  torch::NoGradGuard no_grad;
  const torch::Tensor tokens = TokensTensor({{256, 'a', 'b', 'c'}});
  const torch::Tensor logits = bf16->forward(tokens);
  EXPECT_EQ(logits.scalar_type(), c10::kFloat);  // logits come out float32 whatever the weights
  EXPECT_LT(MaxAbsDiff(logits, model->forward(tokens)), 0.25);
}

TEST(Device, CudaSamplesWhatTheCpuSamples) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << kNoGpu;
  const TransformerConfig config = SmallConfig();
  Transformer model = MakeModel(config, 11, /*matrix_std=*/0.3);
  model->eval();
  const ByteTokenizer tokenizer;
  const c10::Device cuda(c10::kCUDA, 0);
  for (const c10::ScalarType dtype : {c10::kFloat, c10::kBFloat16}) {
    Transformer on_gpu = Placed(model, cuda, dtype);
    const auto cpu_out = SampleCompletions(model, tokenizer, Prompts(), Greedy());
    const auto gpu_out = SampleCompletions(on_gpu, tokenizer, Prompts(), Greedy());
    RLJ_ASSERT_OK(gpu_out.status());
    for (size_t p = 0; p < Prompts().size(); ++p) {
      if (dtype == c10::kFloat) EXPECT_EQ((*gpu_out)[p].tokens, (*cpu_out)[p].tokens) << "prompt " << p;
      EXPECT_EQ((*gpu_out)[p].tokens[0], (*cpu_out)[p].tokens[0]) << "prompt " << p;
      EXPECT_NEAR((*gpu_out)[p].logprobs[0], (*cpu_out)[p].logprobs[0], dtype == c10::kFloat ? 1e-3 : 0.1);
    }
    // Sampling at temperature 1 on the GPU: the same seeds give the same ids twice.
    SamplingOptions sampled = Greedy();
    sampled.temperature = 1.0;
    sampled.top_p = 0.9;
    sampled.seed = 5;
    const auto first = SampleCompletions(on_gpu, tokenizer, Prompts(), sampled);
    const auto second = SampleCompletions(on_gpu, tokenizer, Prompts(), sampled);
    RLJ_ASSERT_OK(first.status());
    for (size_t p = 0; p < Prompts().size(); ++p) EXPECT_EQ((*first)[p].tokens, (*second)[p].tokens);
  }
}

TEST(Device, PinnedWeightsLoadIntoACudaModel) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << kNoGpu;
  Transformer source = MakeModel(SmallConfig(), 4);
  NamedTensors pinned;
  for (auto& [name, tensor] : NamedParameters(source)) pinned.emplace_back(name, tensor.detach().clone().pin_memory());
  Transformer target = MakeModel(SmallConfig(), 5);
  target->to(c10::Device(c10::kCUDA, 0), c10::kBFloat16);
  RLJ_ASSERT_OK(LoadNamedTensors(target, pinned));
  const NamedTensors loaded = NamedParameters(target);
  for (size_t i = 0; i < loaded.size(); ++i) {
    EXPECT_LT(MaxAbsDiff(loaded[i].second.cpu(), pinned[i].second), 0.02) << loaded[i].first;
  }
}

}  // namespace
}  // namespace rlj
