// batch_engine.cc: the queue, the batching thread, and one batch's prefill + decode over a KV cache with
// per-row sampling parameters, log-probs and top alternatives.
#include "teacher/batch_engine.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <cmath>
#include <condition_variable>
#include <deque>
#include <limits>
#include <map>
#include <mutex>
#include <numeric>
#include <random>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/log.h"
#include "model/kv_cache.h"
#include "model/transformer.h"
#include "common/status.h"
#include "model/tensor/torch_util.h"
#include "common/tokenizer/tokenizer.h"

namespace rlj::teacher {
namespace {

using Clock = std::chrono::steady_clock;
using Result = absl::StatusOr<GenerationResult>;

struct Pending {
  GenerationRequest request;
  std::promise<Result> promise;
  Clock::time_point arrival;
};

// One sequence to compute: a request's choice, after merging identical deterministic choices.
struct Row {
  const GenerationRequest* request = nullptr;
  uint64_t seed = 0;
  std::mt19937_64 rng;
  GeneratedChoice out;
  std::vector<PositionLogprobs> prompt_logprobs;
  bool finished = false;
  std::vector<size_t> copies_to;  // (pending index << 16 | choice) of every choice this row answers
};

// Rows are merged when they would compute the same thing: same prompt and parameters, and either greedy or
// seeded with the same seed.
std::string MergeKey(const GenerationRequest& request, uint64_t seed) {
  const GenerationParams& p = request.params;
  return absl::StrCat(absl::StrJoin(request.prompt, ","), "|", p.max_tokens, "|", p.temperature, "|", p.top_p, "|",
                      p.temperature == 0 ? 0 : seed, "|", absl::StrJoin(p.stop, "\x1f"), "|", p.logprobs ? 1 : 0, "|",
                      p.top_logprobs, "|", p.prompt_logprobs ? 1 : 0, "|", p.prompt_top_logprobs);
}

// The `k` most likely ids among the first `usable` of a log-prob row, best first (ties: lower id first).
std::vector<TokenLogprob> TopLogprobs(const float* logprobs, int64_t usable, int k, std::vector<int32_t>& scratch) {
  std::vector<TokenLogprob> top;
  if (k <= 0) return top;
  scratch.resize(static_cast<size_t>(usable));
  std::iota(scratch.begin(), scratch.end(), 0);
  const auto count = static_cast<size_t>(std::min<int64_t>(k, usable));
  std::partial_sort(scratch.begin(), scratch.begin() + static_cast<std::ptrdiff_t>(count), scratch.end(),
                    [&](int32_t a, int32_t b) { return logprobs[a] > logprobs[b] || (logprobs[a] == logprobs[b] && a < b); });
  top.reserve(count);
  for (size_t i = 0; i < count; ++i) top.push_back({scratch[i], logprobs[scratch[i]]});
  return top;
}

}  // namespace

struct BatchEngine::State {
  Transformer model{nullptr};
  const Tokenizer* tokenizer = nullptr;
  BatchEngineOptions options;
  int max_context = 0;
  int vocab = 0;
  int64_t usable_vocab = 0;  // ids the tokenizer can decode; others are never sampled
  int32_t pad_id = 0;
  std::vector<bool> is_stop_id;  // the tokenizer's stop_ids(): <eos>, end-of-turn tokens
  c10::Device device{c10::kCPU};
  c10::ScalarType dtype = c10::kFloat;

  mutable std::mutex mutex;
  std::condition_variable changed;
  std::deque<std::unique_ptr<Pending>> queue;
  int64_t queued_rows = 0;
  bool stopping = false;
  BatchEngineStats stats;
  std::thread thread;

