// sampler.cc: SampleCompletions: the request checked, then one DecodeBatch whose rows sample with their own
// stream (seed + prompt index), record each token's log-prob and stop where the stop matcher says.
#include "model/sampler.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "common/tokenizer/tokenizer.h"
#include "model/decode_loop.h"
#include "model/logprobs.h"
#include "model/tensor/torch_util.h"
#include "model/transformer.h"

namespace rlj {
namespace {

absl::Status ValidateRequest(const TransformerConfig& config, const Tokenizer& tokenizer,
                             const std::vector<std::vector<int32_t>>& prompts, const SamplingOptions& options) {
  RLJ_RETURN_IF_ERROR(ValidateSamplingParams(options));
  if (options.max_new_tokens < 1) {
    return absl::InvalidArgumentError(absl::StrCat("max_new_tokens must be >= 1, got ", options.max_new_tokens));
  }
  for (const std::string& stop : options.stop_strings) {
    if (stop.empty()) return absl::InvalidArgumentError("stop strings must not be empty");
  }
  for (const int32_t id : options.stop_token_ids) {
    if (id < 0 || id >= config.vocab_size) {
      return absl::InvalidArgumentError(
          absl::StrCat("stop token id ", id, " is outside the vocabulary (0..", config.vocab_size - 1, ")"));
    }
  }
  for (const int32_t id : tokenizer.stop_ids()) {
    if (id < 0 || id >= config.vocab_size) {
      return absl::InvalidArgumentError(absl::StrCat(
          "the tokenizer's stop id ", id, " is outside the model's vocabulary (0..", config.vocab_size - 1, ")"));
    }
  }
  if (tokenizer.vocab_size() > config.vocab_size) {
    return absl::InvalidArgumentError(absl::StrCat("the tokenizer's vocabulary (", tokenizer.vocab_size(),
                                                   ") is larger than the model's (", config.vocab_size, ")"));
  }
  size_t longest = 0;
  for (size_t p = 0; p < prompts.size(); ++p) {
    if (prompts[p].empty()) return absl::InvalidArgumentError(absl::StrCat("prompt ", p, " is empty"));
    for (size_t i = 0; i < prompts[p].size(); ++i) {
      const int32_t id = prompts[p][i];
      if (id < 0 || id >= config.vocab_size) {
        return absl::InvalidArgumentError(absl::StrCat("prompt ", p, ": token id ", id, " at position ", i,
                                                       " is outside the vocabulary (0..", config.vocab_size - 1, ")"));
      }
    }
    longest = std::max(longest, prompts[p].size());
  }
  if (longest + static_cast<size_t>(options.max_new_tokens) > static_cast<size_t>(config.max_seq_len)) {
    return absl::InvalidArgumentError(absl::StrCat("the longest prompt (", longest, " tokens) + max_new_tokens (",
                                                   options.max_new_tokens, ") exceeds the model's max_seq_len (",
                                                   config.max_seq_len, ")"));
  }
  return absl::OkStatus();
}

// The rows of one SampleCompletions call: each prompt's stream, completion and end.
class CompletionRows : public DecodeRows {
 public:
  CompletionRows(const Tokenizer& tokenizer, const SamplingOptions& options, int64_t vocab, size_t batch)
      : options_(options),
        usable_vocab_(tokenizer.vocab_size()),
        matcher_(tokenizer, vocab, options.stop_token_ids, options.stop_strings),
        completions_(batch),
        finished_(batch, false) {
    streams_.reserve(batch);
    for (size_t p = 0; p < batch; ++p) {
      streams_.emplace_back(options, options.seed + p);
      completions_[p].tokens.reserve(static_cast<size_t>(options.max_new_tokens));
      completions_[p].logprobs.reserve(static_cast<size_t>(options.max_new_tokens));
    }
  }

  bool finished(int64_t row) const override { return finished_[static_cast<size_t>(row)]; }

