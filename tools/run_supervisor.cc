// run_supervisor.cc: process orchestration for `rlj run`.
#include "tools/run_supervisor.h"

#include <unistd.h>

#include <cmath>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "actor/evaluator.h"
#include "common/checkpoint/checkpoint.h"
#include "common/config_loader.h"
#include "common/config_validate.h"
#include "common/dataset.h"
#include "common/file_util.h"
#include "common/grpc_util.h"
#include "common/log.h"
#include "common/metrics_log.h"
#include "common/model/transformer.h"
#include <torch/utils.h>
#include "common/run_dir.h"
#include "common/shutdown.h"
#include "common/status.h"
#include "common/subprocess.h"
#include "common/tensor/torch_util.h"
#include "common/tokenizer/tokenizer.h"
#include "rlj/v1/learner.grpc.pb.h"

namespace rlj::tools {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr int kMaxRestarts = 5;

// One supervised child: how to start it again, and its restart history.
struct Child {
  std::string name;
  std::vector<std::string> argv;
  std::string console_path;
  bool restartable = false;
  std::unique_ptr<Subprocess> process;
  int restarts = 0;
  Clock::time_point restart_at{};
};

// Environment for children. Several processes share the cores, so OpenMP threads must sleep rather than
// spin while waiting (spinning made learner steps 3-4x slower under load); libgomp reads this at load
// time, so it can only be set from outside the process.
std::vector<std::string> ChildEnvironment() {
  std::vector<std::string> env;
  if (std::getenv("OMP_WAIT_POLICY") == nullptr) env.push_back("OMP_WAIT_POLICY=PASSIVE");
  return env;
}

absl::Status StartChild(Child* child) {
  RLJ_ASSIGN_OR_RETURN(child->process, Subprocess::Spawn(child->argv, child->console_path, ChildEnvironment()));
  log::Info("started {} (pid {})", child->name, child->process->pid());
  return absl::OkStatus();
}

std::string ChildFailure(const Child& child, const ExitInfo& exit) {
  return absl::StrCat(child.name, " ended (", exit.Describe(), "); last lines of ", child.console_path, ":\n",
                      TailOfFile(child.console_path, 15));
}

// Waits for a child's endpoint file, then for its health check; fails early if the child dies.
absl::StatusOr<std::string> AwaitEndpoint(Child* child, const RunDir& run_dir, const std::string& service,
                                          milliseconds timeout) {
  const auto give_up = Clock::now() + timeout;
  while (true) {
    if (auto exit = child->process->Poll()) return absl::UnavailableError(ChildFailure(*child, *exit));
    if (ShutdownRequested()) return absl::CancelledError("stopped while starting " + child->name);
    auto address = run_dir.ReadEndpoint(service);
    if (address.ok()) {
      RLJ_RETURN_IF_ERROR(WaitForHealthy(*address, std::chrono::duration_cast<milliseconds>(give_up - Clock::now())));
      return *address;
    }
    if (Clock::now() > give_up) {
      return absl::DeadlineExceededError(absl::StrCat(child->name, " did not report its address within ",
                                                      timeout.count() / 1000, " s; see ", child->console_path));
    }
    std::this_thread::sleep_for(milliseconds(50));  // polling a file another process writes
  }
}

// The student as the run starts: model.init_checkpoint, else the seeded random init the learner also makes.
// (An output parameter: StatusOr<Transformer> is ambiguous, since ModuleHolder converts from anything.)
absl::Status LoadStartingModel(const v1::RunConfig& config, Transformer* model) {
  if (!config.model().init_checkpoint().empty()) {
    RLJ_ASSIGN_OR_RETURN(LoadedCheckpoint checkpoint, LoadCheckpoint(config.model().init_checkpoint()));
    *model = checkpoint.model;
    return absl::OkStatus();
  }
  RLJ_ASSIGN_OR_RETURN(TransformerConfig shape, TransformerConfig::FromProto(config.model()));
  return TorchCall("building the initial model", [&] {
    torch::manual_seed(config.seed());
    *model = Transformer(shape);
  });
}

absl::StatusOr<nlohmann::json> Evaluate(Transformer& model, const v1::RunConfig& config, const Tokenizer& tokenizer,
                                        const std::vector<PromptRow>& rows, const std::string& label) {
  const auto start = Clock::now();
  RLJ_ASSIGN_OR_RETURN(EvalResult result, EvaluateAccuracy(model, tokenizer, rows, EvalOptionsFromConfig(config)));
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  log::Info("eval {}: accuracy {:.4f} ({} / {}) in {:.1f} s", label, result.accuracy(), result.correct, result.total, seconds);
  nlohmann::json examples = nlohmann::json::array();
  for (size_t i = 0; i < result.examples.size() && i < 8; ++i) {
    const EvalExample& e = result.examples[i];
    examples.push_back({{"prompt", e.prompt}, {"completion", e.completion}, {"reference", e.reference}, {"correct", e.correct}});
  }
  return nlohmann::json{{"accuracy", result.accuracy()}, {"correct", result.correct}, {"total", result.total},
                        {"mean_completion_tokens", result.mean_completion_tokens}, {"seconds", seconds},
                        {"examples", examples}};
}

std::string FormatDuration(double seconds) {
  const int s = static_cast<int>(std::max(0.0, seconds));
  return absl::StrFormat("%02d:%02d", s / 60, s % 60);
}

std::string ProgressLine(const v1::LearnerStatus& status, double elapsed_s, double training_start_s) {
  const v1::StepMetrics& m = status.last();
  std::string eta = "--:--";
  if (status.step() > 0 && status.total_steps() > status.step()) {
    const double per_step = (elapsed_s - training_start_s) / status.step();
    eta = FormatDuration(per_step * (status.total_steps() - status.step()));
  }
  return absl::StrFormat("step %d/%d v%d | reward %.3f ±%.3f | kl %.4f | train tok/s %.0f | sample tok/s %.0f | "
                         "groups %d (stale %d, masked samples %d) | %s ETA %s",
                         status.step(), status.total_steps(), status.version(), m.reward_mean(), m.reward_std(), m.kl(),
                         m.tokens_per_s(), status.sample_tokens_per_s(), status.groups_received(),
                         status.groups_dropped_stale(), status.samples_masked(), FormatDuration(elapsed_s), eta);
}

}  // namespace

