// token_sampler.h: the one next-token sampler of rlj (actor, teacher, eval, generate): greedy, or temperature
// with top-k and top-p, each row drawing from its own seeded stream, so a row's tokens depend on its seed, its
// parameters and its logits only, never on what else shares its batch.
#pragma once

#include <cstdint>
#include <random>
#include <span>

#include "absl/status/status.h"

namespace at {
class Tensor;
}  // namespace at

namespace rlj {

struct SamplingParams {
  double temperature = 1.0;  // 0 = greedy
  int top_k = 0;             // keep the k most likely ids; 0 = off
  double top_p = 1.0;        // keep the most likely ids until their mass reaches top_p; 1 = off
};

// temperature >= 0 and finite, top_k >= 0, 0 < top_p <= 1; the error names the parameter and the value.
absl::Status ValidateSamplingParams(const SamplingParams& params);

// SplitMix64 of `value`: consecutive values give seeds far apart, so that callers whose rows use seed + row
// (SampleCompletions, the teacher's choices) do not share streams between consecutive calls.
uint64_t SpreadSeed(uint64_t value);

// One row's parameters and its random stream. Streams made with the same seed draw the same numbers.
class SamplingStream {
 public:
  SamplingStream(const SamplingParams& params, uint64_t seed);
  const SamplingParams& params() const { return params_; }
  double NextUniform();  // in [0, 1), 53 random bits

 private:
  SamplingParams params_;
  std::mt19937_64 engine_;
};

// The next id of each row: logits [n, V] float32 on any device; rows[i] samples row i (every stream draws once per
// call unless its row is greedy; the uniforms come from the host, the rest runs on the logits' device, so a GPU
// and the CPU draw the same ids from the same logits up to rounding); ids at or above usable_vocab (model ids the
// tokenizer cannot decode) are never chosen. Returns int64 [n] on the logits' device.
at::Tensor ChooseTokens(const at::Tensor& logits, int64_t usable_vocab, std::span<SamplingStream* const> rows);

}  // namespace rlj
