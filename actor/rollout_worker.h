// rollout_worker.h: the actor loop: lease prompts from the learner (Learner.LeasePrompts), keep the newest
// policy, sample G completions per prompt, have the judge score each group and push it (stamped with the
// policy version and its lease) to the learner as soon as its verdicts are in, while the next batches are
// sampled; reconnect when a peer restarts; stop when the learner
// is done or the process is asked to stop. Actors need no dataset file.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "actor/judge_client.h"
#include "rlj/v1/config.pb.h"
#include "rlj/v1/judge.grpc.pb.h"
#include "rlj/v1/learner.grpc.pb.h"

namespace rlj {

struct SampledCompletion;

struct ActorOptions {
  std::string name = "actor-0";  // appears in sample ids and the reward log
  int index = 0;                 // this actor's number (seeds its sampling)
  int count = 1;                 // number of actors
  std::string run_dir;           // RunActor: its /metrics address goes to <run_dir>/endpoints/metrics-<name>
};

struct ActorStats {
  std::atomic<int64_t> batches{0};
  std::atomic<int64_t> groups_pushed{0};
  std::atomic<int64_t> samples_judged{0};
  std::atomic<int64_t> samples_failed{0};  // verdicts with an error: pushed as invalid (masked)
  std::atomic<int64_t> groups_dropped{0};  // judge or learner unreachable past the retry budget
  std::atomic<int64_t> groups_held{0};     // groups that waited out a teacher outage (on_outage pause)
  std::atomic<int64_t> completion_tokens{0};
  std::atomic<int64_t> policy_updates{0};
};

class RolloutWorker {
 public:
  // Makes the tokenizer; validates the actor options.
  static absl::StatusOr<std::unique_ptr<RolloutWorker>> Create(const v1::RunConfig& config, const ActorOptions& options,
                                                               std::shared_ptr<v1::Learner::StubInterface> learner,
                                                               std::shared_ptr<v1::Judge::StubInterface> judge);
  ~RolloutWorker();

  // Runs until the learner reports done (OK) or shutdown is requested (OK); errors only for problems that
  // retrying cannot fix (a policy that does not fit the tokenizer, invalid arguments from the learner).
  absl::Status Run();

  const ActorStats& stats() const { return stats_; }
  // Judge.Score calls, retries, backpressure and outage answers seen by this actor.
  const JudgeClientStats& judge_stats() const;

 private:
  struct State;
  struct SampledGroup;  // a group sampled with one policy version, waiting for its verdicts
  explicit RolloutWorker(std::unique_ptr<State> state);

  // Asks the learner for a newer policy; installs it when there is one.
  absl::Status RefreshPolicy(std::chrono::milliseconds wait);
  // Learner.LeasePrompts: the next prompts of the learner's training order, with the learner's version.
  absl::StatusOr<v1::LeasePromptsResponse> LeasePrompts();
  // Refetches the policy when the learner's version is newer than this actor's, or older (it restarted).
  absl::Status FollowLearner(int64_t learner_version);
  // Samples the leased prompts × G completions with the current version: one group per prompt.
  absl::StatusOr<std::vector<SampledGroup>> SampleBatch(const v1::LeasePromptsResponse& lease);
  // The group of leased prompt `p`, its completions from `completions` (G per prompt, in lease order).
  SampledGroup MakeGroup(const v1::LeasePromptsResponse& lease, int p, const std::vector<int32_t>& prompt_tokens,
                         const std::vector<SampledCompletion>& completions, double sampled_unix_s);
  // Scores one group, marks failed verdicts invalid (never reward 0), pushes it.
  void ScoreAndPush(SampledGroup sampled);
  void LogProgress(int groups_out) const;

  std::unique_ptr<State> state_;
  ActorStats stats_;
};

// Connects to the learner and judge at the given addresses and runs a RolloutWorker.
absl::Status RunActor(const v1::RunConfig& config, const ActorOptions& options, const std::string& learner_address,
                      const std::string& judge_address);

}  // namespace rlj
