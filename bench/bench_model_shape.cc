// bench_model_shape.cc: shape flags, the model config, the shape in the JSON line, and the GEMM rate measurement.
#include "bench/bench_model_shape.h"

#include <ATen/ATen.h>
#include <torch/cuda.h>

#include <algorithm>
#include <chrono>

#include "model/tensor/torch_compat.h"

namespace rlj::tools {

void AddModelShapeOptions(CLI::App* app, BenchModelShape* shape) {
  app->add_option("--layers", shape->layers, "Decoder layers")->capture_default_str();
  app->add_option("--d-model", shape->d_model, "Hidden size")->capture_default_str();
  app->add_option("--heads", shape->heads, "Attention heads")->capture_default_str();
  app->add_option("--kv-heads", shape->kv_heads, "Key/value heads (grouped-query attention); 0 = --heads")
      ->capture_default_str();
  app->add_option("--ffn", shape->ffn, "SwiGLU hidden size")->capture_default_str();
  app->add_option("--vocab", shape->vocab, "Vocabulary size")->capture_default_str();
  app->add_option("--architecture", shape->architecture, "llama (no biases) or qwen2 (q/k/v biases)")
      ->check(CLI::IsMember({"llama", "qwen2"}))
      ->capture_default_str();
  app->add_option("--rope-theta", shape->rope_theta, "RoPE base")->capture_default_str();
  app->add_option("--device", shape->device, "auto | cpu | cuda | cuda:N")->capture_default_str();
  app->add_option("--bf16", shape->bf16, "On CUDA: bf16 weights (generate) or bf16 autocast (train)")
      ->capture_default_str();
}

absl::StatusOr<TransformerConfig> BenchModelShape::Config(int max_seq_len) const {
  TransformerConfig config;
  config.architecture = architecture;
  config.n_layers = layers;
  config.d_model = d_model;
  config.n_heads = heads;
  config.n_kv_heads = resolved_kv_heads();
  config.ffn_hidden = ffn;
  config.vocab_size = vocab;
  config.rope_theta = rope_theta;
  config.tie_embeddings = true;
  config.max_seq_len = max_seq_len;
  if (absl::Status status = config.Validate(); !status.ok()) return status;
  return config;
}

void WriteModelShape(const BenchModelShape& shape, const c10::Device& device, c10::ScalarType dtype,
                     nlohmann::json* out) {
  (*out)["architecture"] = shape.architecture;
  (*out)["layers"] = shape.layers;
  (*out)["d_model"] = shape.d_model;
  (*out)["heads"] = shape.heads;
  (*out)["kv_heads"] = shape.resolved_kv_heads();
  (*out)["ffn"] = shape.ffn;
  (*out)["vocab"] = shape.vocab;
  (*out)["device"] = device.str();
  (*out)["dtype"] = c10::toString(dtype);
  (*out)["torch"] = torch_compat::TorchVersion();
}

double SecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

void SyncDevice(const c10::Device& device) {
  if (device.is_cuda()) torch::cuda::synchronize(device.index());
}

double GemmRate(int64_t m, int64_t k, int64_t n, const c10::Device& device, c10::ScalarType dtype) {
  const auto options = at::TensorOptions().device(device).dtype(dtype);
  const at::Tensor a = at::randn({m, k}, options), b = at::randn({k, n}, options);
  at::Tensor c = at::mm(a, b);
  const int64_t budget = device.is_cuda() ? int64_t{1} << 38 : int64_t{1} << 30;  // multiply-adds per timing
  const int calls = static_cast<int>(std::max<int64_t>(1, budget / (m * k * n)));
  double best = 1e9;
  for (int i = 0; i < 5; ++i) {
    SyncDevice(device);
    const auto start = std::chrono::steady_clock::now();
    for (int j = 0; j < calls; ++j) at::mm_out(c, a, b);
    SyncDevice(device);
    best = std::min(best, SecondsSince(start) / calls);
  }
  return 2.0 * static_cast<double>(m * k * n) / best;
}

}  // namespace rlj::tools
