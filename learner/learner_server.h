// learner_server.h: the learner process: policy, trainer, rollout buffer, weight publisher and the
// Learner gRPC server, with the training loop (take groups → GRPO step → publish → checkpoint).
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "learner/rank_group.h"
#include "rlj/v1/config.pb.h"
#include "rlj/v1/learner.pb.h"

namespace rlj {

struct LearnerServerOptions {
  std::string listen;   // host:port; empty → config.learner().listen()
  std::string run_dir;  // checkpoints go to <run_dir>/checkpoints/step-<N>; the endpoint to endpoints/learner
  // How long one wait for rollouts lasts before the loop looks at its stop flag again.
  std::chrono::milliseconds take_timeout{1000};
  // Continue from the newest checkpoint of <run_dir>/checkpoints that verifies (weights, optimiser, RNG,
  // step, version, dispatcher position); without one, start fresh.
  bool resume = false;
  // Data-parallel ranks (world_size > 1): this process's rank and the rendezvous. Rank 0 serves and
  // checkpoints; the others run RunLearnerRank.
  RankGroupOptions ranks;
  // While rank 0 waits for rollouts, it tells the other ranks it is alive this often.
  std::chrono::milliseconds rank_heartbeat{30000};
};

// Non-blocking: Start builds everything, publishes version 0, serves, and runs the training loop on its
// own thread; Stop ends it. Used by RunLearner and by tests.
class LearnerServer {
 public:
  // The policy comes from model.init_checkpoint, else a random init seeded with config.seed(). Writes the
  // "learner" endpoint file of the run directory once serving.
  static absl::StatusOr<std::unique_ptr<LearnerServer>> Start(const v1::RunConfig& config,
                                                              const LearnerServerOptions& options);
  ~LearnerServer();  // Stop()s

  LearnerServer(const LearnerServer&) = delete;
  LearnerServer& operator=(const LearnerServer&) = delete;

  // host:port the server is bound to.
  const std::string& address() const;

  // Blocks until the training loop has ended (all steps done and checkpointed, or failed) or `timeout`
  // passes; true when it has ended.
  bool WaitForTraining(std::chrono::milliseconds timeout) const;
  // OK while training runs and after it finished; the error that ended it otherwise.
  absl::Status training_status() const;

  // What Learner.Status answers.
  v1::LearnerStatus status() const;

  // Stops the training loop (checkpointing the current state when it had not finished) and shuts the
  // server down, cancelling calls still running after `grace`. Returns the training status. Idempotent.
  absl::Status Stop(std::chrono::milliseconds grace = std::chrono::milliseconds(5000));

 private:
  struct State;
  explicit LearnerServer(std::unique_ptr<State> state);
  void TrainingLoop();

  std::unique_ptr<State> state_;
};

// Exit code of `rlj learner` when training stopped on purpose because it cannot go on (too many non-finite
// steps in a row): a run failure `rlj run` reports, not a crash it restarts.
inline constexpr int kLearnerExitTrainingStopped = 3;
// True for the error a LearnerServer's training ends with in that case.
bool IsTrainingStoppedError(const absl::Status& status);

// The `rlj learner` process: sets torch threads, starts a LearnerServer, trains, marks itself done and
// keeps serving until WaitForShutdown() (a signal), then stops. A rank other than 0 runs RunLearnerRank.
absl::Status RunLearner(const v1::RunConfig& config, const LearnerServerOptions& options);

// A data-parallel rank > 0: joins the rank group, takes rank 0's state, then trains its share of every
// step rank 0 broadcasts until rank 0 says stop (OK) or goes away (an error).
absl::Status RunLearnerRank(const v1::RunConfig& config, const LearnerServerOptions& options);

}  // namespace rlj
