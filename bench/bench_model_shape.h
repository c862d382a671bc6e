// bench_model_shape.h: what `rlj bench generate` and `rlj bench train` share: the random Llama-style model
// shape they take as flags (SwiGLU, tied embeddings; grouped key/value heads and Qwen2's q/k/v biases as asked),
// the device and dtype they run in, the weights' FLOP count, and the GEMM rate the achieved FLOP/s are compared
// with (float32 on the CPU, the run's dtype on a GPU).
#pragma once

#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include <chrono>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "absl/status/statusor.h"
#include "model/model_config.h"
#include "tools/command.h"

namespace rlj::tools {

struct BenchModelShape {
  int layers = 4, d_model = 256, heads = 8, kv_heads = 0, ffn = 1024, vocab = 256;
  std::string architecture = "llama";  // llama (no biases) | qwen2 (q/k/v biases)
  double rope_theta = 10000.0;
  std::string device = "cpu";  // auto | cpu | cuda | cuda:N
  bool bf16 = true;            // bf16 on CUDA (weights for generate, autocast for train)

  int resolved_kv_heads() const { return kv_heads > 0 ? kv_heads : heads; }

  // Multiply-accumulates per token of the linear layers (q, k, v, o, SwiGLU) and the tied output projection.
  double LinearWeights() const {
    const double d = d_model, f = ffn, v = vocab, kv = static_cast<double>(d_model) / heads * resolved_kv_heads();
    return layers * (2 * d * d + 2 * d * kv + 3 * d * f) + v * d;
  }

  // The model this shape describes, for max_seq_len positions; errors name the flag.
  absl::StatusOr<TransformerConfig> Config(int max_seq_len) const;
};

// --layers --d-model --heads --kv-heads --ffn --vocab --architecture --rope-theta --device --bf16.
void AddModelShapeOptions(CLI::App* app, BenchModelShape* shape);

// The shape, device and dtype into the benchmark's JSON line.
void WriteModelShape(const BenchModelShape& shape, const c10::Device& device, c10::ScalarType dtype,
                     nlohmann::json* out);

// The GEMM rate (FLOP/s) for [m, k] x [k, n] in `dtype` on `device` with the current thread count, best of 5.
double GemmRate(int64_t m, int64_t k, int64_t n, const c10::Device& device = c10::Device(c10::kCPU),
                c10::ScalarType dtype = c10::kFloat);

// Waits for the device's queued work (CUDA); nothing on the CPU. Timings end with it.
void SyncDevice(const c10::Device& device);

double SecondsSince(std::chrono::steady_clock::time_point start);

}  // namespace rlj::tools
