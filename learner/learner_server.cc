// learner_server.cc: builds the learner's parts, serves Learner over gRPC and runs the training loop:
// take a step's groups from the buffer, take a policy-gradient step (on every data-parallel rank), publish
// the next version, checkpoint; resumes from the newest checkpoint that verifies.
#include "learner/learner_server.h"

#include <ATen/Context.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <condition_variable>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>
#include <vector>

#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/config_validate.h"
#include "common/dataset.h"
#include "common/file_util.h"
#include "common/grpc_util.h"
#include "common/log.h"
#include "common/metrics_log.h"
#include "common/run_dir.h"
#include "common/shutdown.h"
#include "common/status.h"
#include "common/telemetry/process_telemetry.h"
#include "common/tokenizer/tokenizer.h"
#include "learner/grpo_trainer.h"
#include "learner/learner_checkpoint.h"
#include "learner/learner_service.h"
#include "learner/prompt_dispatcher.h"
#include "learner/rank_group.h"
#include "learner/rollout_buffer.h"
#include "learner/training_ledger.h"
#include "learner/weight_publisher.h"
#include "model/checkpoint/checkpoint.h"
#include "model/model_source.h"
#include "model/tensor/torch_util.h"
#include "model/transformer.h"

namespace rlj {
namespace {

using Clock = std::chrono::steady_clock;
constexpr int kServerThreads = 16;

double NowUnixSeconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// The training set the dispatcher hands out; every prompt must leave room for sampling.max_new_tokens, and
// the tokenizer's ids must fit the model's vocabulary (else every pushed group would be refused).
absl::StatusOr<std::unique_ptr<PromptDispatcher>> MakeDispatcher(const v1::RunConfig& config, int max_seq_len,
                                                                 int vocab_size) {
  const std::string& path = config.data().train_path();
  if (path.empty()) return std::unique_ptr<PromptDispatcher>();
  RLJ_ASSIGN_OR_RETURN(std::vector<PromptRow> rows, LoadPromptDataset(path));
  RLJ_ASSIGN_OR_RETURN(std::unique_ptr<Tokenizer> tokenizer, MakeTokenizer(config.tokenizer()));
  if (tokenizer->vocab_size() > vocab_size) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the tokenizer (tokenizer.kind ", v1::TokenizerConfig::Kind_Name(config.tokenizer().kind()), ") has ",
        tokenizer->vocab_size(), " token ids but the model's vocab_size is ", vocab_size,
        ": the model cannot represent every id it would be trained on (use the model's own tokenizer, or a model "
        "whose vocab_size is at least the tokenizer's)"));
  }
  const int max_prompt_tokens = max_seq_len - config.sampling().max_new_tokens();
  for (const PromptRow& row : rows) {
    const size_t tokens = tokenizer->EncodePrompt(row.prompt).size();
    if (static_cast<int>(tokens) > max_prompt_tokens) {
      return absl::InvalidArgumentError(absl::StrCat(
          path, ": prompt \"", row.id, "\" is ", tokens,
          " tokens; with sampling.max_new_tokens it must fit model.max_seq_len (at most ", max_prompt_tokens, ")"));
    }
  }
  return std::make_unique<PromptDispatcher>(
      std::move(rows), config.seed(), std::chrono::milliseconds(int64_t{1000} * config.learner().lease_timeout_s()));
}

v1::DType WireDType(v1::LearnerConfig::WireDType dtype) {
  return dtype == v1::LearnerConfig::bfloat16 ? v1::BFLOAT16 : v1::FLOAT32;
}

// Keeps the lines of metrics.jsonl up to `step` (a resumed run redoes the later ones).
absl::Status TruncateMetricsLog(const std::string& path, int64_t step) {
  auto text = ReadFile(path);
  if (!text.ok()) return absl::OkStatus();  // no log yet
  std::istringstream in(*text);
  std::string line, kept;
  int64_t dropped = 0;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    int64_t line_step = -1;
    try {
      const nlohmann::json json = nlohmann::json::parse(line);
      const auto& value = json.at("step");
      line_step = value.is_string() ? std::stoll(value.get<std::string>()) : value.get<int64_t>();
    } catch (const std::exception&) {
      ++dropped;  // a torn last line
      continue;
    }
    if (line_step > step) {
      ++dropped;
      continue;
    }
    kept += line + "\n";
  }
  if (dropped > 0) log::Info("metrics log: dropped {} lines past step {} (they are trained again)", dropped, step);
  return WriteFileAtomically(path, kept);
}

