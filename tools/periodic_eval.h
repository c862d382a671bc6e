// periodic_eval.h: `rlj run`'s held-out evaluation while training goes on (eval.every_steps). A thread of
// its own watches the learner's version and, at each due step, fetches the published policy
// (Learner.GetPolicy: no training time, only the CPU it takes, eval.threads of it) and evaluates it
// (HeldOutEvaluator). Each point is appended to <run>/eval_curve.jsonl and shown in /metrics and TensorBoard
// (eval/accuracy, eval/reward); the best policy so far is saved to <run>/best; after
// eval.stop_when_no_gain_for evaluations without a new best, should_stop() says so.
#pragma once

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "common/run_dir.h"
#include "logs/eval_curve.h"
#include "model/tensor/torch_util.h"
#include "rlj/v1/learner.grpc.pb.h"
#include "tools/held_out_eval.h"

namespace rlj {

namespace telemetry {
class ProcessTelemetry;
}

// A point of the eval curve as TensorBoard scalars of the run (eval/accuracy, eval/reward, eval/seconds at its
// step): the periodic points, and the before- and after-RL ones. Nothing without telemetry or TensorBoard.
void AddEvalScalars(telemetry::ProcessTelemetry* telemetry, const logs::EvalPoint& point);

class PeriodicEvaluator {
 public:
  // Starts the thread. `telemetry` (may be null) must outlive this.
  PeriodicEvaluator(const v1::RunConfig& config, std::unique_ptr<HeldOutEvaluator> evaluator,
                    std::shared_ptr<v1::Learner::StubInterface> learner, RunDir run_dir,
                    telemetry::ProcessTelemetry* telemetry);
  ~PeriodicEvaluator();  // Stop()

  // Ends the thread after the evaluation in progress, if any.
  void Stop();

  std::optional<logs::EvalPoint> latest() const;
  std::optional<logs::EvalPoint> best() const;
  // eval.stop_when_no_gain_for evaluations in a row found no new best.
  bool should_stop() const { return should_stop_.load(); }

 private:
  void Loop();
  // Fetches the newest policy and evaluates it; records the point.
  absl::Status EvaluateNewest();
  void Record(const logs::EvalPoint& point);
  bool WaitFor(std::chrono::milliseconds wait);  // false once stopping

  const int every_steps_;
  const int stop_after_;
  std::unique_ptr<HeldOutEvaluator> evaluator_;
  std::shared_ptr<v1::Learner::StubInterface> learner_;
  const RunDir run_dir_;
  telemetry::ProcessTelemetry* telemetry_;
  const ModelPlacement placement_;  // where the evaluated policy samples: the actors' device and dtype
  Transformer* model_ = nullptr;    // owned through model_holder_ (keeps LibTorch out of this header)
  std::shared_ptr<void> model_holder_;

  mutable std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::optional<logs::EvalPoint> latest_, best_;
  int without_gain_ = 0;
  std::atomic<bool> should_stop_{false};
  std::atomic<int64_t> failures_{0};
  std::thread thread_;
};

}  // namespace rlj