  absl::Status Validate(const GenerationRequest& request) const;
  void Loop();
  void RunBatch(std::vector<std::unique_ptr<Pending>>& batch);
  absl::Status Compute(std::vector<Row*>& rows, BatchEngineStats* counts);
  absl::Status ComputePart(const std::vector<Row*>& rows, BatchEngineStats* counts);
  absl::Status Choose(Row& row, const float* logits, const float* logprobs, std::vector<float>& weights,
                      std::vector<int32_t>& scratch, int32_t* chosen) const;
  absl::Status Record(Row& row, int32_t id, float logprob, std::vector<TokenLogprob> top) const;
};

absl::Status BatchEngine::State::Validate(const GenerationRequest& request) const {
  const GenerationParams& p = request.params;
  if (request.prompt.empty()) return absl::InvalidArgumentError("the prompt is empty");
  for (size_t i = 0; i < request.prompt.size(); ++i) {
    const int32_t id = request.prompt[i];
    if (id < 0 || id >= vocab) {
      return absl::InvalidArgumentError(
          absl::StrCat("token id ", id, " at prompt position ", i, " is outside the vocabulary (0..", vocab - 1, ")"));
    }
  }
  if (p.max_tokens < 0) return absl::InvalidArgumentError(absl::StrCat("max_tokens must be >= 0, got ", p.max_tokens));
  if (static_cast<int64_t>(request.prompt.size()) + p.max_tokens > max_context) {
    return absl::InvalidArgumentError(absl::StrCat(
        "this model's maximum context length is ", max_context, " tokens, but ", request.prompt.size() + p.max_tokens,
        " were requested (", request.prompt.size(), " in the prompt, ", p.max_tokens, " for the completion)"));
  }
  if (!(p.temperature >= 0 && p.temperature <= 2)) {
    return absl::InvalidArgumentError(absl::StrCat("temperature must be in [0, 2], got ", p.temperature));
  }
  if (!(p.top_p > 0 && p.top_p <= 1)) return absl::InvalidArgumentError(absl::StrCat("top_p must be in (0, 1], got ", p.top_p));
  if (p.n < 1) return absl::InvalidArgumentError(absl::StrCat("n must be >= 1, got ", p.n));
  if (p.n > options.max_batch) {
    return absl::InvalidArgumentError(absl::StrCat("n must be <= ", options.max_batch, " (the batch size), got ", p.n));
  }
  for (const int k : {p.top_logprobs, p.prompt_top_logprobs}) {
    if (k < 0 || k > kMaxTopLogprobs) {
      return absl::InvalidArgumentError(absl::StrCat("top_logprobs must be in [0, ", kMaxTopLogprobs, "], got ", k));
    }
  }
  for (const std::string& stop : p.stop) {
    if (stop.empty()) return absl::InvalidArgumentError("stop strings must not be empty");
  }
  return absl::OkStatus();
}

void BatchEngine::State::Loop() {
  while (true) {
    std::vector<std::unique_ptr<Pending>> batch;
    {
      std::unique_lock<std::mutex> lock(mutex);
      changed.wait(lock, [&] { return stopping || !queue.empty(); });
      if (stopping) return;
      // The batch closes batch_wait after its first request arrived, or as soon as it is full.
      const Clock::time_point close = queue.front()->arrival + options.batch_wait;
      changed.wait_until(lock, close, [&] { return stopping || queued_rows >= options.max_batch; });
      if (stopping) return;
      int64_t rows = 0;
      while (!queue.empty()) {
        const int n = queue.front()->request.params.n;
        if (!batch.empty() && rows + n > options.max_batch) break;
        rows += n;
        queued_rows -= n;
        batch.push_back(std::move(queue.front()));
        queue.pop_front();
      }
    }
    RunBatch(batch);
  }
}

void BatchEngine::State::RunBatch(std::vector<std::unique_ptr<Pending>>& batch) {
  // Expand requests into choices, merging identical deterministic ones.
  std::vector<std::unique_ptr<Row>> owned;
  std::map<std::string, Row*> merged;
  BatchEngineStats counts;
  counts.batches = 1;
  for (size_t b = 0; b < batch.size(); ++b) {
    const GenerationRequest& request = batch[b]->request;
    const GenerationParams& p = request.params;
    counts.rows += p.n;
    for (int choice = 0; choice < p.n; ++choice) {
      const bool seeded = p.seed.has_value();
      const uint64_t seed = seeded ? *p.seed + static_cast<uint64_t>(choice) : std::random_device()();
      const bool deterministic = p.temperature == 0 || seeded;
      Row* row = nullptr;
      std::string key;
      if (deterministic) {
        key = MergeKey(request, seed);
        if (auto it = merged.find(key); it != merged.end()) row = it->second;
      }
      if (row == nullptr) {
        owned.push_back(std::make_unique<Row>());
        row = owned.back().get();
        row->request = &request;
        row->seed = seed;
        row->rng.seed(seed);
        if (deterministic) merged.emplace(std::move(key), row);
      }
      row->copies_to.push_back(b << 16 | static_cast<size_t>(choice));
    }
  }
  std::vector<Row*> rows;
  for (auto& row : owned) rows.push_back(row.get());
  counts.computed_rows = static_cast<int64_t>(rows.size());

  absl::Status status = TorchCall("teacher batch", [&]() -> absl::Status {
    c10::InferenceMode inference_mode;
    return Compute(rows, &counts);
  });

  std::vector<GenerationResult> results(batch.size());
  if (status.ok()) {
    for (size_t b = 0; b < batch.size(); ++b) results[b].choices.resize(static_cast<size_t>(batch[b]->request.params.n));
    for (Row* row : rows) {
      for (const size_t target : row->copies_to) {
        GenerationResult& result = results[target >> 16];
        result.choices[target & 0xffff] = row->out;
        if (row->request->params.prompt_logprobs && result.prompt_logprobs.empty()) {
          result.prompt_logprobs = row->prompt_logprobs;
        }
      }
    }
  } else {
    RLJ_EVERY(10, log::Error("teacher: a batch of {} requests failed: {}", batch.size(), std::string(status.message())));
  }
  {
    std::lock_guard<std::mutex> lock(mutex);
    stats.requests += static_cast<int64_t>(batch.size());
    stats.batches += counts.batches;
    stats.rows += counts.rows;
    stats.computed_rows += counts.computed_rows;
    stats.forward_passes += counts.forward_passes;
    stats.prompt_tokens += counts.prompt_tokens;
    stats.generated_tokens += counts.generated_tokens;
  }
  for (size_t b = 0; b < batch.size(); ++b) {
    if (status.ok()) {
      batch[b]->promise.set_value(std::move(results[b]));
    } else {
      batch[b]->promise.set_value(status);
    }
  }
}

// Splits the rows into parts whose left-padded prompts plus the longest completion fit the context (the KV
// cache of a part holds width + max_tokens slots), longest prompts first, and computes each part.
absl::Status BatchEngine::State::Compute(std::vector<Row*>& rows, BatchEngineStats* counts) {
  std::stable_sort(rows.begin(), rows.end(),
                   [](const Row* a, const Row* b) { return a->request->prompt.size() > b->request->prompt.size(); });
  std::vector<Row*> part;
  int64_t width = 0;
  int64_t longest_completion = 0;
  for (Row* row : rows) {
    const auto length = static_cast<int64_t>(row->request->prompt.size());
    const int64_t completion = row->request->params.max_tokens;
    if (!part.empty() && width + std::max(longest_completion, completion) > max_context) {
      RLJ_RETURN_IF_ERROR(ComputePart(part, counts));
      part.clear();
    }
    if (part.empty()) {
      width = length;
      longest_completion = 0;
    }
    longest_completion = std::max(longest_completion, completion);
    part.push_back(row);
  }
  if (!part.empty()) RLJ_RETURN_IF_ERROR(ComputePart(part, counts));
  return absl::OkStatus();
}

absl::Status BatchEngine::State::Record(Row& row, int32_t id, float logprob, std::vector<TokenLogprob> top) const {
  const GenerationParams& p = row.request->params;
  GeneratedChoice& out = row.out;
  ++out.generated_tokens;
  if (is_stop_id[static_cast<size_t>(id)]) {
    out.finish = FinishReason::kEos;
    row.finished = true;
  } else {
    out.tokens.push_back(id);
    if (p.logprobs) out.logprobs.push_back(PositionLogprobs{id, logprob, std::move(top)});
    if (!p.stop.empty()) {
      RLJ_ASSIGN_OR_RETURN(std::string text, tokenizer->Decode(out.tokens));
      size_t cut = std::string::npos;
      for (const std::string& stop : p.stop) cut = std::min(cut, text.find(stop));
      if (cut != std::string::npos) {
        // Drop the tokens that begin at or after the cut; the text ends before the stop string.
        while (!out.tokens.empty()) {
          RLJ_ASSIGN_OR_RETURN(std::string before,
                               tokenizer->Decode(std::span<const int32_t>(out.tokens).first(out.tokens.size() - 1)));
          if (before.size() < cut) break;
          out.tokens.pop_back();
          if (!out.logprobs.empty()) out.logprobs.pop_back();
        }
        text.resize(cut);
        out.text = std::move(text);
        out.finish = FinishReason::kStopString;
        row.finished = true;
        return absl::OkStatus();
      }
    }
  }
  if (!row.finished && out.generated_tokens >= p.max_tokens) {
    out.finish = FinishReason::kLength;
    row.finished = true;
  }
  if (row.finished && out.finish != FinishReason::kStopString) {
    RLJ_ASSIGN_OR_RETURN(out.text, tokenizer->Decode(out.tokens));
  }
  return absl::OkStatus();
}

// Picks the next id of one row: greedy at temperature 0, else a draw from softmax(logits / T) restricted to
// the top_p nucleus, with the row's own generator.
absl::Status BatchEngine::State::Choose(Row& row, const float* logits, const float* logprobs,
                                        std::vector<float>& weights, std::vector<int32_t>& scratch,
                                        int32_t* chosen) const {
  const GenerationParams& p = row.request->params;
  const int64_t usable = usable_vocab;
  if (p.temperature == 0) {
    int32_t best = 0;
    for (int64_t i = 1; i < usable; ++i) {
      if (logprobs[i] > logprobs[best]) best = static_cast<int32_t>(i);
    }
    *chosen = best;
    return absl::OkStatus();
  }
  const float top = *std::max_element(logits, logits + usable);
  weights.resize(static_cast<size_t>(usable));
  const double inverse_temperature = 1.0 / p.temperature;
  for (int64_t i = 0; i < usable; ++i) {
    weights[static_cast<size_t>(i)] = static_cast<float>(std::exp((logits[i] - top) * inverse_temperature));
  }
  if (p.top_p < 1) {
    // Keep the most likely ids until their mass reaches top_p (the most likely one always stays).
    scratch.resize(static_cast<size_t>(usable));
    std::iota(scratch.begin(), scratch.end(), 0);
    std::sort(scratch.begin(), scratch.end(), [&](int32_t a, int32_t b) { return weights[a] > weights[b] || (weights[a] == weights[b] && a < b); });
    const double total = std::accumulate(weights.begin(), weights.end(), 0.0);
    double mass = 0;
    for (const int32_t id : scratch) {
      if (mass >= p.top_p * total) {
        weights[static_cast<size_t>(id)] = 0;
      } else {
        mass += weights[static_cast<size_t>(id)];
      }
    }
  }
  std::discrete_distribution<int32_t> draw(weights.begin(), weights.end());
  *chosen = draw(row.rng);
  return absl::OkStatus();
}

absl::Status BatchEngine::State::ComputePart(const std::vector<Row*>& rows, BatchEngineStats* counts) {
  const auto batch = static_cast<int64_t>(rows.size());
  int64_t width = 0;
  int64_t longest_completion = 0;
  for (const Row* row : rows) {
    width = std::max<int64_t>(width, static_cast<int64_t>(row->request->prompt.size()));
    longest_completion = std::max<int64_t>(longest_completion, row->request->params.max_tokens);
    counts->prompt_tokens += static_cast<int64_t>(row->request->prompt.size());
  }

  // Left-padded prompts; positions count each row's real tokens.
  at::Tensor tokens = at::full({batch, width}, pad_id, at::kLong);
  at::Tensor positions = at::zeros({batch, width}, at::kLong);
  at::Tensor key_mask = at::zeros({batch, width}, at::kBool);
  at::Tensor next_positions = at::empty({batch, 1}, at::kLong);
  {
    auto token_access = tokens.accessor<int64_t, 2>();
    auto position_access = positions.accessor<int64_t, 2>();
    auto mask_access = key_mask.accessor<bool, 2>();
    auto next_access = next_positions.accessor<int64_t, 2>();
    for (int64_t b = 0; b < batch; ++b) {
      const std::vector<int32_t>& prompt = rows[static_cast<size_t>(b)]->request->prompt;
      const auto length = static_cast<int64_t>(prompt.size());
      const int64_t offset = width - length;
      for (int64_t i = 0; i < length; ++i) {
        token_access[b][offset + i] = prompt[static_cast<size_t>(i)];
        position_access[b][offset + i] = i;
        mask_access[b][offset + i] = true;
      }
      next_access[b][0] = length;
    }
  }
  KvCache cache(model->config(), batch, width + longest_completion, device, dtype);
  RLJ_RETURN_IF_ERROR(cache.Append(key_mask));
  const at::Tensor prefill = model->forward_cached(tokens.to(device), positions.to(device), cache);  // [B, W, V]
  ++counts->forward_passes;

  std::vector<int32_t> scratch;
  // Prompt log-probs (echo): position i is scored by the logits at i - 1.
  for (int64_t b = 0; b < batch; ++b) {
    Row& row = *rows[static_cast<size_t>(b)];
    const GenerationParams& p = row.request->params;
    if (!p.prompt_logprobs) continue;
    const std::vector<int32_t>& prompt = row.request->prompt;
    const auto length = static_cast<int64_t>(prompt.size());
    if (length < 2) continue;
    const at::Tensor scored =
        prefill[b].narrow(0, width - length, length - 1).to(c10::kCPU, at::kFloat).log_softmax(-1).contiguous();
    const float* data = scored.data_ptr<float>();
    const int64_t vocab_size = scored.size(1);
    row.prompt_logprobs.reserve(static_cast<size_t>(length - 1));
    for (int64_t i = 0; i + 1 < length; ++i) {
      const float* position = data + i * vocab_size;
      const int32_t id = prompt[static_cast<size_t>(i + 1)];
      row.prompt_logprobs.push_back(
          PositionLogprobs{id, position[id], TopLogprobs(position, usable_vocab, p.prompt_top_logprobs, scratch)});
    }
  }

  // Rows that only score their prompt are done.
  int64_t unfinished = 0;
  for (Row* row : rows) {
    if (row->request->params.max_tokens == 0) {
      row->finished = true;
      row->out.finish = FinishReason::kLength;
    } else {
      ++unfinished;
    }
  }
  if (unfinished == 0) return absl::OkStatus();

  at::Tensor logits = prefill.select(1, width - 1);  // [B, V]
  next_positions = next_positions.to(device);
  std::vector<int64_t> row_of_slot(static_cast<size_t>(batch));  // cache row → index into rows
  std::iota(row_of_slot.begin(), row_of_slot.end(), 0);
  std::vector<float> weights;
  for (int64_t step = 0;; ++step) {
    const at::Tensor cpu_logits = logits.to(c10::kCPU, at::kFloat).contiguous();
    const at::Tensor cpu_logprobs = cpu_logits.log_softmax(-1).contiguous();
    const int64_t vocab_size = cpu_logits.size(1);
    const auto slots = static_cast<int64_t>(row_of_slot.size());
    std::vector<int64_t> next_ids(static_cast<size_t>(slots), pad_id);
    for (int64_t slot = 0; slot < slots; ++slot) {
      Row& row = *rows[static_cast<size_t>(row_of_slot[static_cast<size_t>(slot)])];
      if (row.finished) continue;
      const float* row_logits = cpu_logits.data_ptr<float>() + slot * vocab_size;
      const float* row_logprobs = cpu_logprobs.data_ptr<float>() + slot * vocab_size;
      int32_t id = 0;
      RLJ_RETURN_IF_ERROR(Choose(row, row_logits, row_logprobs, weights, scratch, &id));
      const GenerationParams& p = row.request->params;
      std::vector<TokenLogprob> top;
      if (p.logprobs) top = TopLogprobs(row_logprobs, usable_vocab, p.top_logprobs, scratch);
      RLJ_RETURN_IF_ERROR(Record(row, id, row_logprobs[id], std::move(top)));
      ++counts->generated_tokens;
      next_ids[static_cast<size_t>(slot)] = id;
      if (row.finished) --unfinished;
    }
    if (unfinished == 0) break;

    // Drop finished rows from the cache when the compute saved over the remaining steps outweighs the move.
    int64_t finished_slots = 0;
    for (const int64_t r : row_of_slot) finished_slots += rows[static_cast<size_t>(r)]->finished ? 1 : 0;
    const int64_t remaining_steps = longest_completion - 1 - step;
    at::Tensor ids = at::tensor(next_ids, at::kLong);
    if (finished_slots > 0 && finished_slots * remaining_steps >= 2 * slots) {
      std::vector<int64_t> keep;
      std::vector<int64_t> kept_rows;
      for (int64_t slot = 0; slot < slots; ++slot) {
        const int64_t r = row_of_slot[static_cast<size_t>(slot)];
        if (!rows[static_cast<size_t>(r)]->finished) {
          keep.push_back(slot);
          kept_rows.push_back(r);
        }
      }
      RLJ_RETURN_IF_ERROR(cache.KeepRows(keep));
      const at::Tensor index = at::tensor(keep, at::kLong);
      ids = ids.index_select(0, index);
      next_positions = next_positions.index_select(0, index.to(device));
      row_of_slot = std::move(kept_rows);
    }
    RLJ_RETURN_IF_ERROR(cache.AppendValid(1));
    logits = model->forward_cached(ids.view({-1, 1}).to(device), next_positions, cache).select(1, 0);
    ++counts->forward_passes;
    next_positions.add_(1);
  }
  return absl::OkStatus();
}

BatchEngine::BatchEngine(std::unique_ptr<State> state) : state_(std::move(state)) {}

BatchEngine::~BatchEngine() { Stop(); }

absl::StatusOr<std::unique_ptr<BatchEngine>> BatchEngine::Create(Transformer& model, const Tokenizer* tokenizer,
                                                                 const BatchEngineOptions& options) {
  if (model.is_empty()) return absl::InvalidArgumentError("teacher: no model");
  if (tokenizer == nullptr) return absl::InvalidArgumentError("teacher: no tokenizer");
  if (options.max_batch < 1) return absl::InvalidArgumentError("teacher.max_batch must be >= 1");
  if (options.batch_wait.count() < 0) return absl::InvalidArgumentError("teacher.batch_wait_ms must be >= 0");
  auto state = std::make_unique<State>();
  state->model = model;
  state->tokenizer = tokenizer;
  state->options = options;
  const TransformerConfig& config = model->config();
  state->max_context = config.max_seq_len;
  state->vocab = config.vocab_size;
  if (tokenizer->vocab_size() > config.vocab_size) {
    return absl::InvalidArgumentError(absl::StrCat("the tokenizer's vocabulary (", tokenizer->vocab_size(),
                                                    ") is larger than the model's (", config.vocab_size, ")"));
  }
  if (tokenizer->eos_id() < 0 || tokenizer->eos_id() >= config.vocab_size) {
    return absl::InvalidArgumentError(absl::StrCat("the tokenizer's <eos> id ", tokenizer->eos_id(),
                                                   " is outside the model's vocabulary"));
  }
  state->usable_vocab = tokenizer->vocab_size();
  state->is_stop_id.assign(static_cast<size_t>(config.vocab_size), false);
  for (const int32_t id : tokenizer->stop_ids()) {
    if (id >= 0 && id < config.vocab_size) state->is_stop_id[static_cast<size_t>(id)] = true;
  }
  state->pad_id = tokenizer->pad_id() >= 0 && tokenizer->pad_id() < config.vocab_size ? tokenizer->pad_id() : 0;
  RLJ_RETURN_IF_ERROR(TorchCall("teacher: reading the model's device", [&] {
    const at::Tensor parameter = state->model->parameters().front();
    state->device = parameter.device();
    state->dtype = parameter.scalar_type();
    state->model->eval();
  }));
  State* raw = state.get();
  state->thread = std::thread([raw] { raw->Loop(); });
  return std::unique_ptr<BatchEngine>(new BatchEngine(std::move(state)));
}

std::future<Result> BatchEngine::Submit(GenerationRequest request) {
  auto pending = std::make_unique<Pending>();
  std::future<Result> future = pending->promise.get_future();
  if (absl::Status status = state_->Validate(request); !status.ok()) {
    pending->promise.set_value(status);
    return future;
  }
  pending->request = std::move(request);
  pending->arrival = Clock::now();
  {
    std::lock_guard<std::mutex> lock(state_->mutex);
    if (state_->stopping) {
      pending->promise.set_value(absl::UnavailableError("the teacher is shutting down"));
      return future;
    }
    if (static_cast<int64_t>(state_->queue.size()) >= state_->options.max_queued_requests) {
      pending->promise.set_value(absl::ResourceExhaustedError(
          absl::StrCat("the teacher's queue is full (", state_->options.max_queued_requests, " requests)")));
      return future;
    }
    state_->queued_rows += pending->request.params.n;
    state_->queue.push_back(std::move(pending));
  }
  state_->changed.notify_all();
  return future;
}

void BatchEngine::Stop() {
  std::deque<std::unique_ptr<Pending>> abandoned;
  {
    std::lock_guard<std::mutex> lock(state_->mutex);
    state_->stopping = true;
    abandoned.swap(state_->queue);
    state_->queued_rows = 0;
  }
  state_->changed.notify_all();
  for (auto& pending : abandoned) pending->promise.set_value(absl::UnavailableError("the teacher is shutting down"));
  if (state_->thread.joinable()) state_->thread.join();
}

BatchEngineStats BatchEngine::stats() const {
  std::lock_guard<std::mutex> lock(state_->mutex);
  return state_->stats;
}

int BatchEngine::max_context() const { return state_->max_context; }
int BatchEngine::vocab_size() const { return state_->vocab; }

}  // namespace rlj::teacher