// The item ids of leased groups.
std::vector<uint64_t> LeasedItems(const std::vector<v1::RolloutGroup>& groups) {
  std::vector<uint64_t> items;
  for (const auto& group : groups) {
    if (!group.lease_id().empty()) items.push_back(group.item_id());
  }
  return items;
}

constexpr char kTrainingStoppedPayload[] = "type.rlj.dev/rlj.TrainingStopped";

// The error that ends training after `in_a_row` non-finite steps ending at `step`.
absl::Status TooManyNonFiniteSteps(int64_t step, int64_t in_a_row, int64_t total_skipped) {
  absl::Status status = absl::AbortedError(absl::StrCat(
      "step ", step, ": ", in_a_row,
      " steps in a row had a non-finite loss or gradient norm and were skipped (learner.max_nonfinite_steps_in_a_row "
      "= ",
      in_a_row, "; ", total_skipped,
      " skipped in all): training stopped. The last checkpoint holds the weights before "
      "them; lower learner.lr, check the rewards and behaviour log-probs, or raise the limit (0 = never stop)"));
  status.SetPayload(kTrainingStoppedPayload, absl::Cord("1"));
  return status;
}

// The groups the learner took from the buffer for one step, how long it waited for them and how many stale
// ones it dropped meanwhile.
struct StepGroups {
  std::vector<v1::RolloutGroup> groups;
  double waited_s = 0;
  int64_t dropped = 0;
};

// How old a step's groups are: in policy versions behind the learner's `version` and in seconds since they
// were sampled; and the judge's time on them.
struct GroupAges {
  double staleness_sum = 0, staleness_max = 0, seconds_sum = 0, seconds_max = 0, judge_ms_sum = 0;
};

GroupAges AgesOf(const std::vector<v1::RolloutGroup>& groups, int64_t version, double now_unix) {
  GroupAges ages;
  for (const auto& group : groups) {
    const double versions = static_cast<double>(version - group.policy_version());
    ages.staleness_sum += versions;
    ages.staleness_max = std::max(ages.staleness_max, versions);
    const double seconds = group.sampled_unix_s() > 0 ? std::max(0.0, now_unix - group.sampled_unix_s()) : 0.0;
    ages.seconds_sum += seconds;
    ages.seconds_max = std::max(ages.seconds_max, seconds);
    ages.judge_ms_sum += group.judge_ms();
  }
  return ages;
}

}  // namespace

bool IsTrainingStoppedError(const absl::Status& status) {
  return !status.ok() && status.GetPayload(kTrainingStoppedPayload).has_value();
}

struct LearnerServer::State {
  v1::RunConfig config;
  LearnerServerOptions options;
  RunDir run_dir{""};
  Transformer policy{nullptr};
  v1::ModelConfig model_proto;
  std::unique_ptr<RankGroup> ranks;
  std::unique_ptr<GrpoTrainer> trainer;
  std::unique_ptr<RolloutBuffer> buffer;
  std::unique_ptr<WeightPublisher> publisher;
  std::unique_ptr<PromptDispatcher> dispatcher;
  std::unique_ptr<MetricsLogWriter> metrics_log;
  std::unique_ptr<TrainingLedger> ledger;  // what each step trained on, durable before its version is published
  std::unique_ptr<telemetry::ProcessTelemetry> telemetry;  // /metrics and TensorBoard scalars per step
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
  int64_t nonfinite_in_a_row = 0;  // trained steps skipped for a non-finite loss/norm since the last applied update
  int64_t skipped_batches_in_a_row = 0;  // batches with nothing to train on since the last step

