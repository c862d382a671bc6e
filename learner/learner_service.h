// learner_service.h: the Learner gRPC service: validates and buffers pushed rollouts, streams versioned
// weights to actors, and reports the learner's status.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <utility>

#include "absl/status/status.h"
#include "learner/prompt_dispatcher.h"
#include "learner/rollout_buffer.h"
#include "learner/weight_publisher.h"
#include "rlj/v1/learner.grpc.pb.h"

namespace rlj {

struct LearnerServiceOptions {
  int vocab_size = 0;   // token ids must lie in [0, vocab_size)
  int max_seq_len = 0;  // prompt + completion must fit
  int64_t max_staleness = 0;
  std::chrono::milliseconds max_policy_wait{30000};  // cap on GetPolicyRequest.wait_ms
  // Status answers the version the training loop last reported with its step (UpdateProgress), so that step
  // and version are one snapshot, instead of the publisher's newest (which is ahead of the step for the
  // moment between a publication and the loop's report).
  bool version_from_progress = false;
};

// Checks one pushed group against the model and the learner's current version; the message names the
// problem (the caller names the group).
absl::Status ValidateRolloutGroup(const v1::RolloutGroup& group, int vocab_size, int max_seq_len,
                                  int64_t current_version);

class LearnerService final : public v1::Learner::Service {
 public:
  // `buffer`, `publisher` and `dispatcher` outlive the service; without a dispatcher (a learner without a
  // training set) LeasePrompts answers FAILED_PRECONDITION and groups carry no lease.
  LearnerService(LearnerServiceOptions options, RolloutBuffer* buffer, WeightPublisher* publisher,
                 PromptDispatcher* dispatcher = nullptr);

  // Reads the stream batch by batch. A batch with an invalid group is rejected whole (INVALID_ARGUMENT naming
  // the group and the problem) and ends the call; stale groups are counted, not buffered; the rest are
  // pushed, waiting while the buffer is full until the call's deadline (then RESOURCE_EXHAUSTED). After
  // training is done, valid groups are acknowledged but not buffered (accepted_groups counts none of them).
  // A group from a lease counts only on the first arrival of its item (later ones are duplicates); a
  // stale or unbuffered leased group hands its item out again.
  grpc::Status PushRollouts(grpc::ServerContext* context, grpc::ServerReader<v1::RolloutBatch>* reader,
                            v1::PushRolloutsResponse* response) override;

  // Learner.GetPolicy (registered in place of the generated handler, whose messages would be serialized
  // once per client): a manifest, then every chunk of the latest weights when their version differs from
  // have_version, written as the snapshot's pre-serialized buffers (shared, not copied); otherwise waits up
  // to wait_ms (capped) for a newer version, and answers a manifest with unchanged=true when none came.
  grpc::Status StreamPolicy(grpc::ServerContext* context,
                            grpc::ServerSplitStreamer<v1::GetPolicyRequest, grpc::ByteBuffer>* stream);

  grpc::Status Status(grpc::ServerContext* context, const v1::StatusRequest* request,
                      v1::LearnerStatus* response) override;

  // Up to `count` prompts from the dispatcher in one lease (none once training is done).
  grpc::Status LeasePrompts(grpc::ServerContext* context, const v1::LeasePromptsRequest* request,
                            v1::LeasePromptsResponse* response) override;

  // The training loop records its progress (step, version, total_steps, done, last, groups_skipped_no_signal,
  // samples_masked, checkpoint) here; the service fills in the rest when asked.
  void UpdateProgress(const std::function<void(v1::LearnerStatus*)>& update);

  // What Status answers.
  v1::LearnerStatus CurrentStatus() const;

  // Once the loop has marked itself done, pushes are acknowledged without buffering anything.
  bool TrainingDone() const;

 private:
  void RecordReceivedTokens(int64_t tokens);
  double SampleTokensPerSecond() const;

  const LearnerServiceOptions options_;
  RolloutBuffer* const buffer_;
  WeightPublisher* const publisher_;
  PromptDispatcher* const dispatcher_;

  mutable std::mutex mutex_;
  v1::LearnerStatus progress_;
  int64_t groups_received_ = 0;
  int64_t groups_stale_on_arrival_ = 0;
  int64_t groups_duplicate_ = 0;
  std::chrono::steady_clock::time_point first_tokens_at_{};
  std::deque<std::pair<std::chrono::steady_clock::time_point, int64_t>> recent_tokens_;  // sliding window
};

}  // namespace rlj
