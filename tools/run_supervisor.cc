// run_supervisor.cc: process orchestration for `rlj run`: its stages in order, each a method of RunSupervisor;
// what they decide and say is in run_stages.
#include "tools/run_supervisor.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <torch/utils.h>
#include <unistd.h>

#include <algorithm>
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
#include "actor/sampling_placement.h"
#include "common/config_loader.h"
#include "common/config_validate.h"
#include "common/dataset.h"
#include "common/file_util.h"
#include "common/grpc_util.h"
#include "common/log.h"
#include "common/metrics_log.h"
#include "common/run_dir.h"
#include "common/shutdown.h"
#include "common/status.h"
#include "common/subprocess.h"
#include "common/telemetry/process_telemetry.h"
#include "common/tokenizer/tokenizer.h"
#include "learner/learner_server.h"
#include "logs/eval_curve.h"
#include "logs/judge_traffic.h"
#include "model/checkpoint/checkpoint.h"
#include "model/model_source.h"
#include "model/tensor/torch_util.h"
#include "model/transformer.h"
#include "rlj/v1/judge.grpc.pb.h"
#include "rlj/v1/learner.grpc.pb.h"
#include "teacher/teacher_probe.h"
#include "tools/held_out_eval.h"
#include "tools/periodic_eval.h"
#include "tools/run_preflight.h"
#include "tools/run_stages.h"

namespace rlj::tools {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// One supervised child: how to start it again, and its restart history.
struct Child {
  std::string name;
  std::vector<std::string> argv;
  std::string console_path;
  bool restartable = false;
  std::unique_ptr<Subprocess> process;
  int restarts = 0;
  Clock::time_point restart_at{};
  std::vector<std::string> env;  // "K=V" entries for this child only (data-parallel learner ranks)
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
  std::vector<std::string> env = ChildEnvironment();
  env.insert(env.end(), child->env.begin(), child->env.end());
  RLJ_ASSIGN_OR_RETURN(child->process, Subprocess::Spawn(child->argv, child->console_path, env));
  log::Info("started {} (pid {})", child->name, child->process->pid());
  return absl::OkStatus();
}

// A loopback TCP port free right now (for the data-parallel ranks' TCPStore).
absl::StatusOr<int> FreeLoopbackPort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return absl::UnavailableError("socket() failed");
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof(address);
  const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0 &&
                  ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) == 0;
  ::close(fd);
  if (!ok) return absl::UnavailableError("no free loopback port for the learner ranks");
  return static_cast<int>(ntohs(address.sin_port));
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

// Waits for the teacher's endpoint file, then for its HTTP /health; fails early if the teacher dies.
absl::StatusOr<std::string> AwaitTeacher(Child* child, const RunDir& run_dir, milliseconds timeout) {
  const auto give_up = Clock::now() + timeout;
  absl::Status last = absl::UnavailableError("no endpoint file yet");
  while (true) {
    if (auto exit = child->process->Poll()) return absl::UnavailableError(ChildFailure(*child, *exit));
    if (ShutdownRequested()) return absl::CancelledError("stopped while starting " + child->name);
    auto address = run_dir.ReadEndpoint("teacher");
    if (address.ok()) {
      last = teacher::ProbeTeacherHealth(*address, milliseconds(2000));
      if (last.ok()) return *address;
    }
    if (Clock::now() > give_up) {
      return absl::DeadlineExceededError(absl::StrCat(child->name, " was not healthy within ", timeout.count() / 1000,
                                                      " s (", std::string(last.message()), "); see ",
                                                      child->console_path));
    }
    std::this_thread::sleep_for(milliseconds(100));  // polling a file another process writes
  }
}