  // The trainer's running counters, as the Status RPC reports them.
  void ReportTrainerCounters(v1::LearnerStatus* status) const {
    status->set_groups_skipped_no_signal(trainer->groups_skipped_no_signal());
    status->set_samples_masked(trainer->samples_masked());
    status->set_steps_skipped_nonfinite(trainer->nonfinite_steps_skipped());
    status->set_batches_skipped_all_masked(trainer->batches_skipped_all_masked());
    status->set_batches_skipped_no_signal(trainer->batches_skipped_no_signal());
  }

  // A batch the trainer could not learn from (every sample masked, or no reward difference in any group) is
  // not a step: no update, no new version, nothing toward learner.steps. Its prompts are done with (a masked
  // batch's go back to be sampled again). Too many in a row stop the run, saying why.
  absl::Status SkipBatch(const std::vector<v1::RolloutGroup>& groups, const v1::StepMetrics& metrics) {
    const bool all_masked = metrics.batch_skipped() == "all_masked";
    if (dispatcher && all_masked) {
      for (uint64_t item : LeasedItems(groups)) dispatcher->Return(item);
    } else if (dispatcher) {
      dispatcher->MarkTrained(LeasedItems(groups));
    }
    ++skipped_batches_in_a_row;
    service->UpdateProgress([&](v1::LearnerStatus* status) {
      ReportTrainerCounters(status);
      *status->mutable_last() = metrics;
      status->mutable_last()->set_step(step);
      status->mutable_last()->set_version(version);
    });
    RLJ_EVERY(10, log::Warn("batch skipped before step {} ({} in a row): {} of {} samples masked, {} of {} groups "
                            "without a reward difference; nothing to train on, so no step is taken",
                            step + 1, skipped_batches_in_a_row, metrics.masked_samples(), metrics.samples(),
                            metrics.groups_skipped_no_signal(), metrics.groups()));
    const int limit = config.learner().max_skipped_batches_in_a_row();
    if (limit <= 0 || skipped_batches_in_a_row < limit) return absl::OkStatus();
    absl::Status stopped = absl::AbortedError(absl::StrCat(
        "after step ", step, ": ", skipped_batches_in_a_row, " batches in a row had nothing to train on ",
        "(learner.max_skipped_batches_in_a_row = ", limit, "; ", trainer->batches_skipped_all_masked(),
        " skipped in all because every verdict failed, ", trainer->batches_skipped_no_signal(),
        " because every group's rewards were equal): training stopped. ",
        all_masked ? "The judge failed every sample: see `rlj logs RUN errors`."
                   : "The task may be too hard or too easy for the student, or the judge gives one reward to all."));
    stopped.SetPayload(kTrainingStoppedPayload, absl::Cord("1"));
    return stopped;
  }

  absl::Status Publish() {
    RLJ_ASSIGN_OR_RETURN(NamedTensors tensors, TorchCall("collect the policy's parameters", [&] {
                           return absl::StatusOr<NamedTensors>(NamedParameters(policy));
                         }));
    return publisher->Publish(version, model_proto, tensors);
  }

  absl::Status WriteCheckpoint() {
    const auto start = Clock::now();
    LearnerCheckpointContents contents;
    contents.step = step;
    contents.version = version;
    RLJ_ASSIGN_OR_RETURN(contents.trainer, trainer->ExportState());
    if (dispatcher) contents.dispatcher = dispatcher->SaveState();
    RLJ_ASSIGN_OR_RETURN(const std::string dir, WriteLearnerCheckpoint(run_dir.checkpoints_dir(), policy, contents,
                                                                       config.learner().keep_checkpoints()));
    last_checkpoint_step = step;
    // No resume starts before the oldest checkpoint kept: the step inputs up to it are not needed again.
    if (const auto kept = ListStepCheckpoints(run_dir.checkpoints_dir()); ledger && !kept.empty()) {
      ledger->Prune(kept.front().first);
    }
    service->UpdateProgress([&](v1::LearnerStatus* status) { status->set_checkpoint(dir); });
    log::Info("checkpoint {} (v{}) in {:.2f} s", dir, version,
              std::chrono::duration<double>(Clock::now() - start).count());
    return absl::OkStatus();
  }

