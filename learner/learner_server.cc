// learner_server.cc: builds the learner's parts, serves Learner over gRPC and runs the training loop:
// take a step's groups from the buffer, take a GRPO step, publish the next version, checkpoint.
#include "learner/learner_server.h"

#include <ATen/Context.h>

#include <atomic>
#include <cmath>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/checkpoint/checkpoint.h"
#include "common/config_validate.h"
#include "common/file_util.h"
#include "common/grpc_util.h"
#include "common/log.h"
#include "common/metrics_log.h"
#include "common/model/transformer.h"
#include "common/run_dir.h"
#include "common/shutdown.h"
#include "common/status.h"
#include "common/tensor/torch_util.h"
#include "learner/grpo_trainer.h"
#include "learner/learner_service.h"
#include "learner/rollout_buffer.h"
#include "learner/weight_publisher.h"

namespace rlj {
namespace {

using Clock = std::chrono::steady_clock;
constexpr int kServerThreads = 16;

// Names every architecture field on which the checkpoint and the config disagree.
absl::Status CheckSameArchitecture(const TransformerConfig& checkpoint, const TransformerConfig& config,
                                   const std::string& dir) {
  std::vector<std::string> differences;
  const auto compare = [&](const char* key, auto a, auto b) {
    if (a != b) differences.push_back(absl::StrCat(key, " ", a, " (config: ", b, ")"));
  };
  compare("vocab_size", checkpoint.vocab_size, config.vocab_size);
  compare("d_model", checkpoint.d_model, config.d_model);
  compare("n_layers", checkpoint.n_layers, config.n_layers);
  compare("n_heads", checkpoint.n_heads, config.n_heads);
  compare("n_kv_heads", checkpoint.n_kv_heads, config.n_kv_heads);
  compare("ffn_hidden", checkpoint.ffn_hidden, config.ffn_hidden);
  compare("max_seq_len", checkpoint.max_seq_len, config.max_seq_len);
  compare("tie_embeddings", checkpoint.tie_embeddings, config.tie_embeddings);
  if (differences.empty()) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat("model.init_checkpoint: ", dir, " does not match the model config: ",
                                                 absl::StrJoin(differences, ", ")));
}

// The starting policy: model.init_checkpoint, else a random init seeded with config.seed() (the same
// model `rlj run` evaluates before training). An output parameter, since a ModuleHolder converts from
// anything and makes StatusOr<Transformer> ambiguous.
absl::Status LoadStartingPolicy(const v1::RunConfig& config, Transformer* policy) {
  RLJ_ASSIGN_OR_RETURN(TransformerConfig shape, TransformerConfig::FromProto(config.model()));
  at::manual_seed(config.seed());
  const std::string& init = config.model().init_checkpoint();
  if (!init.empty()) {
    RLJ_ASSIGN_OR_RETURN(LoadedCheckpoint checkpoint, LoadCheckpoint(init));
    RLJ_RETURN_IF_ERROR(CheckSameArchitecture(checkpoint.config, shape, init));
    *policy = checkpoint.model;
    log::Info("policy from {} (its step {})", init, checkpoint.state.step);
    return absl::OkStatus();
  }
  return TorchCall("build the initial policy", [&] { *policy = Transformer(shape); });
}

}  // namespace

struct LearnerServer::State {
  v1::RunConfig config;
  LearnerServerOptions options;
  RunDir run_dir{""};
  Transformer policy{nullptr};
  v1::ModelConfig model_proto;
  std::unique_ptr<GrpoTrainer> trainer;
  std::unique_ptr<RolloutBuffer> buffer;
  std::unique_ptr<WeightPublisher> publisher;
  std::unique_ptr<MetricsLogWriter> metrics_log;
  std::unique_ptr<LearnerService> service;
  RunningServer server;
  std::thread loop;
  std::atomic<bool> stop_requested{false};

  mutable std::mutex mutex;
  mutable std::condition_variable finished_cv;
  bool finished = false;
  absl::Status training_status;
  bool stopped = false;

  // Owned by the training loop.
  int64_t version = 0;
  int64_t step = 0;
  int64_t last_checkpoint_step = -1;

  absl::Status Publish() {
    RLJ_ASSIGN_OR_RETURN(NamedTensors tensors, TorchCall("collect the policy's parameters",
                                                         [&] { return absl::StatusOr<NamedTensors>(NamedParameters(policy)); }));
    return publisher->Publish(version, model_proto, tensors);
  }