// The before- or after-RL evaluation of `model` as the policy of `step`: its summary entry, and its point on
// the run's eval curve (and in its TensorBoard scalars, when the run has them).
absl::StatusOr<nlohmann::json> Evaluate(HeldOutEvaluator& evaluator, Transformer& model, int64_t step,
                                        const std::string& kind, const RunDir& run_dir,
                                        telemetry::ProcessTelemetry* telemetry = nullptr) {
  EvalResult result;
  RLJ_ASSIGN_OR_RETURN(const logs::EvalPoint point, evaluator.Evaluate(model, step, kind, &result));
  const double seconds = point.seconds;
  log::Info("eval {} RL: accuracy {:.4f} ({} / {}), reward {:.4f} in {:.1f} s", kind, result.accuracy(), result.correct,
            result.total, point.reward, seconds);
  if (absl::Status appended = logs::AppendEvalPoint(run_dir.eval_curve_path(), point); !appended.ok()) {
    log::Warn("eval curve not written: {}", appended.ToString());
  }
  AddEvalScalars(telemetry, point);
  nlohmann::json examples = nlohmann::json::array();
  for (size_t i = 0; i < result.examples.size() && i < 8; ++i) {
    const EvalExample& e = result.examples[i];
    examples.push_back(
        {{"prompt", e.prompt}, {"completion", e.completion}, {"reference", e.reference}, {"correct", e.correct}});
  }
  return nlohmann::json{{"accuracy", result.accuracy()},
                        {"correct", result.correct},
                        {"total", result.total},
                        {"reward", logs::EvalPointToJson(point)["reward"]},
                        {"cost_usd", point.cost_usd},
                        {"step", step},
                        {"mean_completion_tokens", result.mean_completion_tokens},
                        {"seconds", seconds},
                        {"examples", examples}};
}

// Judge.Status of every replica, added up; a replica that does not answer is left out of this poll.
JudgesNow PollJudges(const std::vector<std::unique_ptr<v1::Judge::Stub>>& stubs) {
  JudgesNow now;
  for (const auto& stub : stubs) {
    grpc::ClientContext context;
    SetDeadline(&context, std::chrono::milliseconds(5000));
    v1::JudgeStatus status;
    const size_t replica = static_cast<size_t>(&stub - stubs.data());
    if (!stub->Status(&context, v1::JudgeStatusRequest(), &status).ok()) continue;
    AddJudgeStatus(replica, status, &now);
  }
  return now;
}

// judge_backends.json: what `rlj logs summary` shows of the teacher backends (retries by cause, breaker,
// concurrency) during and after the run.
void WriteJudgeBackends(const RunDir& run_dir, const JudgesNow& now) {
  if (now.backends.empty()) return;
  const double now_unix_s = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  const nlohmann::json file = JudgeBackendsFile(now, now_unix_s);
  if (absl::Status written = WriteFileAtomically(run_dir.judge_backends_path(), file.dump(1) + "\n"); !written.ok()) {
    RLJ_EVERY(60, log::Warn("judge backends not written: {}", written.ToString()));
  }
}

// One `rlj run`, stage by stage: check and prepare, the before-RL evaluation, start the children, watch them
// until the run ends, stop them, write summary.json.
class RunSupervisor {
 public:
  RunSupervisor(const v1::RunConfig& config, const SupervisorOptions& options)
      : run_start_(Clock::now()), config_(config), options_(options) {}

  absl::Status Run() {
    RLJ_RETURN_IF_ERROR(Prepare());
    if (!eval_needs_teacher_) RLJ_RETURN_IF_ERROR(EvaluateBefore());
    if (ShutdownRequested()) return absl::OkStatus();
    RLJ_RETURN_IF_ERROR(StartChildren());
    absl::Status failure = Watch();
    if (periodic_ != nullptr) periodic_->Stop();  // before the learner it reads from goes away
    if (options_.progress_tty) std::fprintf(stderr, "\n");
    RLJ_RETURN_IF_ERROR(StopChildren(std::move(failure)));
    return WriteSummary();
  }

 private:
  double elapsed() const { return std::chrono::duration<double>(Clock::now() - run_start_).count(); }
  std::string eval_before_path() const { return run_dir_.root() + "/eval_before.json"; }

