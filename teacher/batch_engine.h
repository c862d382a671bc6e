// batch_engine.h: the teacher's model behind a queue: concurrent requests are collected for a few
// milliseconds (or until a batch is full), prefilled together in one forward pass and decoded together, one
// pass per generated token. Identical deterministic requests (greedy, or with one seed) are computed once.
#pragma once

#include <chrono>
#include <cstdint>
#include <future>
#include <memory>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "teacher/generation.h"

namespace rlj {
class Transformer;
class Tokenizer;
}  // namespace rlj

namespace rlj::teacher {

struct BatchEngineOptions {
  int max_batch = 64;                       // sequences in one forward pass
  std::chrono::milliseconds batch_wait{5};  // how long a batch's first request waits for others to join
  int max_queued_requests = 4096;           // beyond this, Submit answers ResourceExhausted
};

// Counters since the engine started.
struct BatchEngineStats {
  int64_t requests = 0;          // answered, successfully or not
  int64_t batches = 0;           // batches run
  int64_t rows = 0;              // sequences asked for (the sum of every request's n)
  int64_t computed_rows = 0;     // sequences computed after merging identical deterministic ones
  int64_t forward_passes = 0;    // model calls: one prefill per batch (or per part of one), one per decode step
  int64_t prompt_tokens = 0;     // prompt tokens prefilled (computed rows)
  int64_t generated_tokens = 0;  // tokens sampled (computed rows)
};

class BatchEngine {
 public:
  // Serves `model` (the handle is shared; from now on only the engine's thread may use the module) on the
  // device it is on. `tokenizer` decodes completions and gives <eos> and <pad>; it must outlive the engine.
  static absl::StatusOr<std::unique_ptr<BatchEngine>> Create(Transformer& model, const Tokenizer* tokenizer,
                                                             const BatchEngineOptions& options);
  ~BatchEngine();  // Stop()

  BatchEngine(const BatchEngine&) = delete;
  BatchEngine& operator=(const BatchEngine&) = delete;

  // Queues a request. The future holds its result once the batch it joined has run. A request that can never
  // run (empty prompt, ids outside the vocabulary, prompt + max_tokens beyond the context, bad parameters)
  // fails at once with InvalidArgument; a stopped engine answers Unavailable.
  std::future<absl::StatusOr<GenerationResult>> Submit(GenerationRequest request);

  // Submit and wait.
  absl::StatusOr<GenerationResult> Generate(GenerationRequest request) { return Submit(std::move(request)).get(); }

  // Answers every queued request with Unavailable, lets the running batch finish, ends the batching thread.
  void Stop();

  BatchEngineStats stats() const;
  int max_context() const;  // the model's max_seq_len: prompt + max_tokens must fit
  int vocab_size() const;   // the model's output vocabulary

 private:
  struct State;
  explicit BatchEngine(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

}  // namespace rlj::teacher
