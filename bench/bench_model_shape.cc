// bench_model_shape.cc: shape flags, the shape in the JSON line, and the GEMM rate measurement.
#include "bench/bench_model_shape.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <chrono>

namespace rlj::tools {

void AddModelShapeOptions(CLI::App* app, BenchModelShape* shape) {
  app->add_option("--layers", shape->layers, "Decoder layers")->capture_default_str();
  app->add_option("--d-model", shape->d_model, "Hidden size")->capture_default_str();
  app->add_option("--heads", shape->heads, "Attention heads (= key/value heads)")->capture_default_str();
  app->add_option("--ffn", shape->ffn, "SwiGLU hidden size")->capture_default_str();
  app->add_option("--vocab", shape->vocab, "Vocabulary size")->capture_default_str();
}

void WriteModelShape(const BenchModelShape& shape, nlohmann::json* out) {
  (*out)["layers"] = shape.layers;
  (*out)["d_model"] = shape.d_model;
  (*out)["heads"] = shape.heads;
  (*out)["ffn"] = shape.ffn;
  (*out)["vocab"] = shape.vocab;
}

double SecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

double GemmRate(int64_t m, int64_t k, int64_t n) {
  const at::Tensor a = at::randn({m, k}), b = at::randn({k, n});
  at::Tensor c = at::mm(a, b);
  const int calls = static_cast<int>(std::max<int64_t>(1, (int64_t{1} << 30) / (m * k * n)));
  double best = 1e9;
  for (int i = 0; i < 5; ++i) {
    const auto start = std::chrono::steady_clock::now();
    for (int j = 0; j < calls; ++j) at::mm_out(c, a, b);
    best = std::min(best, SecondsSince(start) / calls);
  }
  return 2.0 * static_cast<double>(m * k * n) / best;
}

}  // namespace rlj::tools