  // Checks inputs before starting anything, so bad data fails here with its own message.
  absl::Status Prepare() {
    MakePathsAbsolute(&config_);
    RLJ_RETURN_IF_ERROR(CheckRunCanStart(config_));
    run_dir_ = RunDir(std::filesystem::absolute(options_.run_dir).string());
    RLJ_RETURN_IF_ERROR(run_dir_.Create());
    RLJ_RETURN_IF_ERROR(WriteFileAtomically(run_dir_.config_path(), MessageToYaml(config_)));

    if (config_.data().train_path().empty()) return absl::InvalidArgumentError("data.train_path: required by rlj run");
    RLJ_RETURN_IF_ERROR(LoadPromptDataset(config_.data().train_path()).status());
    evaluate_ = config_.eval().before_and_after() && !config_.data().eval_path().empty();
    if (evaluate_) {
      RLJ_ASSIGN_OR_RETURN(eval_rows_, LoadPromptDataset(config_.data().eval_path()));
      if (config_.eval().max_prompts() > 0 && static_cast<int>(eval_rows_.size()) > config_.eval().max_prompts()) {
        eval_rows_.resize(static_cast<size_t>(config_.eval().max_prompts()));
      }
    }
    RLJ_ASSIGN_OR_RETURN(tokenizer_, MakeTokenizer(config_.tokenizer()));
    SetTorchThreads(ResolveThreads(config_, 0));

    summary_ = {{"name", config_.name()}, {"run_dir", run_dir_.root()}, {"config", run_dir_.config_path()}};
    // The before-eval is kept in eval_before.json, so a resumed run (--resume) reuses it instead of redoing it.
    if (evaluate_ && options_.resume) {
      if (std::optional<nlohmann::json> saved = SavedEvalBefore(eval_before_path())) {
        summary_["eval_before"] = *std::move(saved);
        log::Info("resume: reusing the before-RL evaluation of {}", eval_before_path());
      }
    }
    // With an eval judge that is the run's own teacher, the before-RL evaluation waits for the teacher.
    eval_needs_teacher_ = config_.has_teacher() && !config_.eval().judge().empty();
    return absl::OkStatus();
  }

  // The before-RL evaluation (unless a resumed run reuses it); keeps the evaluator for the one after.
  absl::Status EvaluateBefore() {
    if (!evaluate_) return absl::OkStatus();
    RLJ_ASSIGN_OR_RETURN(held_out_, HeldOutEvaluator::Create(config_, eval_rows_));
    if (!summary_.contains("eval_before")) {
      Transformer initial{nullptr};
      RLJ_RETURN_IF_ERROR(LoadStartingModel(config_, &initial));
      RLJ_RETURN_IF_ERROR(PlaceForSampling(config_, initial));
      RLJ_ASSIGN_OR_RETURN(summary_["eval_before"], Evaluate(*held_out_, initial, 0, "before", run_dir_));
      RLJ_RETURN_IF_ERROR(WriteFileAtomically(eval_before_path(), summary_["eval_before"].dump(2) + "\n"));
    }
    std::fprintf(stderr, "eval before RL: accuracy %.3f on %zu held-out prompts\n",
                 summary_["eval_before"]["accuracy"].get<double>(), eval_rows_.size());
    return absl::OkStatus();
  }

  std::unique_ptr<Child> MakeChild(const std::string& name, const std::vector<std::string>& args,
                                   bool restartable) const {
    auto child = std::make_unique<Child>();
    child->name = name;
    child->argv = {self_};
    child->argv.insert(child->argv.end(), args.begin(), args.end());
    child->console_path = run_dir_.logs_dir() + "/" + name + ".console";
    child->restartable = restartable;
    return child;
  }

