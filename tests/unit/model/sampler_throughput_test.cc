// sampler_throughput_test.cc: a manual measurement (disabled by default, prints only, asserts nothing
// about speed): SampleCompletions tokens/s for L=4, D=256, H=8, F=1024, V=256, prompt 16, 64 new tokens,
// batch 1 and 32, two torch threads (RLJ_BENCH_THREADS overrides), against the machine's measured float32 GEMM rate.
// Run with
//   rlj_model_tests --gtest_also_run_disabled_tests --gtest_filter='SamplerThroughput.*'
#include <ATen/Parallel.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>

#include "common/tokenizer/byte_tokenizer.h"
#include "model/sampler.h"
#include "model/transformer.h"
#include "test_util.h"

namespace rlj {
namespace {

// 256 byte tokens, <eos> = byte 0 (a 256-entry vocabulary as in the measurement's spec).
class Bytes256Tokenizer final : public Tokenizer {
 public:
  std::vector<int32_t> Encode(std::string_view text) const override { return bytes_.Encode(text); }
  absl::StatusOr<std::string> Decode(std::span<const int32_t> ids) const override { return bytes_.Decode(ids); }
  int32_t vocab_size() const override { return 256; }
  int32_t bos_id() const override { return 1; }
  int32_t eos_id() const override { return 0; }
  int32_t pad_id() const override { return 2; }

 private:
  ByteTokenizer bytes_;
};

double Seconds(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count();
}

TEST(SamplerThroughput, DISABLED_TokensPerSecond) {
  const char* threads = std::getenv("RLJ_BENCH_THREADS");  // default 2
  at::set_num_threads(threads != nullptr ? std::atoi(threads) : 2);
  // The machine's float32 GEMM rate now (same threads, best of 5, into a preallocated output: a fresh 4 MiB
  // result would also time its page faults): 1024² × 1024², and the decode-step shape [32, 256] × [256, 1024].
  auto gemm_rate = [](int64_t m, int64_t k, int64_t n) {
    const torch::Tensor a = torch::randn({m, k}), b = torch::randn({k, n});
    torch::Tensor c = torch::mm(a, b);
    const int calls = static_cast<int>(std::max<int64_t>(1, (1LL << 30) / (m * k * n)));
    double best = 1e9;
    for (int i = 0; i < 5; ++i) {
      const auto start = std::chrono::steady_clock::now();
      for (int j = 0; j < calls; ++j) torch::mm_out(c, a, b);
      best = std::min(best, Seconds(start) / calls);
    }
    return 2.0 * m * k * n / best;
  };
  const double gemm_flops = gemm_rate(1024, 1024, 1024);
  std::printf("GEMM %d threads: 1024^3 %.1f GFLOP/s; 32x256x1024 %.1f GFLOP/s\n", at::get_num_threads(),
              gemm_flops / 1e9, gemm_rate(32, 256, 1024) / 1e9);

  TransformerConfig config;
  config.vocab_size = 256;
  config.d_model = 256;
  config.n_layers = 4;
  config.n_heads = 8;
  config.n_kv_heads = 8;
  config.ffn_hidden = 1024;
  config.max_seq_len = 128;
  torch::manual_seed(1);
  Transformer model(config);
  // FLOPs per token of the linear layers (embedding lookup excluded, tied lm_head included).
  const double linear_params = config.num_parameters() - config.vocab_size * config.d_model -
                               config.d_model * (2 * config.n_layers + 1) + config.vocab_size * config.d_model;
  Bytes256Tokenizer tokenizer;
  SamplingOptions options;
  options.max_new_tokens = 64;
  options.temperature = 1.0;
  const int prompt_length = 16;
  for (const int batch : {1, 32}) {
    std::vector<std::vector<int32_t>> prompts(batch);
    for (int b = 0; b < batch; ++b) {
      for (int i = 0; i < prompt_length; ++i) prompts[b].push_back(3 + (b * 7 + i * 13) % 250);
    }
    double best = 1e9;
    int64_t generated = 0;
    double attention_flops = 0;
    for (int repeat = 0; repeat < 3; ++repeat) {
      options.seed = repeat;
      const auto start = std::chrono::steady_clock::now();
      RLJ_ASSERT_OK_AND_ASSIGN(const auto completions, SampleCompletions(model, tokenizer, prompts, options));
      const double seconds = Seconds(start);
      if (seconds < best) {
        best = seconds;
        generated = 0;
        attention_flops = 0;
        for (const auto& completion : completions) {
          generated += completion.tokens.size();
          // QK^T and PV: 4 · keys · d_model per layer per token (prefill: keys 1..16, decode: 17..).
          for (int s = 1; s <= prompt_length + static_cast<int>(completion.tokens.size()); ++s) {
            attention_flops += 4.0 * s * config.d_model * config.n_layers;
          }
        }
      }
    }
    const double processed = generated + static_cast<double>(batch) * prompt_length;
    const double flops = 2.0 * linear_params * processed + attention_flops;
    std::printf("batch %2d: %lld new tokens in %.3f s = %.0f new tokens/s; %.2f GFLOP/s = %.0f%% of GEMM\n", batch,
                static_cast<long long>(generated), best, generated / best, flops / best / 1e9,
                100.0 * flops / best / gemm_flops);
  }
}

}  // namespace
}  // namespace rlj
