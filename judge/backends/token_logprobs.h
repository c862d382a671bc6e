// token_logprobs.h: the openai judge's distill mode as free functions: the /v1/completions request that asks
// the teacher for the log-probability of every token a student sampled (token-id prompts, echo), reading the
// per-token values back out of the response, and the verdict they make. Testable without a server.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "rlj/v1/judge.pb.h"

namespace rlj {

// One request for several samples: prompt = [prompt_token_ids + completion_token_ids, ...], echo, logprobs,
// max_tokens 1 (vLLM and `rlj teacher` score the prompt's tokens; the one generated token is ignored).
std::string DistillRequestBody(const std::string& model, const std::vector<const v1::Sample*>& samples);

// The teacher's log-probability of each completion token of each sample, in request order, from a response to
// DistillRequestBody: choice i (by its "index") holds echoed token_logprobs for prompt + completion (+ the
// generated token); a null value becomes NaN (that token is masked). A response with fewer values than the
// tokens sent, a missing choice, or a value above 0 is an error naming what is wrong.
absl::StatusOr<std::vector<std::vector<float>>> ReadEchoedTokenLogprobs(const std::string& body,
                                                                        const std::vector<const v1::Sample*>& samples,
                                                                        int64_t* tokens_in, int64_t* tokens_out);

// A distill verdict: token_logprobs, reward = the mean teacher log-probability of the completion's valid tokens,
// components teacher_logprob_sum, teacher_logprob_mean and (with the sample's behaviour log-probs)
// reverse_kl = mean of behaviour − teacher. No valid token at all is a parse error, never a reward.
void FillDistillVerdict(const v1::Sample& sample, std::vector<float> logprobs, v1::Verdict* verdict);

// A sample distill mode cannot score (no token ids, behaviour log-probs of another length): why, or "".
std::string DistillSampleProblem(const v1::Sample& sample);

}  // namespace rlj