  // Teacher, learner (and its ranks), judges and actors, each once the ones it needs answer; the periodic
  // evaluation once the learner does.
  absl::Status StartChildren() {
    self_ = SelfExecutablePath();
    std::filesystem::remove_all(run_dir_.endpoints_dir());
    RLJ_RETURN_IF_ERROR(MakeDirectories(run_dir_.endpoints_dir()));
    // The local teacher (config.teacher) starts first and loads while the learner does; the judge needs it.
    if (config_.has_teacher()) {
      if (config_.teacher().model().empty()) return absl::InvalidArgumentError("teacher.model: required by rlj run");
      teacher_ = MakeChild("teacher", {"teacher", run_dir_.config_path(), "--run-dir", run_dir_.root()}, true);
      RLJ_RETURN_IF_ERROR(StartChild(teacher_.get()));
    }
    RLJ_RETURN_IF_ERROR(StartLearner());
    if (teacher_ != nullptr) RLJ_RETURN_IF_ERROR(ConnectTeacher());
    if (eval_needs_teacher_) RLJ_RETURN_IF_ERROR(EvaluateBefore());
    RLJ_RETURN_IF_ERROR(StartPeriodicEvaluation());
    RLJ_RETURN_IF_ERROR(StartJudges());
    return StartActors();
  }

  absl::Status StartLearner() {
    std::vector<std::string> learner_args = {"learner", run_dir_.config_path(), "--run-dir", run_dir_.root()};
    if (options_.resume) learner_args.push_back("--resume");
    // One learner process is restarted after a crash: it resumes from its newest good checkpoint on the same
    // address. Data-parallel ranks are not (a rank's crash ends the run; `rlj run --resume` continues it).
    learner_ = MakeChild("learner", learner_args, config_.learner().ranks() <= 1);
    // Data-parallel ranks (learner.ranks > 1): every rank gets the torchrun variables; rank 0 is "learner" and
    // serves, ranks 1.. train their share and end when rank 0 tells them to.
    const int rank_count = std::max(1, config_.learner().ranks());
    if (rank_count > 1) {
      RLJ_ASSIGN_OR_RETURN(const int master_port, FreeLoopbackPort());
      learner_->env = RankEnvironment(0, rank_count, master_port);
      for (int rank = 1; rank < rank_count; ++rank) {
        learner_ranks_.push_back(MakeChild(absl::StrCat("learner-", rank), learner_args, false));
        learner_ranks_.back()->env = RankEnvironment(rank, rank_count, master_port);
      }
    }
    RLJ_RETURN_IF_ERROR(StartChild(learner_.get()));
    for (auto& rank : learner_ranks_) RLJ_RETURN_IF_ERROR(StartChild(rank.get()));
    RLJ_ASSIGN_OR_RETURN(learner_address_, AwaitEndpoint(learner_.get(), run_dir_, "learner", milliseconds(180000)));
    log::Info("learner at {}", learner_address_);
    learner_->argv.insert(learner_->argv.end(), {"--listen", learner_address_});
    if (!options_.resume) learner_->argv.push_back("--resume");
    return absl::OkStatus();
  }

  // Waits for the teacher; the judge's openai backend is pointed at it unless it names a server.
  absl::Status ConnectTeacher() {
    RLJ_ASSIGN_OR_RETURN(std::string teacher_address,
                         AwaitTeacher(teacher_.get(), run_dir_, milliseconds(config_.teacher().startup_timeout_ms())));
    const std::string teacher_url = absl::StrCat("http://", teacher_address, "/v1");
    teacher_->argv.insert(teacher_->argv.end(), {"--listen", teacher_address});  // a restart comes back here
    log::Info("teacher at {}", teacher_url);
    summary_["teacher"] = teacher_url;
    // The judge reads the run's config: point its openai backend at this teacher unless it names a server.
    if (config_.judge().backend() == "openai" && !config_.judge().openai().has_base_url()) {
      config_.mutable_judge()->mutable_openai()->set_base_url(teacher_url);
      RLJ_RETURN_IF_ERROR(WriteFileAtomically(run_dir_.config_path(), MessageToYaml(config_)));
    }
    return absl::OkStatus();
  }

