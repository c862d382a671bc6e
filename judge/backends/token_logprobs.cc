// token_logprobs.cc: distill mode's request body, the reading of echoed per-token log-probs, and its verdicts.
#include "judge/backends/token_logprobs.h"

#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"
#include "judge/judge_backend.h"
#include "nlohmann/json.hpp"

namespace rlj {
namespace {

using nlohmann::json;

// Servers round: a log-probability a hair above 0 is 0; anything larger is not a log-probability.
constexpr double kLogprobRoundingSlack = 1e-6;

void ReadUsage(const json& body, int64_t* tokens_in, int64_t* tokens_out) {
  auto usage = body.find("usage");
  if (usage == body.end() || !usage->is_object()) return;
  if (auto n = usage->find("prompt_tokens"); n != usage->end() && n->is_number_integer()) *tokens_in = *n;
  if (auto n = usage->find("completion_tokens"); n != usage->end() && n->is_number_integer()) *tokens_out = *n;
}

// choices[i] by their "index" (servers may answer out of order); null where one is missing.
std::vector<const json*> ChoicesByIndex(const json& body, size_t count) {
  std::vector<const json*> choices(count, nullptr);
  auto array = body.find("choices");
  if (array == body.end() || !array->is_array()) return choices;
  for (size_t position = 0; position < array->size(); ++position) {
    const json& choice = (*array)[position];
    if (!choice.is_object()) continue;
    size_t index = position;
    if (auto i = choice.find("index"); i != choice.end() && i->is_number_unsigned()) index = i->get<size_t>();
    if (index < count && choices[index] == nullptr) choices[index] = &choice;
  }
  return choices;
}

// The completion's values from one choice's echoed token_logprobs.
absl::StatusOr<std::vector<float>> CompletionLogprobs(const json* choice, const v1::Sample& sample, size_t index) {
  const json* values = nullptr;
  if (choice != nullptr) {
    if (auto l = choice->find("logprobs"); l != choice->end() && l->is_object()) {
      if (auto t = l->find("token_logprobs"); t != l->end() && t->is_array()) values = &*t;
    }
  }
  if (values == nullptr) {
    return absl::InternalError(absl::StrCat("choice ", index,
                                            " has no logprobs.token_logprobs (distill mode needs /completions with "
                                            "a token-id prompt, echo and logprobs)"));
  }
  const size_t prompt = sample.prompt_token_ids_size();
  const size_t completion = sample.completion_token_ids_size();
  if (values->size() < prompt + completion) {
    return absl::InternalError(absl::StrCat("choice ", index, " has ", values->size(), " log-probs for the ",
                                            prompt + completion, " tokens sent"));
  }
  std::vector<float> logprobs(completion, std::numeric_limits<float>::quiet_NaN());
  for (size_t k = 0; k < completion; ++k) {
    const json& value = (*values)[prompt + k];
    if (!value.is_number()) continue;  // no value for this token: masked
    const double logprob = value.get<double>();
    if (std::isnan(logprob) || logprob > kLogprobRoundingSlack) {
      return absl::InternalError(
          absl::StrCat("choice ", index, " token ", prompt + k, ": ", value.dump(), " is not a log-probability"));
    }
    logprobs[k] = static_cast<float>(std::min(logprob, 0.0));
  }
  return logprobs;
}

}  // namespace

std::string DistillRequestBody(const std::string& model, const std::vector<const v1::Sample*>& samples) {
  json prompts = json::array();
  for (const v1::Sample* sample : samples) {
    json ids = json::array();
    for (int32_t id : sample->prompt_token_ids()) ids.push_back(id);
    for (int32_t id : sample->completion_token_ids()) ids.push_back(id);
    prompts.push_back(std::move(ids));
  }
  const json body = {{"model", model},  {"prompt", std::move(prompts)},
                     {"echo", true},    {"logprobs", 1},
                     {"max_tokens", 1}, {"temperature", 0}};
  return body.dump(-1, ' ', false, json::error_handler_t::replace);
}

absl::StatusOr<std::vector<std::vector<float>>> ReadEchoedTokenLogprobs(const std::string& text,
                                                                        const std::vector<const v1::Sample*>& samples,
                                                                        int64_t* tokens_in, int64_t* tokens_out) {
  const json body = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!body.is_object()) return absl::InternalError("the teacher's response is not a JSON object");
  ReadUsage(body, tokens_in, tokens_out);
  const std::vector<const json*> choices = ChoicesByIndex(body, samples.size());
  std::vector<std::vector<float>> out;
  out.reserve(samples.size());
  for (size_t i = 0; i < samples.size(); ++i) {
    absl::StatusOr<std::vector<float>> logprobs = CompletionLogprobs(choices[i], *samples[i], i);
    if (!logprobs.ok()) return logprobs.status();
    out.push_back(std::move(logprobs).value());
  }
  return out;
}

void FillDistillVerdict(const v1::Sample& sample, std::vector<float> logprobs, v1::Verdict* verdict) {
  const bool with_behaviour = sample.behaviour_logprobs_size() == static_cast<int>(logprobs.size());
  double sum = 0, reverse_kl = 0;
  int64_t valid = 0;
  for (size_t k = 0; k < logprobs.size(); ++k) {
    if (std::isnan(logprobs[k])) continue;
    sum += logprobs[k];
    if (with_behaviour) reverse_kl += sample.behaviour_logprobs(static_cast<int>(k)) - logprobs[k];
    ++valid;
  }
  if (valid == 0) {
    SetVerdictError(verdict, absl::StatusCode::kInternal, error_kind::kParse,
                    "the teacher gave no log-probability for any completion token");
    return;
  }
  verdict->mutable_token_logprobs()->Assign(logprobs.begin(), logprobs.end());
  verdict->set_reward(sum / static_cast<double>(valid));
  auto& components = *verdict->mutable_components();
  components["teacher_logprob_sum"] = sum;
  components["teacher_logprob_mean"] = sum / static_cast<double>(valid);
  if (with_behaviour) components["reverse_kl"] = reverse_kl / static_cast<double>(valid);
  verdict->set_rationale(
      absl::StrCat("teacher log-prob ", absl::SixDigits(sum), " over ", valid, " of ", logprobs.size(), " tokens"));
}

std::string DistillSampleProblem(const v1::Sample& sample) {
  if (sample.prompt_token_ids().empty() || sample.completion_token_ids().empty()) {
    return "the sample carries no token ids (prompt_token_ids, completion_token_ids): distill mode scores the "
           "student's tokens";
  }
  if (!sample.behaviour_logprobs().empty() && sample.behaviour_logprobs_size() != sample.completion_token_ids_size()) {
    return absl::StrCat("the sample has ", sample.behaviour_logprobs_size(), " behaviour log-probs for ",
                        sample.completion_token_ids_size(), " completion tokens");
  }
  return "";
}

}  // namespace rlj
