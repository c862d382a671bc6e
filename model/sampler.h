// sampler.h: batched generation over a preallocated KV cache: left-padded prefill, then one decode step
// per token; temperature / top-k / top-p, stop tokens and stop strings, a seed, per-token log-probs.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace rlj {

class Transformer;
class Tokenizer;

struct SamplingOptions {
  double temperature = 1.0;  // 0 = greedy
  int top_k = 0;             // 0 = off
  double top_p = 1.0;        // 1 = off
  int max_new_tokens = 32;
  std::vector<int32_t> stop_token_ids;    // besides the tokenizer's stop_ids() (<eos>, <|eot_id|>, ...)
  std::vector<std::string> stop_strings;  // stop once the decoded completion contains one
  uint64_t seed = 0;                      // same seed, weights and prompts → same completions
};

enum class FinishReason { kStopToken, kStopString, kLength };

struct SampledCompletion {
  std::vector<int32_t> tokens;   // sampled ids, including the stop token / the token completing a stop string
  std::vector<float> logprobs;   // log-prob of each sampled id under softmax(logits / temperature); T=0 → T=1
  std::string text;              // decoded completion with the stop token / stop string removed
  FinishReason finish = FinishReason::kLength;
  bool truncated() const { return finish == FinishReason::kLength; }
};

// One completion per prompt, all prompts in one batch. Prompts are token ids (e.g. Tokenizer::EncodePrompt);
// prompt length + max_new_tokens must fit the model's max_seq_len. Runs under InferenceMode on the model's
// device. Errors (empty prompt, ids outside the vocabulary, too long) are InvalidArgument.
absl::StatusOr<std::vector<SampledCompletion>> SampleCompletions(Transformer& model, const Tokenizer& tokenizer,
                                                                 const std::vector<std::vector<int32_t>>& prompts,
                                                                 const SamplingOptions& options);

}  // namespace rlj