  // Periodic held-out evaluation (eval.every_steps) in a thread of this process, reading published weights.
  absl::Status StartPeriodicEvaluation() {
    if (config_.eval().every_steps() <= 0 || config_.data().eval_path().empty()) return absl::OkStatus();
    RLJ_ASSIGN_OR_RETURN(std::vector<PromptRow> periodic_rows, LoadPromptDataset(config_.data().eval_path()));
    const int limit = config_.eval().periodic_max_prompts() > 0 ? config_.eval().periodic_max_prompts()
                                                                : config_.eval().max_prompts();
    if (limit > 0 && static_cast<int>(periodic_rows.size()) > limit) periodic_rows.resize(static_cast<size_t>(limit));
    RLJ_ASSIGN_OR_RETURN(std::unique_ptr<HeldOutEvaluator> evaluator,
                         HeldOutEvaluator::Create(config_, std::move(periodic_rows)));
    RLJ_ASSIGN_OR_RETURN(run_telemetry_,
                         telemetry::ProcessTelemetry::Start(config_, run_dir_.root(), "run", "run", true));
    // The before-RL point came before the run's TensorBoard did.
    if (auto curve = logs::ReadEvalCurve(run_dir_.eval_curve_path()); curve.ok()) {
      for (const logs::EvalPoint& point : *curve) {
        if (point.kind == "before") AddEvalScalars(run_telemetry_.get(), point);
      }
    }
    SetTorchThreads(config_.eval().threads());
    periodic_ = std::make_unique<PeriodicEvaluator>(config_, std::move(evaluator),
                                                    v1::Learner::NewStub(MakeChannel(learner_address_)), run_dir_,
                                                    run_telemetry_.get());
    return absl::OkStatus();
  }

  // judge.replicas judge processes, each with its own reward log; they start in parallel.
  absl::Status StartJudges() {
    for (int i = 0; i < config_.judge().replicas(); ++i) {
      const std::string replica = absl::StrCat("judge-", i);
      judges_.push_back(MakeChild(
          replica, {"judge", run_dir_.config_path(), "--run-dir", run_dir_.root(), "--replica", replica}, true));
      RLJ_RETURN_IF_ERROR(StartChild(judges_.back().get()));
    }
    for (auto& judge : judges_) {
      RLJ_ASSIGN_OR_RETURN(std::string address, AwaitEndpoint(judge.get(), run_dir_, judge->name, milliseconds(60000)));
      // A restarted judge must come back on the same address the actors already use.
      judge->argv.insert(judge->argv.end(), {"--listen", address});
      log::Info("{} at {}", judge->name, address);
      judge_addresses_.push_back(std::move(address));
    }
    return absl::OkStatus();
  }

  absl::Status StartActors() {
    const int actor_count = config_.actor().count();
    for (int i = 0; i < actor_count; ++i) {
      actors_.push_back(MakeChild(absl::StrCat("actor-", i),
                                  {"actor", run_dir_.config_path(), "--run-dir", run_dir_.root(), "--learner",
                                   learner_address_, "--judge", judge_addresses_[i % judge_addresses_.size()],
                                   "--index", std::to_string(i), "--count", std::to_string(actor_count)},
                                  true));
      RLJ_RETURN_IF_ERROR(StartChild(actors_.back().get()));
    }
    return absl::OkStatus();
  }

  // Says `text` on its own line, also after a redrawn progress line.
  void Notice(const std::string& text) const {
    if (options_.progress_tty) std::fprintf(stderr, "\n");
    std::fprintf(stderr, "%s\n", text.c_str());
  }