  absl::Status WriteCheckpoint() {
    const std::string name = absl::StrCat("step-", step);
    const std::string dir = absl::StrCat(run_dir.checkpoints_dir(), "/", name);
    const auto start = Clock::now();
    RLJ_RETURN_IF_ERROR(MakeDirectories(run_dir.checkpoints_dir()));
    RLJ_RETURN_IF_ERROR(SaveCheckpoint(dir, policy, CheckpointState{step, version}));
    RLJ_RETURN_IF_ERROR(WriteFileAtomically(run_dir.checkpoints_dir() + "/latest", name + "\n"));
    last_checkpoint_step = step;
    service->UpdateProgress([&](v1::LearnerStatus* status) { status->set_checkpoint(dir); });
    log::Info("checkpoint {} (v{}) in {:.2f} s", dir, version,
              std::chrono::duration<double>(Clock::now() - start).count());
    return absl::OkStatus();
  }

  void Finish(absl::Status status) {
    {
      std::lock_guard<std::mutex> lock(mutex);
      finished = true;
      training_status = std::move(status);
    }
    finished_cv.notify_all();
  }
};

LearnerServer::LearnerServer(std::unique_ptr<State> state) : state_(std::move(state)) {}

LearnerServer::~LearnerServer() { Stop().IgnoreError(); }

absl::StatusOr<std::unique_ptr<LearnerServer>> LearnerServer::Start(const v1::RunConfig& config,
                                                                    const LearnerServerOptions& options) {
  if (options.run_dir.empty()) return absl::InvalidArgumentError("the learner needs a run directory");
  auto state = std::make_unique<State>();
  state->config = config;
  state->options = options;
  state->run_dir = RunDir(options.run_dir);
  RLJ_RETURN_IF_ERROR(state->run_dir.Create());
  RLJ_ASSIGN_OR_RETURN(state->metrics_log, MetricsLogWriter::Open(state->run_dir.metrics_path()));
  const v1::LearnerConfig& l = config.learner();

  RLJ_RETURN_IF_ERROR(LoadStartingPolicy(config, &state->policy));
  state->model_proto = state->policy->config().ToProto();
  RLJ_ASSIGN_OR_RETURN(state->trainer, GrpoTrainer::Create(config, state->policy));
  state->buffer = std::make_unique<RolloutBuffer>(l.buffer_groups());
  state->publisher = std::make_unique<WeightPublisher>();
  RLJ_RETURN_IF_ERROR(state->Publish());

  LearnerServiceOptions service_options;
  service_options.vocab_size = state->policy->config().vocab_size;
  service_options.max_seq_len = state->policy->config().max_seq_len;
  service_options.max_staleness = l.max_staleness();
  state->service = std::make_unique<LearnerService>(service_options, state->buffer.get(), state->publisher.get());
  state->service->UpdateProgress([&](v1::LearnerStatus* status) { status->set_total_steps(l.steps()); });

  ServerOptions server_options;
  server_options.listen = options.listen.empty() ? l.listen() : options.listen;
  server_options.max_concurrent_rpcs = kServerThreads;
  RLJ_ASSIGN_OR_RETURN(state->server, StartServer(server_options, {state->service.get()}));
  std::unique_ptr<LearnerServer> server(new LearnerServer(std::move(state)));
  State& s = *server->state_;
  log::Info("learner serving on {}: {} parameters on {}, {} steps of {} groups, policy v0 published ({:.1f} MB)",
            s.server.address, s.policy->config().num_parameters(), s.trainer->device(), l.steps(),
            l.groups_per_step(), s.publisher->Latest()->manifest().total_bytes() / 1e6);
  if (absl::Status written = s.run_dir.WriteEndpoint("learner", s.server.address); !written.ok()) {
    server->Stop().IgnoreError();
    return written;
  }
  s.loop = std::thread([raw = server.get()] { raw->TrainingLoop(); });
  return server;
}

const std::string& LearnerServer::address() const { return state_->server.address; }