  // Data-parallel: tells every other rank what comes next.
  absl::Status Broadcast(v1::RankWork::Kind kind, const std::vector<v1::RolloutGroup>* groups) {
    if (!ranks) return absl::OkStatus();
    v1::RankWork work;
    work.set_kind(kind);
    work.set_step(step + 1);
    if (groups != nullptr) {
      for (const auto& group : *groups) *work.add_groups() = group;
    }
    std::string bytes = work.SerializeAsString();
    return Annotate(ranks->BroadcastBytes(&bytes, 0), "telling the other learner ranks");
  }

  // Makes the step just taken durable in the training ledger; before its version is published, so a learner
  // killed later can take it again and never serve a version lower than one an actor has seen.
  absl::Status RecordStep(const std::vector<v1::RolloutGroup>& groups, const v1::StepMetrics& metrics) {
    StepInputs inputs;
    inputs.step = step;
    inputs.version = version;
    inputs.update_applied = std::isfinite(metrics.loss()) && std::isfinite(metrics.grad_norm());
    inputs.groups = groups;
    if (dispatcher) inputs.dispatcher = dispatcher->SaveState();
    return ledger->Record(inputs);
  }

  // Takes again the steps a killed learner had taken (and published) after the checkpoint it resumed from,
  // on the same groups, and puts the dispatcher where it was after the last of them.
  absl::Status Replay(std::vector<StepInputs>& replay) {
    if (replay.empty()) return absl::OkStatus();
    const auto start = Clock::now();
    const int64_t first = step + 1;
    for (StepInputs& inputs : replay) {
      RLJ_RETURN_IF_ERROR(Broadcast(v1::RankWork::STEP, &inputs.groups));
      absl::StatusOr<v1::StepMetrics> stepped = trainer->Step(inputs.groups);
      if (!stepped.ok()) return Annotate(stepped.status(), absl::StrCat("replaying step ", step + 1));
      ++step;
      ++version;
      v1::StepMetrics metrics = *std::move(stepped);
      metrics.set_step(step);
      metrics.set_version(version);
      metrics.set_time_unix_s(NowUnixSeconds());
      if (absl::Status logged = metrics_log->Append(metrics); !logged.ok()) {
        log::Error("step metrics not logged: {}", std::string(logged.message()));
      }
      telemetry->RecordLearnerStep(metrics);
      RLJ_RETURN_IF_ERROR(ledger->Record(inputs, /*inputs_on_disk=*/true));
    }
    if (dispatcher && !replay.back().dispatcher.empty()) {
      RLJ_RETURN_IF_ERROR(Annotate(dispatcher->RestoreState(replay.back().dispatcher), "replayed step inputs"));
    }
    log::Info("replayed steps {}..{} (recorded after the checkpoint) in {:.2f} s: back at policy v{}", first, step,
              std::chrono::duration<double>(Clock::now() - start).count(), version);
    return absl::OkStatus();
  }

  // Takes `count` groups from the buffer (stale ones go back to the dispatcher, to be sampled again fresher),
  // telling the other ranks now and then that it is still waiting; fewer when stopped or the buffer closes.
  absl::Status TakeGroups(int64_t count, StepGroups* taken, Clock::time_point* last_heartbeat) {
    while (static_cast<int64_t>(taken->groups.size()) < count && !stop_requested.load()) {
      RolloutBuffer::TakeResult result =
          buffer->Take(count - static_cast<int64_t>(taken->groups.size()), version, config.learner().max_staleness(),
                       Clock::now() + options.take_timeout);
      taken->waited_s += result.waited_s;
      taken->dropped += result.dropped_stale;
      if (dispatcher) {
        for (uint64_t item : result.dropped_items) dispatcher->Return(item);  // sampled again, fresher
      }
      for (auto& group : result.groups) taken->groups.push_back(std::move(group));
      if (result.closed) break;
      if (ranks && Clock::now() - *last_heartbeat > options.rank_heartbeat) {
        *last_heartbeat = Clock::now();
        RLJ_RETURN_IF_ERROR(Broadcast(v1::RankWork::IDLE, nullptr));
      }
    }
    return absl::OkStatus();
  }