void MakePathsAbsolute(v1::RunConfig* config) {
  auto absolute = [](const std::string& path) {
    if (path.empty()) return path;
    std::error_code ec;
    const auto result = std::filesystem::absolute(path, ec);
    return ec ? path : result.lexically_normal().string();
  };
  config->mutable_data()->set_train_path(absolute(config->data().train_path()));
  if (config->data().has_eval_path()) config->mutable_data()->set_eval_path(absolute(config->data().eval_path()));
  if (config->model().has_init_checkpoint()) {
    config->mutable_model()->set_init_checkpoint(absolute(config->model().init_checkpoint()));
  }
  config->set_runs_root(absolute(config->runs_root()));
}

absl::Status SuperviseRun(const v1::RunConfig& input_config, const SupervisorOptions& options) {
  const auto run_start = Clock::now();
  auto elapsed = [&] { return std::chrono::duration<double>(Clock::now() - run_start).count(); };
  v1::RunConfig config = input_config;
  MakePathsAbsolute(&config);
  const RunDir run_dir(std::filesystem::absolute(options.run_dir).string());
  RLJ_RETURN_IF_ERROR(run_dir.Create());
  RLJ_RETURN_IF_ERROR(WriteFileAtomically(run_dir.config_path(), MessageToYaml(config)));

  // Check inputs before starting anything, so bad data fails here with its own message.
  if (config.data().train_path().empty()) return absl::InvalidArgumentError("data.train_path: required by rlj run");
  RLJ_RETURN_IF_ERROR(LoadPromptDataset(config.data().train_path()).status());
  std::vector<PromptRow> eval_rows;
  const bool evaluate = config.eval().before_and_after() && !config.data().eval_path().empty();
  if (evaluate) {
    RLJ_ASSIGN_OR_RETURN(eval_rows, LoadPromptDataset(config.data().eval_path()));
    if (config.eval().max_prompts() > 0 && static_cast<int>(eval_rows.size()) > config.eval().max_prompts()) {
      eval_rows.resize(static_cast<size_t>(config.eval().max_prompts()));
    }
  }
  RLJ_ASSIGN_OR_RETURN(std::unique_ptr<Tokenizer> tokenizer, MakeTokenizer(config.tokenizer()));
  SetTorchThreads(ResolveThreads(config, 0));

  nlohmann::json summary = {{"name", config.name()}, {"run_dir", run_dir.root()}, {"config", run_dir.config_path()}};
  if (evaluate) {
    Transformer initial{nullptr};
    RLJ_RETURN_IF_ERROR(LoadStartingModel(config, &initial));
    RLJ_ASSIGN_OR_RETURN(summary["eval_before"], Evaluate(initial, config, *tokenizer, eval_rows, "before RL"));
    std::fprintf(stderr, "eval before RL: accuracy %.3f on %zu held-out prompts\n",
                 summary["eval_before"]["accuracy"].get<double>(), eval_rows.size());
  }
  if (ShutdownRequested()) return absl::OkStatus();

  const std::string self = SelfExecutablePath();
  const std::string config_path = run_dir.config_path();
  std::filesystem::remove_all(run_dir.endpoints_dir());
  RLJ_RETURN_IF_ERROR(MakeDirectories(run_dir.endpoints_dir()));

  auto make_child = [&](const std::string& name, std::vector<std::string> args, bool restartable) {
    auto child = std::make_unique<Child>();
    child->name = name;
    child->argv = {self};
    child->argv.insert(child->argv.end(), args.begin(), args.end());
    child->console_path = run_dir.logs_dir() + "/" + name + ".console";
    child->restartable = restartable;
    return child;
  };

  std::unique_ptr<Child> learner = make_child("learner", {"learner", config_path, "--run-dir", run_dir.root()}, false);
  RLJ_RETURN_IF_ERROR(StartChild(learner.get()));
  RLJ_ASSIGN_OR_RETURN(std::string learner_address, AwaitEndpoint(learner.get(), run_dir, "learner", milliseconds(180000)));
  log::Info("learner at {}", learner_address);

  std::unique_ptr<Child> judge =
      make_child("judge-0", {"judge", config_path, "--run-dir", run_dir.root(), "--replica", "judge-0"}, true);
  RLJ_RETURN_IF_ERROR(StartChild(judge.get()));
  RLJ_ASSIGN_OR_RETURN(std::string judge_address, AwaitEndpoint(judge.get(), run_dir, "judge-0", milliseconds(60000)));
  // A restarted judge must come back on the same address the actors already use.
  judge->argv.insert(judge->argv.end(), {"--listen", judge_address});
  log::Info("judge at {}", judge_address);

  std::vector<std::unique_ptr<Child>> actors;
  const int actor_count = config.actor().count();
  for (int i = 0; i < actor_count; ++i) {
    actors.push_back(make_child(absl::StrCat("actor-", i),
                                {"actor", config_path, "--run-dir", run_dir.root(), "--learner", learner_address,
                                 "--judge", judge_address, "--index", std::to_string(i), "--count",
                                 std::to_string(actor_count)},
                                true));
    RLJ_RETURN_IF_ERROR(StartChild(actors.back().get()));
  }

  // Monitor until the learner is done, a child fails for good, or we are asked to stop.
  auto stub = v1::Learner::NewStub(MakeChannel(learner_address));
  const double training_start_s = elapsed();
  v1::LearnerStatus status;
  auto last_line = Clock::now() - std::chrono::hours(1);
  absl::Status failure = absl::OkStatus();
  bool interrupted = false;
  while (true) {
    if (WaitForShutdown(milliseconds(500))) {
      interrupted = true;
      log::Warn("stop requested (signal {}): stopping the run", ShutdownSignal());
      break;
    }
    if (auto exit = learner->process->Poll()) {
      failure = absl::InternalError(ChildFailure(*learner, *exit));
      break;
    }
    std::vector<Child*> workers{judge.get()};
    for (auto& actor : actors) workers.push_back(actor.get());
    for (Child* child : workers) {
      if (!child->restartable) continue;
      if (child->process == nullptr) {
        if (Clock::now() >= child->restart_at) {
          if (absl::Status s = StartChild(child); !s.ok()) failure = s;
        }
        continue;
      }
      auto exit = child->process->Poll();
      if (!exit) continue;
      if (exit->ok()) {
        // A worker ends with 0 only on purpose (the learner reported done); it is not restarted.
        log::Info("{} finished", child->name);
        child->restartable = false;
        continue;
      }
      if (child->restarts >= kMaxRestarts) {
        failure = absl::InternalError(absl::StrCat(ChildFailure(*child, *exit), "\n(restarted ", kMaxRestarts, " times; giving up)"));
        break;
      }
      ++child->restarts;
      const auto backoff = milliseconds(500LL << std::min(child->restarts, 6));
      log::Warn("{} ended ({}); restarting in {} ms (restart {} of {})", child->name, exit->Describe(), backoff.count(),
                child->restarts, kMaxRestarts);
      child->process.reset();
      child->restart_at = Clock::now() + backoff;
    }
    if (!failure.ok()) break;

    grpc::ClientContext context;
    SetDeadline(&context, milliseconds(5000));
    if (!stub->Status(&context, v1::StatusRequest(), &status).ok()) continue;
    const std::string line = ProgressLine(status, elapsed(), training_start_s);
    if (options.progress_tty) {
      std::fprintf(stderr, "\r\033[K%s", line.c_str());
      std::fflush(stderr);
    } else if (Clock::now() - last_line > std::chrono::seconds(5) || status.done()) {
      std::fprintf(stderr, "%s\n", line.c_str());
      last_line = Clock::now();
    }
    if (status.done()) break;
  }
  if (options.progress_tty) std::fprintf(stderr, "\n");

  // Stop workers first, the learner last (it checkpoints on SIGTERM if it has not finished).
  for (auto& actor : actors) {
    if (actor->process) actor->process->Stop(milliseconds(15000));
  }
  if (judge->process) judge->process->Stop(milliseconds(15000));
  const ExitInfo learner_exit = learner->process->Stop(milliseconds(60000));
  if (!learner_exit.ok() && failure.ok() && !(learner_exit.signal == SIGTERM)) {
    failure = absl::InternalError(ChildFailure(*learner, learner_exit));
  }
  if (!failure.ok()) return failure;

  summary["steps"] = status.step();
  summary["policy_version"] = status.version();
  summary["interrupted"] = interrupted;
  summary["groups_received"] = status.groups_received();
  summary["groups_dropped_stale"] = status.groups_dropped_stale();
  summary["groups_skipped_no_signal"] = status.groups_skipped_no_signal();
  summary["samples_masked"] = status.samples_masked();
  // The curve comes from the learner's own per-step log, not from polling (which can miss fast steps).
  nlohmann::json reward_curve = nlohmann::json::array();
  if (auto steps = ReadMetricsLog(run_dir.metrics_path()); steps.ok()) {
    for (const v1::StepMetrics& m : *steps) {
      reward_curve.push_back({{"step", m.step()}, {"reward_mean", m.reward_mean()}, {"reward_std", m.reward_std()},
                              {"kl", m.kl()}, {"step_s", m.step_s()}});
    }
  }
  summary["reward_curve"] = reward_curve;
  summary["training_s"] = elapsed() - training_start_s;

  auto latest = ReadFile(run_dir.checkpoints_dir() + "/latest");
  if (latest.ok()) {
    std::string name = *latest;
    while (!name.empty() && (name.back() == '\n' || name.back() == ' ')) name.pop_back();
    const std::string checkpoint = run_dir.checkpoints_dir() + "/" + name;
    summary["checkpoint"] = checkpoint;
    if (evaluate && !interrupted) {
      RLJ_ASSIGN_OR_RETURN(LoadedCheckpoint final_checkpoint, LoadCheckpoint(checkpoint));
      RLJ_ASSIGN_OR_RETURN(summary["eval_after"], Evaluate(final_checkpoint.model, config, *tokenizer, eval_rows, "after RL"));
    }
  } else if (!interrupted) {
    return absl::InternalError(absl::StrCat("the learner finished without a checkpoint: ", std::string(latest.status().message())));
  }
  summary["wall_s"] = elapsed();
  RLJ_RETURN_IF_ERROR(WriteFileAtomically(run_dir.summary_path(), summary.dump(2) + "\n"));

  std::fprintf(stderr, "run %s: %lld steps in %s", config.name().c_str(), static_cast<long long>(status.step()),
               FormatDuration(elapsed()).c_str());
  if (summary.contains("eval_before") && summary.contains("eval_after")) {
    std::fprintf(stderr, " | held-out accuracy %.3f -> %.3f", summary["eval_before"]["accuracy"].get<double>(),
                 summary["eval_after"]["accuracy"].get<double>());
  }
  std::fprintf(stderr, "\nsummary: %s\n", run_dir.summary_path().c_str());
  return absl::OkStatus();
}

}  // namespace rlj::tools