void LearnerServer::TrainingLoop() {
  State& s = *state_;
  const v1::LearnerConfig& l = s.config.learner();
  const int64_t total_steps = l.steps();
  const int64_t groups_per_step = l.groups_per_step();
  absl::Status result = absl::OkStatus();
  bool interrupted = false;
  while (s.step < total_steps) {
    const auto step_start = Clock::now();
    std::vector<v1::RolloutGroup> groups;
    double waited_s = 0;
    int64_t dropped = 0;
    while (static_cast<int64_t>(groups.size()) < groups_per_step && !s.stop_requested.load()) {
      RolloutBuffer::TakeResult taken =
          s.buffer->Take(groups_per_step - static_cast<int64_t>(groups.size()), s.version, l.max_staleness(),
                         Clock::now() + s.options.take_timeout);
      waited_s += taken.waited_s;
      dropped += taken.dropped_stale;
      for (auto& group : taken.groups) groups.push_back(std::move(group));
      if (taken.closed) break;
    }
    if (s.stop_requested.load() || static_cast<int64_t>(groups.size()) < groups_per_step) {
      interrupted = true;
      break;
    }
    double staleness_sum = 0;
    for (const auto& group : groups) staleness_sum += static_cast<double>(s.version - group.policy_version());

    absl::StatusOr<v1::StepMetrics> stepped = s.trainer->Step(groups);
    if (!stepped.ok()) {
      result = Annotate(stepped.status(), absl::StrCat("step ", s.step + 1));
      break;
    }
    ++s.step;
    ++s.version;
    if (absl::Status published = s.Publish(); !published.ok()) {
      result = Annotate(published, absl::StrCat("publishing v", s.version));
      break;
    }
    v1::StepMetrics metrics = *std::move(stepped);
    const double step_s = std::chrono::duration<double>(Clock::now() - step_start).count();
    metrics.set_step(s.step);
    metrics.set_staleness_mean(staleness_sum / static_cast<double>(groups.size()));
    metrics.set_step_s(step_s);
    metrics.set_idle_fraction(step_s > 0 ? std::min(1.0, waited_s / step_s) : 0.0);
    metrics.set_version(s.version);
    metrics.set_time_unix_s(std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count());
    if (absl::Status logged = s.metrics_log->Append(metrics); !logged.ok()) {
      RLJ_EVERY(30, log::Error("step metrics not logged: {}", std::string(logged.message())));
    }
    s.service->UpdateProgress([&](v1::LearnerStatus* status) {
      status->set_step(s.step);
      *status->mutable_last() = metrics;
      status->set_groups_skipped_no_signal(s.trainer->groups_skipped_no_signal());
      status->set_samples_masked(s.trainer->samples_masked());
      status->set_steps_skipped_nonfinite(s.trainer->nonfinite_steps_skipped());
    });
    log::Info("step {}/{} | reward {:.3f} | kl {:.4f} | loss {:.4f} | {:.0f} tok/s | staleness {:.2f} | idle {:.0f}% | "
              "{:.2f} s{}{}",
              s.step, total_steps, metrics.reward_mean(), metrics.kl(), metrics.loss(), metrics.tokens_per_s(),
              metrics.staleness_mean(), 100 * metrics.idle_fraction(), step_s,
              dropped > 0 ? absl::StrCat(" | dropped ", dropped, " stale") : "",
              std::isfinite(metrics.loss()) && std::isfinite(metrics.grad_norm()) ? ""
                                                                                  : " | NON-FINITE: update skipped");
    if (l.checkpoint_every() > 0 && s.step % l.checkpoint_every() == 0 && s.step < total_steps) {
      if (absl::Status saved = s.WriteCheckpoint(); !saved.ok()) {
        log::Error("checkpoint at step {} failed (training continues): {}", s.step, std::string(saved.message()));
      }
    }
  }
  if (result.ok() && s.last_checkpoint_step != s.step) {
    if (interrupted) log::Info("stopping at step {}/{}: checkpointing the current state", s.step, total_steps);
    result = s.WriteCheckpoint();
  }
  if (result.ok() && !interrupted) {
    s.service->UpdateProgress([](v1::LearnerStatus* status) { status->set_done(true); });
    s.buffer->Close();  // wakes pushes waiting for room; from now on they are acknowledged, not buffered
    log::Info("training done: {} steps, policy v{}; serving until stopped", s.step, s.version);
  }
  if (!result.ok()) log::Error("training failed: {}", std::string(result.message()));
  s.Finish(result);
}

bool LearnerServer::WaitForTraining(std::chrono::milliseconds timeout) const {
  std::unique_lock<std::mutex> lock(state_->mutex);
  return state_->finished_cv.wait_for(lock, timeout, [&] { return state_->finished; });
}

absl::Status LearnerServer::training_status() const {
  std::lock_guard<std::mutex> lock(state_->mutex);
  return state_->training_status;
}

v1::LearnerStatus LearnerServer::status() const { return state_->service->CurrentStatus(); }

absl::Status LearnerServer::Stop(std::chrono::milliseconds grace) {
  State& s = *state_;
  {
    std::lock_guard<std::mutex> lock(s.mutex);
    if (s.stopped) return s.training_status;
    s.stopped = true;
  }
  s.stop_requested.store(true);
  s.buffer->Close();
  if (s.loop.joinable()) s.loop.join();
  s.publisher->Close();
  if (s.server.server != nullptr) {
    s.server.server->Shutdown(std::chrono::system_clock::now() + grace);
    s.server.server->Wait();
  }
  return training_status();
}

absl::Status RunLearner(const v1::RunConfig& config, const LearnerServerOptions& options) {
  SetTorchThreads(ResolveThreads(config, config.learner().threads()));
  RLJ_ASSIGN_OR_RETURN(std::unique_ptr<LearnerServer> server, LearnerServer::Start(config, options));
  // Serve until a signal; a failed training loop ends the process early.
  while (!WaitForShutdown(std::chrono::milliseconds(500))) {
    if (server->WaitForTraining(std::chrono::milliseconds(0)) && !server->training_status().ok()) break;
  }
  if (ShutdownRequested()) log::Info("shutdown requested; stopping the learner");
  return server->Stop();
}

}  // namespace rlj