  // A step the trainer took: its prompts are done with, the step and version advance, and it is recorded
  // in the ledger before its version is published.
  absl::Status CommitStep(const std::vector<v1::RolloutGroup>& groups, const v1::StepMetrics& stepped) {
    skipped_batches_in_a_row = 0;
    if (dispatcher) dispatcher->MarkTrained(LeasedItems(groups));
    ++step;
    ++version;
    if (absl::Status recorded = RecordStep(groups, stepped); !recorded.ok()) {
      return Annotate(recorded, absl::StrCat("recording step ", step, " before publishing v", version));
    }
    if (absl::Status published = Publish(); !published.ok()) {
      return Annotate(published, absl::StrCat("publishing v", version));
    }
    return absl::OkStatus();
  }

  // The trainer's metrics of the step just committed, with its timings and the age of its groups.
  v1::StepMetrics StepMetricsOf(v1::StepMetrics metrics, const StepGroups& taken, const GroupAges& ages,
                                double step_s) const {
    const double count = static_cast<double>(taken.groups.size());
    metrics.set_step(step);
    metrics.set_staleness_mean(ages.staleness_sum / count);
    metrics.set_staleness_max(ages.staleness_max);
    metrics.set_staleness_s_mean(ages.seconds_sum / count);
    metrics.set_staleness_s_max(ages.seconds_max);
    metrics.set_judge_ms_mean(ages.judge_ms_sum / count);
    metrics.set_step_s(step_s);
    metrics.set_idle_fraction(step_s > 0 ? std::min(1.0, taken.waited_s / step_s) : 0.0);
    metrics.set_version(version);
    metrics.set_time_unix_s(NowUnixSeconds());
    return metrics;
  }

  // The step in metrics.jsonl, /metrics and TensorBoard, the Status RPC, and one log line.
  void ReportStep(const v1::StepMetrics& metrics, int64_t dropped) {
    if (absl::Status logged = metrics_log->Append(metrics); !logged.ok()) {
      RLJ_EVERY(30, log::Error("step metrics not logged: {}", std::string(logged.message())));
    }
    telemetry->RecordLearnerStep(metrics);
    service->UpdateProgress([&](v1::LearnerStatus* status) {
      status->set_step(step);
      status->set_version(version);
      *status->mutable_last() = metrics;
      ReportTrainerCounters(status);
    });
    log::Info(
        "step {}/{} | reward {:.3f} | kl {:.4f} | loss {:.4f} | {:.0f} tok/s | staleness {:.2f} v {:.1f} s | "
        "idle {:.0f}% | {:.2f} s{}{}",
        step, config.learner().steps(), metrics.reward_mean(), metrics.kl(), metrics.loss(), metrics.tokens_per_s(),
        metrics.staleness_mean(), metrics.staleness_s_mean(), 100 * metrics.idle_fraction(), metrics.step_s(),
        dropped > 0 ? absl::StrCat(" | dropped ", dropped, " stale") : "",
        std::isfinite(metrics.loss()) && std::isfinite(metrics.grad_norm()) ? "" : " | NON-FINITE: update skipped");
  }

  // Counts steps skipped for a non-finite loss or norm; too many in a row end training.
  absl::Status CountNonFinite(const v1::StepMetrics& metrics) {
    // A step that applied an update ends a run of skipped ones; a step without signal (nothing to train)
    // neither adds to it nor ends it.
    if (metrics.update_skipped_nonfinite()) {
      ++nonfinite_in_a_row;
    } else if (metrics.trained_samples() > 0) {
      nonfinite_in_a_row = 0;
    }
    const int64_t limit = config.learner().max_nonfinite_steps_in_a_row();
    if (limit > 0 && nonfinite_in_a_row >= limit) {
      // No checkpoint of this state: the newest one predates the failing steps.
      return TooManyNonFiniteSteps(step, nonfinite_in_a_row, trainer->nonfinite_steps_skipped());
    }
    return absl::OkStatus();
  }

