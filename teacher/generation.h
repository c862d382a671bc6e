// generation.h: what the teacher's batch engine is asked for and what it answers, as plain structs: the
// HTTP layer turns OpenAI JSON into these at the edge and back (no JSON and no LibTorch here).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "model/stop_matcher.h"

namespace rlj::teacher {

// Up to this many alternatives per position (the OpenAI API's own limit for top_logprobs).
inline constexpr int kMaxTopLogprobs = 20;

struct GenerationParams {
  int max_tokens = 16;            // 0: only score the prompt (echo)
  double temperature = 1.0;       // 0 = greedy
  int top_k = 0;                  // keep the k most likely ids (vLLM's extension); 0 = off
  double top_p = 1.0;             // nucleus sampling; 1 = off
  std::optional<uint64_t> seed;   // same seed, prompt and weights → same completion (choice i uses seed + i)
  std::vector<std::string> stop;  // stop once the completion's text contains one (it is cut off)
  int n = 1;                      // choices per prompt
  int top_logprobs = 0;           // alternatives reported per generated token (0..kMaxTopLogprobs)
  bool logprobs = false;          // report the log-prob of every generated token
  bool prompt_logprobs = false;   // report the log-prob of every prompt token after the first (echo)
  int prompt_top_logprobs = 0;    // alternatives reported per prompt position
};

struct GenerationRequest {
  std::vector<int32_t> prompt;  // token ids, including <bos> when the tokenizer uses one
  GenerationParams params;
};

// One candidate token and its log-probability under the model's distribution (softmax of the logits,
// whatever the sampling temperature: the calibrated distribution a judge wants).
struct TokenLogprob {
  int32_t id = 0;
  float logprob = 0;
};

// A token at one position, its log-prob, and the most likely tokens there (best first).
struct PositionLogprobs {
  int32_t id = 0;
  float logprob = 0;
  std::vector<TokenLogprob> top;
};

struct GeneratedChoice {
  // The tokens of `text`: generated ids without the stop id (<eos>) and without tokens that begin at or
  // after a stop string's cut.
  std::vector<int32_t> tokens;
  std::vector<PositionLogprobs> logprobs;  // per token of `tokens` when params.logprobs, else empty
  std::string text;
  FinishReason finish = FinishReason::kLength;
  int generated_tokens = 0;  // every sampled token, the stop id and tokens past the cut included (usage)
};

struct GenerationResult {
  // prompt_logprobs[i] is prompt position i + 1 (the first token has no log-prob); empty unless asked for.
  std::vector<PositionLogprobs> prompt_logprobs;
  std::vector<GeneratedChoice> choices;  // params.n of them
};

}  // namespace rlj::teacher
