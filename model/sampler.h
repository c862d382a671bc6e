// sampler.h: completions for a batch of prompts, as the actor, eval and generate want them: the token sampler,
// the stop matcher and the decode loop of model/ put together, with each sampled token's log-prob.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "model/stop_matcher.h"
#include "model/token_sampler.h"

namespace rlj {

class Transformer;
class Tokenizer;

struct SamplingOptions : SamplingParams {
  int max_new_tokens = 32;
  std::vector<int32_t> stop_token_ids;    // besides the tokenizer's stop_ids() (<eos>, <|eot_id|>, ...)
  std::vector<std::string> stop_strings;  // stop once the decoded completion contains one
  uint64_t seed = 0;  // prompt p samples with seed + p: same seed, weights and prompts → same completions
};

struct SampledCompletion {
  std::vector<int32_t> tokens;  // sampled ids, including the stop token / the token completing a stop string
  std::vector<float> logprobs;  // log-prob of each sampled id under softmax(logits / temperature); T=0 → T=1
  std::string text;             // decoded completion with the stop token / stop string removed
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