  // Watches until the learner is done, a child fails for good, the judges' budget or a teacher outage ends
  // the run, periodic evaluation stops it early, or we are asked to stop; the run's failure, if any.
  absl::Status Watch() {
    auto stub = v1::Learner::NewStub(MakeChannel(learner_address_));
    // The judges are polled: once their spend together reaches judge.budget_usd (or one of them has spent its
    // own) the run stops like on Ctrl-C; a teacher outage shows in the progress line, and one longer than
    // judge.max_outage_s fails the run.
    std::vector<std::unique_ptr<v1::Judge::Stub>> judge_stubs;
    for (const std::string& address : judge_addresses_) judge_stubs.push_back(v1::Judge::NewStub(MakeChannel(address)));
    auto next_judge_poll = Clock::now();
    training_start_s_ = elapsed();
    const v1::QualityConfig& quality = config_.quality();
    logs::JudgeTrafficMonitor judge_traffic(
        run_dir_.reward_log_dir(), 2000, static_cast<size_t>(quality.length_correlation_window()),
        quality.length_correlation_min_samples(), quality.length_correlation_threshold());
    auto last_line = Clock::now() - std::chrono::hours(1);
    while (true) {
      if (WaitForShutdown(milliseconds(500))) {
        outcome_.interrupted = true;
        log::Warn("stop requested (signal {}): stopping the run", ShutdownSignal());
        return absl::OkStatus();
      }
      RLJ_RETURN_IF_ERROR(WatchChildren());
      if (Clock::now() >= next_judge_poll) {
        next_judge_poll = Clock::now() + std::chrono::seconds(2);
        RLJ_RETURN_IF_ERROR(CheckJudges(judge_stubs));
        if (!outcome_.stop_reason.empty()) return absl::OkStatus();
      }
      grpc::ClientContext context;
      SetDeadline(&context, milliseconds(5000));
      if (!stub->Status(&context, v1::StatusRequest(), &outcome_.status).ok()) continue;
      ShowProgress(judge_traffic, &last_line);
      if (outcome_.status.done() || StopsEarly()) return absl::OkStatus();
    }
  }

  // Every worker in the order they are checked: learner, teacher, judges, actors.
  std::vector<Child*> Workers() const {
    std::vector<Child*> workers{learner_.get()};
    if (teacher_ != nullptr) workers.push_back(teacher_.get());
    for (const auto& judge : judges_) workers.push_back(judge.get());
    for (const auto& actor : actors_) workers.push_back(actor.get());
    return workers;
  }

  // Restarted with backoff after a crash: the learner (it resumes from its newest good checkpoint), the
  // teacher and the judges (on the addresses the others already use) and the actors. The run's failure when
  // the learner ends it or a worker keeps crashing.
  absl::Status WatchChildren() {
    if (learner_->process != nullptr) {
      if (auto exit = learner_->process->Poll(); exit && LearnerExitEndsRun(*exit, learner_->restartable)) {
        return absl::InternalError(ChildFailure(*learner_, *exit));
      }
    }
    absl::Status failure = absl::OkStatus();
    for (Child* child : Workers()) {
      if (!child->restartable) continue;
      if (child->process == nullptr) {
        if (Clock::now() >= child->restart_at) {
          if (absl::Status s = StartChild(child); !s.ok()) failure = s;
        }
        continue;
      }
      auto exit = child->process->Poll();
      if (!exit) continue;
      switch (OnWorkerExit(*exit, child == learner_.get(), child->restarts)) {
        case WorkerExit::kFinished:
          log::Info("{} finished", child->name);
          child->restartable = false;
          break;
        case WorkerExit::kStoppedOnPurpose:
          return absl::InternalError(ChildFailure(*child, *exit));
        case WorkerExit::kGiveUp:
          return absl::InternalError(
              absl::StrCat(ChildFailure(*child, *exit), "\n(restarted ", kMaxRestarts, " times; giving up)"));
        case WorkerExit::kRestart:
          ScheduleRestart(child, *exit);
          break;
      }
    }
    return failure;
  }

  static void ScheduleRestart(Child* child, const ExitInfo& exit) {
    ++child->restarts;
    const milliseconds backoff = RestartBackoff(child->restarts);
    log::Warn("{} ended ({}); restarting in {} ms (restart {} of {})", child->name, exit.Describe(), backoff.count(),
              child->restarts, kMaxRestarts);
    child->process.reset();
    child->restart_at = Clock::now() + backoff;
  }

