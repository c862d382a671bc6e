// sampler.cc: batched sampling: left-padded prefill into a KV cache, then one decode step per token with
// temperature / top-k / top-p, stop tokens and strings, finished rows dropped from the batch.
#include "model/sampler.h"

#include <ATen/CPUGeneratorImpl.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"
#include "model/kv_cache.h"
#include "model/logprobs.h"
#include "model/transformer.h"
#include "common/status.h"
#include "model/tensor/torch_util.h"
#include "common/tokenizer/tokenizer.h"

namespace rlj {
namespace {

absl::Status ValidateRequest(const TransformerConfig& config, const Tokenizer& tokenizer,
                             const std::vector<std::vector<int32_t>>& prompts, const SamplingOptions& options) {
  if (!(options.temperature >= 0) || !std::isfinite(options.temperature)) {
    return absl::InvalidArgumentError(absl::StrCat("temperature must be >= 0 (0 = greedy), got ", options.temperature));
  }
  if (options.top_k < 0) return absl::InvalidArgumentError(absl::StrCat("top_k must be >= 0, got ", options.top_k));
  if (!(options.top_p > 0 && options.top_p <= 1)) {
    return absl::InvalidArgumentError(absl::StrCat("top_p must be in (0, 1], got ", options.top_p));
  }
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
      return absl::InvalidArgumentError(absl::StrCat("the tokenizer's stop id ", id,
                                                     " is outside the model's vocabulary (0..", config.vocab_size - 1, ")"));
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

// One sampling decision per row: next ids [n] int64 and their log-probs [n] float32, on the CPU.
class TokenChooser {
 public:
  TokenChooser(const SamplingOptions& options, int64_t tokenizer_vocab)
      : options_(options),
        tokenizer_vocab_(tokenizer_vocab),
        generator_(at::make_generator<at::CPUGeneratorImpl>(options.seed)) {}

  // logits [n, V] float32 on the CPU.
  std::pair<at::Tensor, at::Tensor> Choose(const at::Tensor& logits) {
    const int64_t vocab = logits.size(1);
    const double temperature = options_.temperature > 0 ? options_.temperature : 1.0;
    at::Tensor scores = logits;
    const bool greedy = options_.temperature == 0;
    const bool filter = !greedy && ((options_.top_k > 0 && options_.top_k < vocab) || options_.top_p < 1);
    if (tokenizer_vocab_ < vocab || (!greedy && temperature != 1.0) || filter) scores = logits.clone();
    // Model ids the tokenizer cannot decode are never chosen.
    if (tokenizer_vocab_ < vocab) scores.narrow(1, tokenizer_vocab_, vocab - tokenizer_vocab_).fill_(-kInfinity);
    at::Tensor ids;
    if (greedy) {
      ids = scores.argmax(-1);
    } else {
      if (temperature != 1.0) scores.div_(temperature);
      if (options_.top_k > 0 && options_.top_k < vocab) {
        const at::Tensor kth = std::get<0>(scores.topk(options_.top_k, -1)).narrow(-1, options_.top_k - 1, 1);
        scores.masked_fill_(scores.lt(kth), -kInfinity);
      }
      if (options_.top_p < 1) {
        // Keep the most likely ids until their mass reaches top_p (the first id always stays).
        const auto [sorted, order] = scores.sort(-1, /*descending=*/true);
        const at::Tensor probs = sorted.softmax(-1);
        const at::Tensor mass_before = probs.cumsum(-1) - probs;
        const at::Tensor drop_sorted = mass_before.ge(options_.top_p);
        scores.masked_fill_(drop_sorted.scatter(-1, order, drop_sorted), -kInfinity);
      }
      ids = at::multinomial(scores.softmax(-1), 1, /*replacement=*/false, generator_).squeeze(1);
    }
    const at::Tensor logprobs = TokenLogProbs(logits.unsqueeze(1), ids.unsqueeze(1), temperature).squeeze(1);
    return {ids, logprobs};
  }

 private:
  static constexpr double kInfinity = std::numeric_limits<double>::infinity();
  const SamplingOptions& options_;
  const int64_t tokenizer_vocab_;
  at::Generator generator_;
};

// Per-prompt bookkeeping: what was sampled, and whether (and why) it stopped.
class CompletionBuilder {
 public:
  CompletionBuilder(const Tokenizer& tokenizer, const SamplingOptions& options, int32_t vocab)
      : tokenizer_(tokenizer), options_(options), is_stop_token_(vocab, false) {
    for (const int32_t id : tokenizer.stop_ids()) is_stop_token_[id] = true;  // <eos>, <|eot_id|>, ...
    for (const int32_t id : options.stop_token_ids) is_stop_token_[id] = true;
  }

  // Records the token; returns true when the completion is finished (not counting the length limit).
  absl::StatusOr<bool> Add(SampledCompletion& completion, int32_t id, float logprob) const {
    completion.tokens.push_back(id);
    completion.logprobs.push_back(logprob);
    if (is_stop_token_[id]) {
      completion.finish = FinishReason::kStopToken;
      RLJ_ASSIGN_OR_RETURN(completion.text,
                           tokenizer_.Decode(std::span<const int32_t>(completion.tokens).first(completion.tokens.size() - 1)));
      return true;
    }
    if (options_.stop_strings.empty()) return false;
    RLJ_ASSIGN_OR_RETURN(std::string text, tokenizer_.Decode(completion.tokens));
    size_t cut = std::string::npos;
    for (const std::string& stop : options_.stop_strings) cut = std::min(cut, text.find(stop));
    if (cut == std::string::npos) return false;
    text.resize(cut);
    completion.text = std::move(text);
    completion.finish = FinishReason::kStopString;
    return true;
  }

  absl::Status FinishByLength(SampledCompletion& completion) const {
    completion.finish = FinishReason::kLength;
    RLJ_ASSIGN_OR_RETURN(completion.text, tokenizer_.Decode(completion.tokens));
    return absl::OkStatus();
  }

 private:
  const Tokenizer& tokenizer_;
  const SamplingOptions& options_;
  std::vector<bool> is_stop_token_;
};

absl::StatusOr<std::vector<SampledCompletion>> Sample(Transformer& model, const Tokenizer& tokenizer,
                                                      const std::vector<std::vector<int32_t>>& prompts,
                                                      const SamplingOptions& options) {
  c10::InferenceMode inference_mode;
  const TransformerConfig& config = model->config();
  const at::Tensor some_parameter = model->parameters().front();
  const c10::Device device = some_parameter.device();
  const auto batch = static_cast<int64_t>(prompts.size());
  int64_t prompt_width = 0;
  for (const auto& prompt : prompts) prompt_width = std::max<int64_t>(prompt_width, prompt.size());
  const int32_t pad_id = tokenizer.pad_id() >= 0 && tokenizer.pad_id() < config.vocab_size ? tokenizer.pad_id() : 0;

  // Left-padded prompts; positions count the real tokens only.
  at::Tensor tokens = at::full({batch, prompt_width}, pad_id, at::kLong);
  at::Tensor positions = at::zeros({batch, prompt_width}, at::kLong);
  at::Tensor key_mask = at::zeros({batch, prompt_width}, at::kBool);
  at::Tensor next_positions = at::empty({batch, 1}, at::kLong);
  {
    auto token_access = tokens.accessor<int64_t, 2>();
    auto position_access = positions.accessor<int64_t, 2>();
    auto mask_access = key_mask.accessor<bool, 2>();
    auto next_position_access = next_positions.accessor<int64_t, 2>();
    for (int64_t b = 0; b < batch; ++b) {
      const auto length = static_cast<int64_t>(prompts[b].size());
      const int64_t offset = prompt_width - length;
      for (int64_t i = 0; i < length; ++i) {
        token_access[b][offset + i] = prompts[b][i];
        position_access[b][offset + i] = i;
        mask_access[b][offset + i] = true;
      }
      next_position_access[b][0] = length;
    }
  }
  next_positions = next_positions.to(device);

  KvCache cache(config, batch, prompt_width + options.max_new_tokens, device, some_parameter.scalar_type());
  RLJ_RETURN_IF_ERROR(cache.Append(key_mask));
  at::Tensor logits =
      model->forward_cached(tokens.to(device), positions.to(device), cache).select(1, prompt_width - 1);

  TokenChooser chooser(options, tokenizer.vocab_size());
  const CompletionBuilder builder(tokenizer, options, config.vocab_size);
  std::vector<SampledCompletion> completions(batch);
  for (auto& completion : completions) {
    completion.tokens.reserve(options.max_new_tokens);
    completion.logprobs.reserve(options.max_new_tokens);
  }
  std::vector<int64_t> prompt_of_row(batch);  // cache row → prompt index
  for (int64_t b = 0; b < batch; ++b) prompt_of_row[b] = b;
  std::vector<bool> finished(batch, false);
  int64_t unfinished = batch;

  for (int step = 0; step < options.max_new_tokens; ++step) {
    const at::Tensor cpu_logits = logits.to(c10::kCPU, at::kFloat);
    auto [ids, logprobs] = chooser.Choose(cpu_logits);
    const auto id_access = ids.accessor<int64_t, 1>();
    const auto logprob_access = logprobs.accessor<float, 1>();
    int64_t finished_rows = 0;  // rows of the batch that no longer need decoding
    for (int64_t row = 0; row < static_cast<int64_t>(prompt_of_row.size()); ++row) {
      const int64_t p = prompt_of_row[row];
      if (finished[p]) {
        ++finished_rows;
        continue;
      }
      RLJ_ASSIGN_OR_RETURN(const bool done, builder.Add(completions[p], static_cast<int32_t>(id_access[row]),
                                                         logprob_access[row]));
      if (done) {
        finished[p] = true;
        --unfinished;
        ++finished_rows;
      }
    }
    const int remaining_steps = options.max_new_tokens - 1 - step;
    if (unfinished == 0 || remaining_steps == 0) break;

    // Drop finished rows when the compute saved over the remaining steps outweighs moving the cache.
    const auto rows = static_cast<int64_t>(prompt_of_row.size());
    if (finished_rows > 0 && finished_rows * remaining_steps >= 2 * rows) {
      std::vector<int64_t> keep;
      std::vector<int64_t> kept_prompts;
      for (int64_t row = 0; row < rows; ++row) {
        if (!finished[prompt_of_row[row]]) {
          keep.push_back(row);
          kept_prompts.push_back(prompt_of_row[row]);
        }
      }
      RLJ_RETURN_IF_ERROR(cache.KeepRows(keep));
      const at::Tensor index = at::tensor(keep, at::kLong);
      ids = ids.index_select(0, index);
      next_positions = next_positions.index_select(0, index.to(device));
      prompt_of_row = std::move(kept_prompts);
    }

    RLJ_RETURN_IF_ERROR(cache.AppendValid(1));
    logits = model->forward_cached(ids.view({-1, 1}).to(device), next_positions, cache).select(1, 0);
    next_positions.add_(1);
  }
  for (int64_t p = 0; p < batch; ++p) {
    if (!finished[p]) RLJ_RETURN_IF_ERROR(builder.FinishByLength(completions[p]));
  }
  return completions;
}

}  // namespace

absl::StatusOr<std::vector<SampledCompletion>> SampleCompletions(Transformer& model, const Tokenizer& tokenizer,
                                                                 const std::vector<std::vector<int32_t>>& prompts,
                                                                 const SamplingOptions& options) {
  if (model.is_empty()) return absl::InvalidArgumentError("SampleCompletions: no model");
  RLJ_RETURN_IF_ERROR(ValidateRequest(model->config(), tokenizer, prompts, options));
  if (prompts.empty()) return std::vector<SampledCompletion>();
  return TorchCall("SampleCompletions",
                   [&]() -> absl::StatusOr<std::vector<SampledCompletion>> { return Sample(model, tokenizer, prompts, options); });
}

}  // namespace rlj
