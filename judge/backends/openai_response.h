// openai_response.h: reading OpenAI-compatible response bodies into answers and verdicts: a chat completion
// (content, refusal, usage), label mode's first-token distribution and likelihood mode's echoed log-probs.
// Free functions of the body text alone, so bad or hostile bodies can be tested (and fuzzed) without a server.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>

#include "judge/chat_teacher.h"
#include "judge/judge_backend.h"

namespace rlj {

// A chat completion's answer: choices[0].message.content, or a refusal / content filter, or what is missing.
ChatAnswer ReadChatCompletion(const std::string& body);

// Label mode: the reward is the expectation of `labels` (label → reward) under the top_logprobs of the first
// non-blank answer token; fails (verdict error, false) when less than `label_min_mass` of the probability is
// on the labels or a log-probability is not a log-probability (finite, <= 0). Sets judgement->raw_response
// and the token counts found in usage.
bool ReadLabelDistribution(const std::string& body, const std::map<std::string, double>& labels, double label_min_mass,
                           Judgement* judgement, int64_t* tokens_in, int64_t* tokens_out);

// Likelihood mode: the completion is the text between code points/bytes [begin, end) of the scored text.
struct CompletionSpan {
  size_t begin_bytes = 0, end_bytes = 0;
  size_t begin_chars = 0, end_chars = 0;
};
// The reward is the mean log-probability of the echoed tokens that overlap the completion (offsets in
// characters, or in bytes when the server counts bytes).
bool ReadCompletionLikelihood(const std::string& body, const CompletionSpan& span, Judgement* judgement,
                              int64_t* tokens_in, int64_t* tokens_out);

}  // namespace rlj