  // Polls the judges and writes judge_backends.json: a teacher outage past judge.max_outage_s is the run's
  // failure; a spent budget sets outcome_.stop_reason.
  absl::Status CheckJudges(const std::vector<std::unique_ptr<v1::Judge::Stub>>& judge_stubs) {
    judges_now_ = PollJudges(judge_stubs);
    WriteJudgeBackends(run_dir_, judges_now_);
    if (absl::Status failure = OutageLimit(config_.judge(), judges_now_); !failure.ok()) {
      Notice(failure.ToString());
      return failure;
    }
    outcome_.stop_reason = BudgetStopReason(config_.judge(), judges_now_);
    if (!outcome_.stop_reason.empty()) {
      outcome_.interrupted = true;
      log::Warn("{}: stopping the run (the learner checkpoints)", outcome_.stop_reason);
      Notice(outcome_.stop_reason + ": stopping the run");
    }
    return absl::OkStatus();
  }

  // The progress line for the status just polled: redrawn on a terminal, else a line every 5 s and at the end.
  void ShowProgress(logs::JudgeTrafficMonitor& judge_traffic, Clock::time_point* last_line) const {
    if (absl::Status read = judge_traffic.Refresh(); !read.ok()) {
      RLJ_EVERY(60, log::Warn("progress: reading the reward logs: {}", read.ToString()));
    }
    const logs::JudgeTrafficSnapshot judge = judge_traffic.Snapshot();
    const std::optional<logs::EvalPoint> latest = periodic_ != nullptr ? periodic_->latest() : std::nullopt;
    const std::string line = ProgressLine(outcome_.status, judge, judges_now_, elapsed(), training_start_s_) +
                             HeldOutProgress(periodic_ != nullptr, latest) +
                             ProgressAlarms(judge, EvalBeforeAccuracy(summary_), latest);
    if (options_.progress_tty) {
      std::fprintf(stderr, "\r\033[K%s", line.c_str());
      std::fflush(stderr);
    } else if (Clock::now() - *last_line > std::chrono::seconds(5) || outcome_.status.done()) {
      std::fprintf(stderr, "%s\n", line.c_str());
      *last_line = Clock::now();
    }
  }

  // Whether periodic evaluation ends training (eval.stop_when_no_gain_for); says why.
  bool StopsEarly() {
    if (periodic_ == nullptr || !periodic_->should_stop()) return false;
    outcome_.early_stop =
        EarlyStopReason(config_.eval().stop_when_no_gain_for(), periodic_->best(), run_dir_.best_checkpoint_dir());
    log::Info("stopping early: {}", outcome_.early_stop);
    Notice("stopping early: " + outcome_.early_stop);
    return true;
  }

  // Stops workers first, the learner last (it checkpoints on SIGTERM if it has not finished); `failure`, or
  // the learner's if it ended badly.
  absl::Status StopChildren(absl::Status failure) {
    for (auto& actor : actors_) {
      if (actor->process) actor->process->Stop(milliseconds(15000));
    }
    for (auto& judge : judges_) {
      if (judge->process) judge->process->Stop(milliseconds(15000));
    }
    if (teacher_ != nullptr && teacher_->process) teacher_->process->Stop(milliseconds(15000));
    const ExitInfo learner_exit =
        learner_->process ? learner_->process->Stop(milliseconds(60000)) : ExitInfo{.exit_code = 0};
    for (auto& rank : learner_ranks_) {
      if (rank->process) rank->process->Stop(milliseconds(15000));  // rank 0 already told them to stop
    }
    if (!learner_exit.ok() && failure.ok() && !(learner_exit.signal == SIGTERM)) {
      failure = absl::InternalError(ChildFailure(*learner_, learner_exit));
    }
    return failure;
  }

  absl::Status WriteSummary() {
    AddTrainingSummary(outcome_, ReadMetricsLog(run_dir_.metrics_path()), elapsed() - training_start_s_, &summary_);
    RLJ_RETURN_IF_ERROR(AddCheckpoint());
    if (auto curve = logs::ReadEvalCurve(run_dir_.eval_curve_path()); curve.ok()) {
      AddEvalCurveSummary(*curve, run_dir_.best_checkpoint_dir(), &summary_);
    }
    summary_["wall_s"] = elapsed();
    summary_["alarms"] = JudgeAlarmsOfRun(run_dir_.root(), config_.quality());
    RLJ_RETURN_IF_ERROR(WriteFileAtomically(run_dir_.summary_path(), summary_.dump(2) + "\n"));
    const std::string report =
        FinalReport(config_.name(), outcome_.status.step(), elapsed(), summary_, run_dir_.summary_path());
    std::fprintf(stderr, "%s", report.c_str());
    return absl::OkStatus();
  }

