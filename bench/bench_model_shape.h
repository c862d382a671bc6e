// bench_model_shape.h: what `rlj bench generate` and `rlj bench train` share: the random Llama-style model
// shape they take as flags (kv heads = heads, SwiGLU, tied embeddings, no biases), its weights' FLOP count,
// and the machine's float32 GEMM rate the achieved FLOP/s are compared with.
#pragma once

#include <chrono>
#include <cstdint>
#include <nlohmann/json.hpp>

#include "tools/command.h"

namespace rlj::tools {

struct BenchModelShape {
  int layers = 4, d_model = 256, heads = 8, ffn = 1024, vocab = 256;

  // Multiply-accumulates per token of the linear layers (q, k, v, o, SwiGLU) and the tied output projection.
  double LinearWeights() const {
    const double d = d_model, f = ffn, v = vocab;
    return layers * (4 * d * d + 3 * d * f) + v * d;
  }
};

// --layers --d-model --heads --ffn --vocab.
void AddModelShapeOptions(CLI::App* app, BenchModelShape* shape);

// The shape into the benchmark's JSON line.
void WriteModelShape(const BenchModelShape& shape, nlohmann::json* out);

// The machine's float32 GEMM rate (FLOP/s) for [m, k] x [k, n] with the current thread count, best of 5.
double GemmRate(int64_t m, int64_t k, int64_t n);

double SecondsSince(std::chrono::steady_clock::time_point start);

}  // namespace rlj::tools
