// periodic_eval.cc: the evaluation thread: poll the learner's version, fetch, evaluate, record.
#include "tools/periodic_eval.h"

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "actor/policy_fetcher.h"
#include "actor/sampling_placement.h"
#include "common/file_util.h"
#include "common/grpc_util.h"
#include "common/log.h"
#include "common/status.h"
#include "common/telemetry/process_telemetry.h"
#include "common/tokenizer/tokenizer.h"
#include "model/checkpoint/checkpoint.h"
#include "model/transformer.h"

namespace rlj {

PeriodicEvaluator::PeriodicEvaluator(const v1::RunConfig& config, std::unique_ptr<HeldOutEvaluator> evaluator,
                                     std::shared_ptr<v1::Learner::StubInterface> learner, RunDir run_dir,
                                     telemetry::ProcessTelemetry* telemetry)
    : every_steps_(std::max(1, config.eval().every_steps())),
      stop_after_(config.eval().stop_when_no_gain_for()),
      evaluator_(std::move(evaluator)),
      learner_(std::move(learner)),
      run_dir_(std::move(run_dir)),
      telemetry_(telemetry),
      placement_(SamplingPlacement(config).value_or(ModelPlacement{})) {  // the actors' (whose start checks it)
  auto model = std::make_shared<Transformer>(nullptr);
  model_ = model.get();
  model_holder_ = model;
  thread_ = std::thread([this] { Loop(); });
}

PeriodicEvaluator::~PeriodicEvaluator() { Stop(); }

void PeriodicEvaluator::Stop() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

bool PeriodicEvaluator::WaitFor(std::chrono::milliseconds wait) {
  std::unique_lock<std::mutex> lock(mutex_);
  return !wake_.wait_for(lock, wait, [this] { return stopping_; });
}

std::optional<logs::EvalPoint> PeriodicEvaluator::latest() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return latest_;
}

std::optional<logs::EvalPoint> PeriodicEvaluator::best() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return best_;
}

void PeriodicEvaluator::Loop() {
  int64_t next_due = every_steps_;
  while (WaitFor(std::chrono::milliseconds(200))) {
    grpc::ClientContext context;
    SetDeadline(&context, std::chrono::seconds(5));
    v1::LearnerStatus status;
    if (!learner_->Status(&context, v1::StatusRequest(), &status).ok()) continue;  // restarting: ask again
    if (status.version() < next_due) {
      if (status.done()) return;
      continue;
    }
    if (absl::Status evaluated = EvaluateNewest(); !evaluated.ok()) {
      failures_.fetch_add(1);
      RLJ_EVERY(10, log::Warn("held-out evaluation at v{} failed (training goes on): {}", status.version(),
                              evaluated.ToString()));
      if (!WaitFor(std::chrono::seconds(2))) return;
      continue;
    }
    const int64_t evaluated_step = latest()->step;
    next_due = (evaluated_step / every_steps_ + 1) * every_steps_;
  }
}

absl::Status PeriodicEvaluator::EvaluateNewest() {
  PolicyFetcher fetcher(learner_, "eval");
  RLJ_ASSIGN_OR_RETURN(std::optional<FetchedPolicy> fetched,
                       fetcher.Fetch(-1, std::chrono::milliseconds(0), std::chrono::milliseconds(120000)));
  if (!fetched) return absl::UnavailableError("the learner sent no policy");
  const int64_t step = fetched->version;
  RLJ_RETURN_IF_ERROR(InstallPolicy(std::move(*fetched), evaluator_->tokenizer().vocab_size(), placement_, model_));
  RLJ_ASSIGN_OR_RETURN(logs::EvalPoint point, evaluator_->Evaluate(*model_, step, "periodic"));
  Record(point);
  bool new_best = false;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    latest_ = point;
    new_best = !best_ || point.accuracy > best_->accuracy;
    if (new_best) {
      best_ = point;
      without_gain_ = 0;
    } else if (stop_after_ > 0 && ++without_gain_ >= stop_after_) {
      should_stop_.store(true);
    }
  }
  if (new_best) {
    // Written beside and renamed over: <run>/best is always one whole checkpoint.
    const std::string dir = run_dir_.best_checkpoint_dir();
    const std::string staging = dir + ".tmp";
    std::error_code ignored;
    std::filesystem::remove_all(staging, ignored);
    CheckpointState state;
    state.step = step;
    state.policy_version = step;
    RLJ_RETURN_IF_ERROR(Annotate(SaveCheckpoint(staging, *model_, state), "saving the best checkpoint"));
    std::filesystem::remove_all(dir, ignored);
    std::filesystem::rename(staging, dir, ignored);
    if (ignored)
      return absl::UnavailableError(absl::StrCat("cannot move the best checkpoint to ", dir, ": ", ignored.message()));
  }
  return absl::OkStatus();
}

void PeriodicEvaluator::Record(const logs::EvalPoint& point) {
  log::Info("held-out at step {}: accuracy {:.4f}, reward {:.4f} ({} prompts, {:.1f} s)", point.step, point.accuracy,
            point.reward, point.prompts, point.seconds);
  if (absl::Status appended = logs::AppendEvalPoint(run_dir_.eval_curve_path(), point); !appended.ok()) {
    log::Warn("eval curve not written: {}", appended.ToString());
  }
  if (telemetry_ == nullptr) return;
  telemetry_->metrics()
      .GetGauge("rlj_eval_accuracy", "Held-out accuracy of the latest periodic evaluation")
      .Set(point.accuracy);
  telemetry_->metrics()
      .GetGauge("rlj_eval_reward", "Mean reward of the latest periodic evaluation's greedy answers")
      .Set(point.reward);
  telemetry_->metrics()
      .GetGauge("rlj_eval_step", "Step (policy version) of the latest periodic evaluation")
      .Set(static_cast<double>(point.step));
  AddEvalScalars(telemetry_, point);
}

void AddEvalScalars(telemetry::ProcessTelemetry* telemetry, const logs::EvalPoint& point) {
  telemetry::TensorBoardWriter* tensorboard = telemetry != nullptr ? telemetry->tensorboard() : nullptr;
  if (tensorboard == nullptr) return;
  const absl::Status written = tensorboard->AddScalars(
      {{"eval/accuracy", point.accuracy}, {"eval/reward", point.reward}, {"eval/seconds", point.seconds}}, point.step);
  if (!written.ok()) RLJ_EVERY(60, log::Warn("TensorBoard scalars not written: {}", std::string(written.message())));
}

}  // namespace rlj