  // The learner's newest checkpoint, and the after-RL evaluation of it; a learner that finished without one
  // fails the run.
  absl::Status AddCheckpoint() {
    absl::StatusOr<std::string> checkpoint = LatestCheckpoint(run_dir_.checkpoints_dir());
    if (!checkpoint.ok()) {
      if (outcome_.interrupted) return absl::OkStatus();
      return absl::InternalError(
          absl::StrCat("the learner finished without a checkpoint: ", std::string(checkpoint.status().message())));
    }
    summary_["checkpoint"] = *checkpoint;
    if (!evaluate_ || outcome_.interrupted || held_out_ == nullptr) return absl::OkStatus();
    RLJ_ASSIGN_OR_RETURN(LoadedCheckpoint final_checkpoint, LoadCheckpoint(*checkpoint));
    RLJ_RETURN_IF_ERROR(PlaceForSampling(config_, final_checkpoint.model));
    RLJ_ASSIGN_OR_RETURN(summary_["eval_after"],
                         Evaluate(*held_out_, final_checkpoint.model, final_checkpoint.state.policy_version, "after",
                                  run_dir_, run_telemetry_.get()));
    return absl::OkStatus();
  }

  const Clock::time_point run_start_;
  v1::RunConfig config_;
  const SupervisorOptions options_;
  RunDir run_dir_{""};
  bool evaluate_ = false;             // eval.before_and_after with an eval set
  bool eval_needs_teacher_ = false;   // the before-RL evaluation's judge is the run's own teacher
  std::vector<PromptRow> eval_rows_;  // the before- and after-RL evaluation's prompts
  std::unique_ptr<Tokenizer> tokenizer_;
  nlohmann::json summary_;
  std::string self_;  // this executable, which every child runs
  // Declared in the order the original locals were: destroyed (children killed) in reverse.
  std::unique_ptr<HeldOutEvaluator> held_out_;
  std::unique_ptr<Child> teacher_;
  std::unique_ptr<Child> learner_;
  std::vector<std::unique_ptr<Child>> learner_ranks_;
  std::string learner_address_;
  std::unique_ptr<telemetry::ProcessTelemetry> run_telemetry_;
  std::unique_ptr<PeriodicEvaluator> periodic_;
  std::vector<std::unique_ptr<Child>> judges_;
  std::vector<std::string> judge_addresses_;
  std::vector<std::unique_ptr<Child>> actors_;
  JudgesNow judges_now_;
  double training_start_s_ = 0;
  RunOutcome outcome_;
};

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
  if (config->has_teacher() && config->teacher().has_model()) {
    config->mutable_teacher()->set_model(absolute(config->teacher().model()));
  }
  if (config->teacher().tokenizer().has_path()) {
    config->mutable_teacher()->mutable_tokenizer()->set_path(absolute(config->teacher().tokenizer().path()));
  }
  // Certificates and keys too, so the resolved config.yaml works from any directory (children, other hosts).
  if (config->has_security()) {
    v1::SecurityConfig* security = config->mutable_security();
    if (security->has_tls_cert()) security->set_tls_cert(absolute(security->tls_cert()));
    if (security->has_tls_key()) security->set_tls_key(absolute(security->tls_key()));
    if (security->has_tls_ca()) security->set_tls_ca(absolute(security->tls_ca()));
    if (security->has_client_cert()) security->set_client_cert(absolute(security->client_cert()));
    if (security->has_client_key()) security->set_client_key(absolute(security->client_key()));
  }
}

absl::Status SuperviseRun(const v1::RunConfig& config, const SupervisorOptions& options) {
  return RunSupervisor(config, options).Run();
}

}  // namespace rlj::tools
