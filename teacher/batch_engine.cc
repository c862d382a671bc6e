// batch_engine.cc: the queue, the batching thread, and one batch's rows run through model/'s decode loop,
// token sampler and stop matcher with per-row sampling parameters, log-probs and top alternatives.
#include "teacher/batch_engine.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <numeric>
#include <optional>
#include <random>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/log.h"
#include "common/status.h"
#include "common/tokenizer/tokenizer.h"
#include "model/decode_loop.h"
#include "model/stop_matcher.h"
#include "model/tensor/torch_util.h"
#include "model/token_sampler.h"
#include "model/transformer.h"

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
  Row(const GenerationRequest& request, uint64_t seed, const Tokenizer& tokenizer, int64_t vocab)
      : request(&request),
        stream(SamplingParams{request.params.temperature, request.params.top_k, request.params.top_p}, seed),
        matcher(tokenizer, vocab, {}, request.params.stop) {}

  const GenerationRequest* request;
  SamplingStream stream;
  StopMatcher matcher;
  std::vector<int32_t> sampled;                    // every sampled id, the stop id included
  std::vector<PositionLogprobs> sampled_logprobs;  // per sampled id when params.logprobs
  GeneratedChoice out;
  std::vector<PositionLogprobs> prompt_logprobs;
  bool finished = false;
  std::vector<size_t> copies_to;  // (pending index << 16 | choice) of every choice this row answers
};

// Rows are merged when they would compute the same thing: same prompt and parameters, and either greedy or
// seeded with the same seed.
std::string MergeKey(const GenerationRequest& request, uint64_t seed) {
  const GenerationParams& p = request.params;
  return absl::StrCat(absl::StrJoin(request.prompt, ","), "|", p.max_tokens, "|", p.temperature, "|", p.top_k, "|",
                      p.top_p, "|", p.temperature == 0 ? 0 : seed, "|", absl::StrJoin(p.stop, "\x1f"), "|",
                      p.logprobs ? 1 : 0, "|", p.top_logprobs, "|", p.prompt_logprobs ? 1 : 0, "|",
                      p.prompt_top_logprobs);
}