  // learner.checkpoint_every: a failed write is logged and training goes on (the previous one is intact).
  void CheckpointWhenDue() {
    const v1::LearnerConfig& l = config.learner();
    if (l.checkpoint_every() > 0 && step % l.checkpoint_every() == 0 && step < l.steps()) {
      if (absl::Status saved = WriteCheckpoint(); !saved.ok()) {
        log::Error("CHECKPOINT WRITE FAILED at step {} (training continues; the previous checkpoint is intact): {}",
                   step, std::string(saved.message()));
      }
    }
  }

  // After the loop: tells the other ranks to stop, checkpoints the state reached, and reports done (or the
  // failure).
  void EndTraining(absl::Status result, bool interrupted) {
    if (absl::Status sent = Broadcast(v1::RankWork::STOP, nullptr); !sent.ok() && result.ok()) {
      log::Warn("the other ranks were not told to stop: {}", std::string(sent.message()));
    }
    if (result.ok() && last_checkpoint_step != step) {
      if (interrupted)
        log::Info("stopping at step {}/{}: checkpointing the current state", step, config.learner().steps());
      result = WriteCheckpoint();
    }
    if (result.ok() && !interrupted) {
      service->UpdateProgress([](v1::LearnerStatus* status) { status->set_done(true); });
      buffer->Close();  // wakes pushes waiting for room; from now on they are acknowledged, not buffered
      log::Info("training done: {} steps, policy v{}; serving until stopped", step, version);
    }
    if (!result.ok()) log::Error("training failed: {}", std::string(result.message()));
    Finish(result);
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
  if (options.ranks.rank != 0) return absl::InvalidArgumentError("LearnerServer runs on rank 0 only");
  auto state = std::make_unique<State>();
  state->config = config;
  state->options = options;
  state->run_dir = RunDir(options.run_dir);
  RLJ_RETURN_IF_ERROR(state->run_dir.Create());
  const v1::LearnerConfig& l = config.learner();

  RLJ_RETURN_IF_ERROR(LoadStartingModel(config, &state->policy));
  state->model_proto = state->policy->config().ToProto();
  if (options.ranks.world_size > 1) {
    RankGroupOptions rank_options = options.ranks;
    RLJ_ASSIGN_OR_RETURN(const c10::Device device,
                         ResolveDevice(l.has_device() ? l.device() : config.runtime().device()));
    rank_options.device = device.is_cuda() ? "cuda" : "cpu";
    RLJ_ASSIGN_OR_RETURN(state->ranks, RankGroup::Connect(rank_options));
    log::Info("rank 0 of {} data-parallel learner ranks ({})", state->ranks->world_size(), state->ranks->backend());
  }
  RLJ_ASSIGN_OR_RETURN(state->trainer, GrpoTrainer::Create(config, state->policy, state->ranks.get()));
  RLJ_ASSIGN_OR_RETURN(state->dispatcher,
                       MakeDispatcher(config, state->policy->config().max_seq_len, state->policy->config().vocab_size));
  state->buffer = std::make_unique<RolloutBuffer>(l.buffer_groups());
  WeightPublisherOptions publisher_options;
  publisher_options.chunk_bytes = static_cast<size_t>(l.weight_chunk_kib()) * 1024;
  publisher_options.wire_dtype = WireDType(l.wire_dtype());
  state->publisher = std::make_unique<WeightPublisher>(publisher_options);

  int64_t resumed_from = 0;
  if (options.resume) {
    RLJ_ASSIGN_OR_RETURN(std::optional<ResumePoint> point, FindResumePoint(state->run_dir.checkpoints_dir()));
    if (!point) {
      log::Info("--resume: no checkpoint in {}; starting from the beginning", state->run_dir.checkpoints_dir());
      RLJ_RETURN_IF_ERROR(TruncateMetricsLog(state->run_dir.metrics_path(), 0));
    } else {
      RLJ_RETURN_IF_ERROR(Annotate(LoadNamedTensors(state->policy, point->weights), point->dir));
      RLJ_RETURN_IF_ERROR(Annotate(state->trainer->ImportState(point->contents.trainer), point->dir));
      if (state->dispatcher && !point->contents.dispatcher.empty()) {
        RLJ_RETURN_IF_ERROR(Annotate(state->dispatcher->RestoreState(point->contents.dispatcher), point->dir));
      }
      state->step = point->contents.step;
      state->version = point->contents.version;
      state->last_checkpoint_step = state->step;
      resumed_from = state->step;
      RLJ_RETURN_IF_ERROR(TruncateMetricsLog(state->run_dir.metrics_path(), state->step));
      log::Info("resumed from {} (step {}, policy v{}{})", point->dir, state->step, state->version,
                point->refused.empty() ? "" : absl::StrCat("; refused: ", absl::StrJoin(point->refused, "; ")));
    }
  }
  std::vector<StepInputs> replay;  // steps taken and published after the checkpoint: taken again below
  if (options.resume) {
    RLJ_ASSIGN_OR_RETURN(state->ledger,
                         TrainingLedger::Resume(state->run_dir.root(), state->step, state->version, &replay));
  } else {
    RLJ_ASSIGN_OR_RETURN(state->ledger, TrainingLedger::StartFresh(state->run_dir.root()));
  }
  if (state->ranks) RLJ_RETURN_IF_ERROR(state->trainer->SynchronizeFromRankZero());
  RLJ_ASSIGN_OR_RETURN(state->metrics_log, MetricsLogWriter::Open(state->run_dir.metrics_path()));
  RLJ_ASSIGN_OR_RETURN(state->telemetry, telemetry::ProcessTelemetry::Start(config, state->run_dir.root(), "learner",
                                                                            "learner", /*with_tensorboard=*/true));
  RLJ_RETURN_IF_ERROR(state->Replay(replay));
  RLJ_RETURN_IF_ERROR(state->Publish());

  LearnerServiceOptions service_options;
  service_options.vocab_size = state->policy->config().vocab_size;
  service_options.max_seq_len = state->policy->config().max_seq_len;
  service_options.max_staleness = l.max_staleness();
  service_options.version_from_progress = true;
  state->service = std::make_unique<LearnerService>(service_options, state->buffer.get(), state->publisher.get(),
                                                    state->dispatcher.get());
  state->service->UpdateProgress([&](v1::LearnerStatus* status) {
    status->set_total_steps(l.steps());
    status->set_step(state->step);
    status->set_version(state->version);
    status->set_ranks(options.ranks.world_size);
    status->set_resumed_from_step(resumed_from);
    state->ReportTrainerCounters(status);
  });

  ServerOptions server_options;
  server_options.listen = options.listen.empty() ? l.listen() : options.listen;
  server_options.max_concurrent_rpcs = kServerThreads;
  RLJ_ASSIGN_OR_RETURN(state->server, StartServer(server_options, {state->service.get()}));
  std::unique_ptr<LearnerServer> server(new LearnerServer(std::move(state)));
  State& s = *server->state_;
  log::Info("learner serving on {}: {} parameters on {}, steps {}..{} of {} groups, policy v{} published ({:.1f} MB){}",
            s.server.address, s.policy->config().num_parameters(), s.trainer->device(), s.step + 1, l.steps(),
            l.groups_per_step(), s.version, s.publisher->Latest()->manifest().total_bytes() / 1e6,
            s.dispatcher ? absl::StrCat(", ", s.dispatcher->size(), " training prompts") : "");
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
  const int64_t total_steps = s.config.learner().steps();
  const int64_t groups_per_step = s.config.learner().groups_per_step();
  absl::Status result = absl::OkStatus();
  bool interrupted = false;
  auto last_heartbeat = Clock::now();
  while (s.step < total_steps) {
    const auto step_start = Clock::now();
    StepGroups taken;
    result = s.TakeGroups(groups_per_step, &taken, &last_heartbeat);
    if (!result.ok()) break;
    if (s.stop_requested.load() || static_cast<int64_t>(taken.groups.size()) < groups_per_step) {
      if (s.dispatcher) {
        for (uint64_t item : LeasedItems(taken.groups)) s.dispatcher->Return(item);
      }
      interrupted = true;
      break;
    }
    const GroupAges ages = AgesOf(taken.groups, s.version, NowUnixSeconds());
    result = s.Broadcast(v1::RankWork::STEP, &taken.groups);
    if (!result.ok()) break;
    last_heartbeat = Clock::now();
    absl::StatusOr<v1::StepMetrics> stepped = s.trainer->Step(taken.groups);
    if (!stepped.ok()) {
      result = Annotate(stepped.status(), absl::StrCat("step ", s.step + 1));
      break;
    }
    if (!stepped->batch_skipped().empty()) {
      result = s.SkipBatch(taken.groups, *stepped);
      if (!result.ok()) break;
      continue;
    }
    result = s.CommitStep(taken.groups, *stepped);
    if (!result.ok()) break;
    const double step_s = std::chrono::duration<double>(Clock::now() - step_start).count();
    const v1::StepMetrics metrics = s.StepMetricsOf(*std::move(stepped), taken, ages, step_s);
    s.ReportStep(metrics, taken.dropped);
    result = s.CountNonFinite(metrics);
    if (!result.ok()) break;
    s.CheckpointWhenDue();
  }
  s.EndTraining(std::move(result), interrupted);
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
  if (options.ranks.rank != 0) return RunLearnerRank(config, options);
  SetTorchThreads(ResolveThreads(config, config.learner().threads()));
  RLJ_ASSIGN_OR_RETURN(std::unique_ptr<LearnerServer> server, LearnerServer::Start(config, options));
  // Serve until a signal; a failed training loop ends the process early.
  while (!WaitForShutdown(std::chrono::milliseconds(500))) {
    if (server->WaitForTraining(std::chrono::milliseconds(0)) && !server->training_status().ok()) break;
  }
  if (ShutdownRequested()) log::Info("shutdown requested; stopping the learner");
  return server->Stop();
}

absl::Status RunLearnerRank(const v1::RunConfig& config, const LearnerServerOptions& options) {
  SetTorchThreads(ResolveThreads(config, config.learner().threads()));
  const v1::LearnerConfig& l = config.learner();
  Transformer policy{nullptr};
  RLJ_RETURN_IF_ERROR(LoadStartingModel(config, &policy));
  RankGroupOptions rank_options = options.ranks;
  RLJ_ASSIGN_OR_RETURN(const c10::Device device,
                       ResolveDevice(l.has_device() ? l.device() : config.runtime().device()));
  rank_options.device = device.is_cuda() ? "cuda" : "cpu";
  RLJ_ASSIGN_OR_RETURN(std::unique_ptr<RankGroup> ranks, RankGroup::Connect(rank_options));
  RLJ_ASSIGN_OR_RETURN(std::unique_ptr<GrpoTrainer> trainer, GrpoTrainer::Create(config, policy, ranks.get()));
  RLJ_RETURN_IF_ERROR(trainer->SynchronizeFromRankZero());
  log::Info("learner rank {} of {} ({}) ready", ranks->rank(), ranks->world_size(), ranks->backend());
  int64_t steps = 0;
  while (true) {
    std::string bytes;
    RLJ_RETURN_IF_ERROR(Annotate(ranks->BroadcastBytes(&bytes, 0), "waiting for rank 0"));
    v1::RankWork work;
    if (!work.ParseFromString(bytes)) return absl::DataLossError("rank 0 sent an unreadable step");
    if (work.kind() == v1::RankWork::STOP) break;
    if (work.kind() == v1::RankWork::IDLE) continue;
    const std::vector<v1::RolloutGroup> groups(work.groups().begin(), work.groups().end());
    absl::StatusOr<v1::StepMetrics> stepped = trainer->Step(groups);
    if (!stepped.ok()) return Annotate(stepped.status(), absl::StrCat("rank ", ranks->rank(), " step ", work.step()));
    const v1::StepMetrics& metrics = *stepped;
    if (!metrics.batch_skipped().empty()) continue;  // rank 0 skips the batch too: not a step
    ++steps;
    RLJ_EVERY(30, log::Info("rank {}: step {} ({} micro-batches, {:.2f} s)", ranks->rank(), work.step(),
                            metrics.micro_batches(), metrics.compute_s()));
  }
  log::Info("learner rank {}: rank 0 is done after {} steps", ranks->rank(), steps);
  return absl::OkStatus();
}

}  // namespace rlj