  absl::StatusOr<at::Tensor> Step(const at::Tensor& logits, std::span<const int64_t> rows) override {
    std::vector<SamplingStream*> streams;
    for (const int64_t row : rows) streams.push_back(&streams_[static_cast<size_t>(row)]);
    const at::Tensor ids = ChooseTokens(logits, usable_vocab_, streams);
    const double temperature = options_.temperature > 0 ? options_.temperature : 1.0;
    const at::Tensor logprobs = TokenLogProbs(logits.unsqueeze(1), ids.unsqueeze(1), temperature).squeeze(1);
    // The ids (exact in double) and their log-probs reach the host in one copy, for the stop checks.
    const at::Tensor host = at::stack({ids.to(at::kDouble), logprobs.to(at::kDouble)}).to(at::kCPU);
    const auto id_access = host.accessor<double, 2>()[0];
    const auto logprob_access = host.accessor<double, 2>()[1];
    for (size_t i = 0; i < rows.size(); ++i) {
      const auto p = static_cast<size_t>(rows[i]);
      SampledCompletion& completion = completions_[p];
      completion.tokens.push_back(static_cast<int32_t>(id_access[static_cast<int64_t>(i)]));
      completion.logprobs.push_back(static_cast<float>(logprob_access[static_cast<int64_t>(i)]));
      RLJ_ASSIGN_OR_RETURN(std::optional<CompletionEnd> end, matcher_.Check(completion.tokens));
      if (end.has_value()) Finish(p, *std::move(end));
    }
    return ids;
  }

  // The completions, those still going cut by the length limit.
  absl::StatusOr<std::vector<SampledCompletion>> Take() {
    for (size_t p = 0; p < completions_.size(); ++p) {
      if (finished_[p]) continue;
      RLJ_ASSIGN_OR_RETURN(CompletionEnd end, matcher_.AtLength(completions_[p].tokens));
      Finish(p, std::move(end));
    }
    return std::move(completions_);
  }

 private:
  void Finish(size_t p, CompletionEnd end) {
    completions_[p].finish = end.finish;
    completions_[p].text = std::move(end.text);
    finished_[p] = true;
  }

  const SamplingOptions& options_;
  const int64_t usable_vocab_;
  const StopMatcher matcher_;
  std::vector<SamplingStream> streams_;
  std::vector<SampledCompletion> completions_;
  std::vector<bool> finished_;
};

absl::StatusOr<std::vector<SampledCompletion>> Sample(Transformer& model, const Tokenizer& tokenizer,
                                                      const std::vector<std::vector<int32_t>>& prompts,
                                                      const SamplingOptions& options) {
  c10::InferenceMode inference_mode;
  const TransformerConfig& config = model->config();
  const int32_t pad_id = tokenizer.pad_id() >= 0 && tokenizer.pad_id() < config.vocab_size ? tokenizer.pad_id() : 0;
  std::vector<std::span<const int32_t>> spans(prompts.begin(), prompts.end());
  CompletionRows rows(tokenizer, options, config.vocab_size, prompts.size());
  RLJ_RETURN_IF_ERROR(DecodeBatch(model, spans, pad_id, options.max_new_tokens, rows).status());
  return rows.Take();
}

}  // namespace
absl::StatusOr<std::vector<SampledCompletion>> SampleCompletions(Transformer& model, const Tokenizer& tokenizer,
                                                                 const std::vector<std::vector<int32_t>>& prompts,
                                                                 const SamplingOptions& options) {
  if (model.is_empty()) return absl::InvalidArgumentError("SampleCompletions: no model");
  RLJ_RETURN_IF_ERROR(ValidateRequest(model->config(), tokenizer, prompts, options));
  if (prompts.empty()) return std::vector<SampledCompletion>();
  return TorchCall("SampleCompletions", [&]() -> absl::StatusOr<std::vector<SampledCompletion>> {
    return Sample(model, tokenizer, prompts, options);
  });
}

}  // namespace rlj