// The `k` most likely ids among the first `usable` of a log-prob row, best first (ties: lower id first).
std::vector<TokenLogprob> TopLogprobs(const float* logprobs, int64_t usable, int k, std::vector<int32_t>& scratch) {
  std::vector<TokenLogprob> top;
  if (k <= 0) return top;
  scratch.resize(static_cast<size_t>(usable));
  std::iota(scratch.begin(), scratch.end(), 0);
  const auto count = static_cast<size_t>(std::min<int64_t>(k, usable));
  std::partial_sort(
      scratch.begin(), scratch.begin() + static_cast<std::ptrdiff_t>(count), scratch.end(),
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
  RLJ_RETURN_IF_ERROR(ValidateSamplingParams(SamplingParams{p.temperature, p.top_k, p.top_p}));
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
        owned.push_back(std::make_unique<Row>(request, seed, *tokenizer, vocab));
        row = owned.back().get();
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
    for (size_t b = 0; b < batch.size(); ++b)
      results[b].choices.resize(static_cast<size_t>(batch[b]->request.params.n));
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
    RLJ_EVERY(10,
              log::Error("teacher: a batch of {} requests failed: {}", batch.size(), std::string(status.message())));
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

// The rows of one part of a batch as the decode loop sees them: prompt log-probs after the prefill, then each
// step's ids drawn by the rows' own streams, reported with their log-probs and ended by each row's matcher.
class EngineRows : public DecodeRows {
 public:
  EngineRows(const std::vector<Row*>& rows, int64_t usable_vocab, int64_t width, BatchEngineStats* counts)
      : rows_(rows), usable_vocab_(usable_vocab), width_(width), counts_(counts) {}

  // Only a row that scores its prompt (echo) needs the prompt positions' logits.
  bool WantsPrefillLogits() const override {
    return std::any_of(rows_.begin(), rows_.end(), [](const Row* row) { return row->request->params.prompt_logprobs; });
  }

  absl::Status AfterPrefill(const at::Tensor& logits) override {
    for (size_t b = 0; b < rows_.size(); ++b) {
      Row& row = *rows_[b];
      if (row.request->params.prompt_logprobs) ScorePrompt(row, logits[static_cast<int64_t>(b)]);
      if (row.request->params.max_tokens == 0) {  // it only scores its prompt
        row.finished = true;
        row.out.finish = FinishReason::kLength;
      }
    }
    return absl::OkStatus();
  }

  bool finished(int64_t row) const override { return rows_[static_cast<size_t>(row)]->finished; }

  absl::StatusOr<at::Tensor> Step(const at::Tensor& device_logits, std::span<const int64_t> rows) override {
    std::vector<SamplingStream*> streams;
    for (const int64_t r : rows) streams.push_back(&rows_[static_cast<size_t>(r)]->stream);
    // The whole rows come to the host: the API's top log-probs are read from them.
    const at::Tensor logits = device_logits.to(at::kCPU);
    const at::Tensor ids = ChooseTokens(logits, usable_vocab_, streams);
    const at::Tensor logprobs = logits.log_softmax(-1).contiguous();
    const int64_t vocab = logprobs.size(1);
    const auto id_access = ids.accessor<int64_t, 1>();
    for (size_t i = 0; i < rows.size(); ++i) {
      Row& row = *rows_[static_cast<size_t>(rows[i])];
      const float* row_logprobs = logprobs.data_ptr<float>() + static_cast<int64_t>(i) * vocab;
      const auto id = static_cast<int32_t>(id_access[static_cast<int64_t>(i)]);
      RLJ_RETURN_IF_ERROR(Record(row, id, row_logprobs));
    }
    return ids;
  }

 private:
  // Prompt log-probs (echo): position i is scored by the logits at i - 1; row b's prompt is right-aligned.
  void ScorePrompt(Row& row, const at::Tensor& logits) {
    const std::vector<int32_t>& prompt = row.request->prompt;
    const auto length = static_cast<int64_t>(prompt.size());
    if (length < 2) return;
    const at::Tensor scored =
        logits.narrow(0, width_ - length, length - 1).to(c10::kCPU, at::kFloat).log_softmax(-1).contiguous();
    const float* data = scored.data_ptr<float>();
    const int64_t vocab = scored.size(1);
    row.prompt_logprobs.reserve(static_cast<size_t>(length - 1));
    for (int64_t i = 0; i + 1 < length; ++i) {
      const float* position = data + i * vocab;
      const int32_t id = prompt[static_cast<size_t>(i + 1)];
      row.prompt_logprobs.push_back(PositionLogprobs{
          id, position[id], TopLogprobs(position, usable_vocab_, row.request->params.prompt_top_logprobs, scratch_)});
    }
  }

  absl::Status Record(Row& row, int32_t id, const float* logprobs) {
    const GenerationParams& p = row.request->params;
    row.sampled.push_back(id);
    ++counts_->generated_tokens;
    if (p.logprobs) {
      row.sampled_logprobs.push_back(
          PositionLogprobs{id, logprobs[id], TopLogprobs(logprobs, usable_vocab_, p.top_logprobs, scratch_)});
    }
    RLJ_ASSIGN_OR_RETURN(std::optional<CompletionEnd> end, row.matcher.Check(row.sampled));
    if (!end.has_value() && static_cast<int64_t>(row.sampled.size()) >= p.max_tokens) {
      RLJ_ASSIGN_OR_RETURN(end, row.matcher.AtLength(row.sampled));
    }
    if (end.has_value()) Finish(row, *std::move(end));
    return absl::OkStatus();
  }

  // The choice as reported: the tokens of its text (no stop id, nothing past a stop string's cut).
  static void Finish(Row& row, CompletionEnd end) {
    GeneratedChoice& out = row.out;
    out.tokens.assign(row.sampled.begin(), row.sampled.begin() + static_cast<std::ptrdiff_t>(end.text_tokens));
    if (!row.sampled_logprobs.empty()) {
      out.logprobs.assign(row.sampled_logprobs.begin(),
                          row.sampled_logprobs.begin() + static_cast<std::ptrdiff_t>(end.text_tokens));
    }
    out.text = std::move(end.text);
    out.finish = end.finish;
    out.generated_tokens = static_cast<int>(row.sampled.size());
    row.finished = true;
  }

  const std::vector<Row*>& rows_;
  const int64_t usable_vocab_;
  const int64_t width_;
  BatchEngineStats* counts_;
  std::vector<int32_t> scratch_;
};

absl::Status BatchEngine::State::ComputePart(const std::vector<Row*>& rows, BatchEngineStats* counts) {
  int64_t width = 0;
  int64_t longest_completion = 0;
  std::vector<std::span<const int32_t>> prompts;
  for (const Row* row : rows) {
    prompts.emplace_back(row->request->prompt);
    width = std::max<int64_t>(width, static_cast<int64_t>(row->request->prompt.size()));
    longest_completion = std::max<int64_t>(longest_completion, row->request->params.max_tokens);
    counts->prompt_tokens += static_cast<int64_t>(row->request->prompt.size());
  }
  EngineRows engine_rows(rows, usable_vocab, width, counts);
  RLJ_ASSIGN_OR_RETURN(const int64_t passes, DecodeBatch(model, prompts, pad_id, longest_completion, engine_rows));
  counts->forward_passes += passes;
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
    return absl::InvalidArgumentError(
        absl::StrCat("the tokenizer's <eos> id ", tokenizer->eos_id(), " is outside the model's vocabulary"));
  }
  state->usable_vocab = tokenizer->vocab_size();
  state->pad_id = tokenizer->pad_id() >= 0 && tokenizer->pad_id() < config.vocab_size ? tokenizer->pad_id() : 0;
  RLJ_RETURN_IF_ERROR(TorchCall("teacher: preparing the model", [&] { state->model->eval(); }));
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
