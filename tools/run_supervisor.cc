// run_supervisor.cc: process orchestration for `rlj run`.
#include "tools/run_supervisor.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
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
#include "model/checkpoint/checkpoint.h"
#include "common/config_loader.h"
#include "common/config_validate.h"
#include "common/dataset.h"
#include "common/file_util.h"
#include "common/grpc_util.h"
#include "common/log.h"
#include "logs/eval_curve.h"
#include "logs/judge_traffic.h"
#include "common/metrics_log.h"
#include "model/model_source.h"
#include "model/transformer.h"
#include <torch/utils.h>
#include "common/run_dir.h"
#include "common/shutdown.h"
#include "common/status.h"
#include "common/subprocess.h"
#include "common/telemetry/process_telemetry.h"
#include "model/tensor/torch_util.h"
#include "common/tokenizer/tokenizer.h"
#include "google/protobuf/util/json_util.h"
#include "teacher/teacher_probe.h"
#include "learner/learner_server.h"
#include "rlj/v1/judge.grpc.pb.h"
#include "rlj/v1/learner.grpc.pb.h"
#include "tools/held_out_eval.h"
#include "tools/periodic_eval.h"
#include "tools/run_preflight.h"

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
// the run's eval curve.
absl::StatusOr<nlohmann::json> Evaluate(HeldOutEvaluator& evaluator, Transformer& model, int64_t step,
                                        const std::string& kind, const RunDir& run_dir) {
  EvalResult result;
  RLJ_ASSIGN_OR_RETURN(const logs::EvalPoint point, evaluator.Evaluate(model, step, kind, &result));
  const double seconds = point.seconds;
  log::Info("eval {} RL: accuracy {:.4f} ({} / {}), reward {:.4f} in {:.1f} s", kind, result.accuracy(), result.correct,
            result.total, point.reward, seconds);
  if (absl::Status appended = logs::AppendEvalPoint(run_dir.eval_curve_path(), point); !appended.ok()) {
    log::Warn("eval curve not written: {}", appended.ToString());
  }
  nlohmann::json examples = nlohmann::json::array();
  for (size_t i = 0; i < result.examples.size() && i < 8; ++i) {
    const EvalExample& e = result.examples[i];
    examples.push_back({{"prompt", e.prompt}, {"completion", e.completion}, {"reference", e.reference}, {"correct", e.correct}});
  }
  return nlohmann::json{{"accuracy", result.accuracy()}, {"correct", result.correct}, {"total", result.total},
                        {"reward", logs::EvalPointToJson(point)["reward"]}, {"cost_usd", point.cost_usd}, {"step", step},
                        {"mean_completion_tokens", result.mean_completion_tokens}, {"seconds", seconds},
                        {"examples", examples}};
}

std::string FormatDuration(double seconds) {
  const int s = static_cast<int>(std::max(0.0, seconds));
  return absl::StrFormat("%02d:%02d", s / 60, s % 60);
}

// What the supervisor reads from its judges on each poll: their spend and the longest current teacher outage.
struct JudgesNow {
  double spent_usd = 0;
  bool budget_exhausted = false;
  double outage_s = 0;       // the longest current outage among the judges; 0 = every backend reachable
  std::string outage_error;  // that outage's last error
  nlohmann::json backends = nlohmann::json::array();  // per replica: its teacher backends (judge_backends.json)
};

JudgesNow PollJudges(const std::vector<std::unique_ptr<v1::Judge::Stub>>& stubs) {
  JudgesNow now;
  for (const auto& stub : stubs) {
    grpc::ClientContext context;
    SetDeadline(&context, std::chrono::milliseconds(5000));
    v1::JudgeStatus status;
    const size_t replica = static_cast<size_t>(&stub - stubs.data());
    if (!stub->Status(&context, v1::JudgeStatusRequest(), &status).ok()) continue;
    nlohmann::json backends = nlohmann::json::array();
    for (const v1::JudgeBackendStatus& backend : status.backends()) {
      std::string json;
      google::protobuf::util::JsonPrintOptions options;
      options.preserve_proto_field_names = true;
      options.always_print_primitive_fields = true;
      if (google::protobuf::util::MessageToJsonString(backend, &json, options).ok()) {
        backends.push_back(nlohmann::json::parse(json, nullptr, /*allow_exceptions=*/false));
      }
    }
    now.backends.push_back({{"replica", absl::StrCat("judge-", replica)}, {"backends", std::move(backends)}});
    now.spent_usd += status.cost_usd();
    now.budget_exhausted = now.budget_exhausted || status.budget_exhausted();
    if (status.outage_seconds() > now.outage_s) {
      now.outage_s = status.outage_seconds();
      now.outage_error = status.outage_error();
    }
  }
  return now;
}

// judge_backends.json: what `rlj logs summary` shows of the teacher backends (retries by cause, breaker,
// concurrency) during and after the run.
void WriteJudgeBackends(const RunDir& run_dir, const JudgesNow& now) {
  if (now.backends.empty()) return;
  const nlohmann::json file = {
      {"updated_unix_s", std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count()},
      {"judges", now.backends}};
  if (absl::Status written = WriteFileAtomically(run_dir.judge_backends_path(), file.dump(1) + "\n"); !written.ok()) {
    RLJ_EVERY(60, log::Warn("judge backends not written: {}", written.ToString()));
  }
}

// The run's failure once a judge's backend has been unreachable longer than judge.max_outage_s (0 = never).
absl::Status OutageLimit(const v1::JudgeConfig& judge, const JudgesNow& now) {
  if (judge.max_outage_s() <= 0 || now.outage_s <= judge.max_outage_s()) return absl::OkStatus();
  return absl::UnavailableError(absl::StrFormat(
      "the judge's teacher has been unreachable for %.0f s (judge.max_outage_s = %d): stopping the run; the learner "
      "checkpoints and `rlj run --resume` continues it. Last error: %s",
      now.outage_s, judge.max_outage_s(), now.outage_error));
}

// The progress line's tail: batches that trained nothing (not steps) and a teacher outage being waited out.
std::string SkipsAndOutage(const v1::LearnerStatus& status, const JudgesNow& judges) {
  std::string tail;
  const int64_t skipped = status.batches_skipped_all_masked() + status.batches_skipped_no_signal();
  if (skipped > 0) {
    tail = absl::StrFormat(" | skipped batches %d (all masked %d, no signal %d)", skipped,
                           status.batches_skipped_all_masked(), status.batches_skipped_no_signal());
  }
  if (judges.outage_s > 0) tail += absl::StrFormat(" | TEACHER OUTAGE %.0f s: waiting", judges.outage_s);
  return tail;
}

// The latest periodic held-out evaluation, for the progress line.
std::string HeldOut(const PeriodicEvaluator* evaluator) {
  if (evaluator == nullptr) return "";
  const std::optional<logs::EvalPoint> latest = evaluator->latest();
  if (!latest) return " | held-out: pending";
  return absl::StrFormat(" | held-out %.3f @%d", latest->accuracy, latest->step);
}

std::string ProgressLine(const v1::LearnerStatus& status, const logs::JudgeTrafficSnapshot& judge,
                         const JudgesNow& judges, double elapsed_s, double training_start_s) {
  const v1::StepMetrics& m = status.last();
  std::string eta = "--:--";
  if (status.step() > 0 && status.total_steps() > status.step()) {
    const double per_step = (elapsed_s - training_start_s) / status.step();
    eta = FormatDuration(per_step * (status.total_steps() - status.step()));
  }
  return absl::StrFormat("step %d/%d v%d | reward %.3f ±%.3f | kl %.4f | train tok/s %.0f | sample tok/s %.0f | "
                         "groups %d (stale %d, masked samples %d) | judge p50/p95 %.0f/%.0f ms, cache %.0f%%, $%.4f | "
                         "%s ETA %s",
                         status.step(), status.total_steps(), status.version(), m.reward_mean(), m.reward_std(), m.kl(),
                         m.tokens_per_s(), status.sample_tokens_per_s(), status.groups_received(),
                         status.groups_dropped_stale(), status.samples_masked(), judge.latency_p50_ms,
                         judge.latency_p95_ms, 100 * judge.cache_hit_rate(), judge.cost_usd, FormatDuration(elapsed_s),
                         eta) +
         SkipsAndOutage(status, judges);
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

absl::Status SuperviseRun(const v1::RunConfig& input_config, const SupervisorOptions& options) {
  const auto run_start = Clock::now();
  auto elapsed = [&] { return std::chrono::duration<double>(Clock::now() - run_start).count(); };
  v1::RunConfig config = input_config;
  MakePathsAbsolute(&config);
  RLJ_RETURN_IF_ERROR(CheckRunCanStart(config));
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
  // The before-eval is kept in eval_before.json, so a resumed run (--resume) reuses it instead of redoing it.
  const std::string eval_before_path = run_dir.root() + "/eval_before.json";
  if (evaluate && options.resume) {
    if (auto saved = ReadFile(eval_before_path); saved.ok()) {
      summary["eval_before"] = nlohmann::json::parse(*saved, nullptr, /*allow_exceptions=*/false);
      if (summary["eval_before"].is_discarded() || !summary["eval_before"].contains("accuracy")) {
        summary.erase("eval_before");
      } else {
        log::Info("resume: reusing the before-RL evaluation of {}", eval_before_path);
      }
    }
  }
  // The before-RL evaluation; with an eval judge that is the run's own teacher it waits for the teacher.
  const bool eval_needs_teacher = config.has_teacher() && !config.eval().judge().empty();
  std::unique_ptr<HeldOutEvaluator> held_out;
  const auto evaluate_before = [&]() -> absl::Status {
    if (!evaluate) return absl::OkStatus();
    RLJ_ASSIGN_OR_RETURN(held_out, HeldOutEvaluator::Create(config, eval_rows));
    if (!summary.contains("eval_before")) {
      Transformer initial{nullptr};
      RLJ_RETURN_IF_ERROR(LoadStartingModel(config, &initial));
      RLJ_ASSIGN_OR_RETURN(summary["eval_before"], Evaluate(*held_out, initial, 0, "before", run_dir));
      RLJ_RETURN_IF_ERROR(WriteFileAtomically(eval_before_path, summary["eval_before"].dump(2) + "\n"));
    }
    std::fprintf(stderr, "eval before RL: accuracy %.3f on %zu held-out prompts\n",
                 summary["eval_before"]["accuracy"].get<double>(), eval_rows.size());
    return absl::OkStatus();
  };
  if (!eval_needs_teacher) RLJ_RETURN_IF_ERROR(evaluate_before());
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

  // The local teacher (config.teacher) starts first and loads while the learner does; the judge needs it.
  std::unique_ptr<Child> teacher;
  if (config.has_teacher()) {
    if (config.teacher().model().empty()) return absl::InvalidArgumentError("teacher.model: required by rlj run");
    teacher = make_child("teacher", {"teacher", config_path, "--run-dir", run_dir.root()}, true);
    RLJ_RETURN_IF_ERROR(StartChild(teacher.get()));
  }

  std::vector<std::string> learner_args = {"learner", config_path, "--run-dir", run_dir.root()};
  if (options.resume) learner_args.push_back("--resume");
  // One learner process is restarted after a crash: it resumes from its newest good checkpoint on the same
  // address. Data-parallel ranks are not (a rank's crash ends the run; `rlj run --resume` continues it).
  std::unique_ptr<Child> learner = make_child("learner", learner_args, config.learner().ranks() <= 1);
  // Data-parallel ranks (learner.ranks > 1): every rank gets the torchrun variables; rank 0 is "learner" and
  // serves, ranks 1.. train their share and end when rank 0 tells them to.
  std::vector<std::unique_ptr<Child>> learner_ranks;
  const int rank_count = std::max(1, config.learner().ranks());
  if (rank_count > 1) {
    RLJ_ASSIGN_OR_RETURN(const int master_port, FreeLoopbackPort());
    const auto rank_env = [&](int rank) {
      return std::vector<std::string>{absl::StrCat("RANK=", rank), absl::StrCat("WORLD_SIZE=", rank_count),
                                      "MASTER_ADDR=127.0.0.1", absl::StrCat("MASTER_PORT=", master_port)};
    };
    learner->env = rank_env(0);
    for (int rank = 1; rank < rank_count; ++rank) {
      learner_ranks.push_back(make_child(absl::StrCat("learner-", rank), learner_args, false));
      learner_ranks.back()->env = rank_env(rank);
    }
  }
  RLJ_RETURN_IF_ERROR(StartChild(learner.get()));
  for (auto& rank : learner_ranks) RLJ_RETURN_IF_ERROR(StartChild(rank.get()));
  RLJ_ASSIGN_OR_RETURN(std::string learner_address, AwaitEndpoint(learner.get(), run_dir, "learner", milliseconds(180000)));
  log::Info("learner at {}", learner_address);
  learner->argv.insert(learner->argv.end(), {"--listen", learner_address});
  if (!options.resume) learner->argv.push_back("--resume");

  if (teacher != nullptr) {
    RLJ_ASSIGN_OR_RETURN(std::string teacher_address,
                         AwaitTeacher(teacher.get(), run_dir, milliseconds(config.teacher().startup_timeout_ms())));
    const std::string teacher_url = absl::StrCat("http://", teacher_address, "/v1");
    teacher->argv.insert(teacher->argv.end(), {"--listen", teacher_address});  // a restart comes back here
    log::Info("teacher at {}", teacher_url);
    summary["teacher"] = teacher_url;
    // The judge reads the run's config: point its openai backend at this teacher unless it names a server.
    if (config.judge().backend() == "openai" && !config.judge().openai().has_base_url()) {
      config.mutable_judge()->mutable_openai()->set_base_url(teacher_url);
      RLJ_RETURN_IF_ERROR(WriteFileAtomically(run_dir.config_path(), MessageToYaml(config)));
    }
  }
  if (eval_needs_teacher) RLJ_RETURN_IF_ERROR(evaluate_before());

  // Periodic held-out evaluation (eval.every_steps) in a thread of this process, reading published weights.
  std::unique_ptr<telemetry::ProcessTelemetry> run_telemetry;
  std::unique_ptr<PeriodicEvaluator> periodic;
  if (config.eval().every_steps() > 0 && !config.data().eval_path().empty()) {
    RLJ_ASSIGN_OR_RETURN(std::vector<PromptRow> periodic_rows, LoadPromptDataset(config.data().eval_path()));
    const int limit = config.eval().periodic_max_prompts() > 0 ? config.eval().periodic_max_prompts() : config.eval().max_prompts();
    if (limit > 0 && static_cast<int>(periodic_rows.size()) > limit) periodic_rows.resize(static_cast<size_t>(limit));
    RLJ_ASSIGN_OR_RETURN(std::unique_ptr<HeldOutEvaluator> evaluator, HeldOutEvaluator::Create(config, std::move(periodic_rows)));
    RLJ_ASSIGN_OR_RETURN(run_telemetry, telemetry::ProcessTelemetry::Start(config, run_dir.root(), "run", "run", true));
    SetTorchThreads(config.eval().threads());
    periodic = std::make_unique<PeriodicEvaluator>(config, std::move(evaluator),
                                                   v1::Learner::NewStub(MakeChannel(learner_address)), run_dir,
                                                   run_telemetry.get());
  }

  // judge.replicas judge processes, each with its own reward log; they start in parallel.
  std::vector<std::unique_ptr<Child>> judges;
  std::vector<std::string> judge_addresses;
  for (int i = 0; i < config.judge().replicas(); ++i) {
    const std::string replica = absl::StrCat("judge-", i);
    judges.push_back(make_child(replica, {"judge", config_path, "--run-dir", run_dir.root(), "--replica", replica}, true));
    RLJ_RETURN_IF_ERROR(StartChild(judges.back().get()));
  }
  for (auto& judge : judges) {
    RLJ_ASSIGN_OR_RETURN(std::string address, AwaitEndpoint(judge.get(), run_dir, judge->name, milliseconds(60000)));
    // A restarted judge must come back on the same address the actors already use.
    judge->argv.insert(judge->argv.end(), {"--listen", address});
    log::Info("{} at {}", judge->name, address);
    judge_addresses.push_back(std::move(address));
  }

  std::vector<std::unique_ptr<Child>> actors;
  const int actor_count = config.actor().count();
  for (int i = 0; i < actor_count; ++i) {
    actors.push_back(make_child(absl::StrCat("actor-", i),
                                {"actor", config_path, "--run-dir", run_dir.root(), "--learner", learner_address,
                                 "--judge", judge_addresses[i % judge_addresses.size()], "--index", std::to_string(i), "--count",
                                 std::to_string(actor_count)},
                                true));
    RLJ_RETURN_IF_ERROR(StartChild(actors.back().get()));
  }

  // Monitor until the learner is done, a child fails for good, or we are asked to stop.
  auto stub = v1::Learner::NewStub(MakeChannel(learner_address));
  // The judges are polled: once their spend together reaches judge.budget_usd (or one of them has spent its
  // own) the run stops like on Ctrl-C; a teacher outage shows in the progress line, and one longer than
  // judge.max_outage_s fails the run.
  std::vector<std::unique_ptr<v1::Judge::Stub>> judge_stubs;
  for (const std::string& address : judge_addresses) judge_stubs.push_back(v1::Judge::NewStub(MakeChannel(address)));
  auto next_judge_poll = Clock::now();
  JudgesNow judges_now;
  std::string stop_reason;
  const double training_start_s = elapsed();
  logs::JudgeTrafficMonitor judge_traffic(run_dir.reward_log_dir());
  v1::LearnerStatus status;
  auto last_line = Clock::now() - std::chrono::hours(1);
  absl::Status failure = absl::OkStatus();
  bool interrupted = false;
  std::string early_stop;  // why periodic evaluation ended training (eval.stop_when_no_gain_for)
  while (true) {
    if (WaitForShutdown(milliseconds(500))) {
      interrupted = true;
      log::Warn("stop requested (signal {}): stopping the run", ShutdownSignal());
      break;
    }
    if (learner->process != nullptr) {
      if (auto exit = learner->process->Poll();
          exit && (exit->ok() || !learner->restartable || exit->exit_code == kLearnerExitTrainingStopped)) {
        failure = absl::InternalError(ChildFailure(*learner, *exit));
        break;
      }
    }
    // Restarted with backoff after a crash: the learner (it resumes from its newest good checkpoint), the
    // teacher and the judges (on the addresses the others already use) and the actors.
    std::vector<Child*> workers{learner.get()};
    if (teacher != nullptr) workers.push_back(teacher.get());
    for (auto& judge : judges) workers.push_back(judge.get());
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
      if (child == learner.get() && exit->exit_code == kLearnerExitTrainingStopped) {  // stopped on purpose
        failure = absl::InternalError(ChildFailure(*child, *exit));
        break;
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

    if (Clock::now() >= next_judge_poll) {
      next_judge_poll = Clock::now() + std::chrono::seconds(2);
      judges_now = PollJudges(judge_stubs);
      WriteJudgeBackends(run_dir, judges_now);
      failure = OutageLimit(config.judge(), judges_now);
      if (!failure.ok()) {
        if (options.progress_tty) std::fprintf(stderr, "\n");
        std::fprintf(stderr, "%s\n", failure.ToString().c_str());
        break;
      }
      const double budget = config.judge().budget_usd();
      if (budget > 0 && (judges_now.budget_exhausted || judges_now.spent_usd >= budget)) {
        interrupted = true;
        stop_reason = absl::StrFormat("the judge's budget is spent ($%.4f of judge.budget_usd $%.4f)",
                                      judges_now.spent_usd, budget);
        log::Warn("{}: stopping the run (the learner checkpoints)", stop_reason);
        if (options.progress_tty) std::fprintf(stderr, "\n");
        std::fprintf(stderr, "%s: stopping the run\n", stop_reason.c_str());
        break;
      }
    }

    grpc::ClientContext context;
    SetDeadline(&context, milliseconds(5000));
    if (!stub->Status(&context, v1::StatusRequest(), &status).ok()) continue;
    if (absl::Status read = judge_traffic.Refresh(); !read.ok()) {
      RLJ_EVERY(60, log::Warn("progress: reading the reward logs: {}", read.ToString()));
    }
    const std::string line =
        ProgressLine(status, judge_traffic.Snapshot(), judges_now, elapsed(), training_start_s) + HeldOut(periodic.get());
    if (options.progress_tty) {
      std::fprintf(stderr, "\r\033[K%s", line.c_str());
      std::fflush(stderr);
    } else if (Clock::now() - last_line > std::chrono::seconds(5) || status.done()) {
      std::fprintf(stderr, "%s\n", line.c_str());
      last_line = Clock::now();
    }
    if (status.done()) break;
    if (periodic != nullptr && periodic->should_stop()) {
      const std::optional<logs::EvalPoint> best = periodic->best();
      early_stop = absl::StrFormat("no held-out gain in %d evaluations (eval.stop_when_no_gain_for): the best was "
                                   "accuracy %.3f at step %d, kept in %s",
                                   config.eval().stop_when_no_gain_for(), best ? best->accuracy : 0.0,
                                   best ? best->step : 0, run_dir.best_checkpoint_dir());
      log::Info("stopping early: {}", early_stop);
      if (options.progress_tty) std::fprintf(stderr, "\n");
      std::fprintf(stderr, "stopping early: %s\n", early_stop.c_str());
      break;
    }
  }
  if (periodic != nullptr) periodic->Stop();  // before the learner it reads from goes away
  if (options.progress_tty) std::fprintf(stderr, "\n");

  // Stop workers first, the learner last (it checkpoints on SIGTERM if it has not finished).
  for (auto& actor : actors) {
    if (actor->process) actor->process->Stop(milliseconds(15000));
  }
  for (auto& judge : judges) {
    if (judge->process) judge->process->Stop(milliseconds(15000));
  }
  if (teacher != nullptr && teacher->process) teacher->process->Stop(milliseconds(15000));
  const ExitInfo learner_exit = learner->process ? learner->process->Stop(milliseconds(60000)) : ExitInfo{.exit_code = 0};
  for (auto& rank : learner_ranks) {
    if (rank->process) rank->process->Stop(milliseconds(15000));  // rank 0 already told them to stop
  }
  if (!learner_exit.ok() && failure.ok() && !(learner_exit.signal == SIGTERM)) {
    failure = absl::InternalError(ChildFailure(*learner, learner_exit));
  }
  if (!failure.ok()) return failure;

  summary["steps"] = status.step();
  summary["policy_version"] = status.version();
  summary["interrupted"] = interrupted;
  if (!early_stop.empty()) summary["stop_reason"] = early_stop;
  if (!stop_reason.empty()) summary["stop_reason"] = stop_reason;
  summary["groups_received"] = status.groups_received();
  summary["groups_dropped_stale"] = status.groups_dropped_stale();
  summary["groups_skipped_no_signal"] = status.groups_skipped_no_signal();
  summary["samples_masked"] = status.samples_masked();
  // Batches the learner could not learn from: not steps (no update, no new version), counted by reason.
  summary["batches_skipped"] = {{"all_masked", status.batches_skipped_all_masked()},
                                {"no_signal", status.batches_skipped_no_signal()}};
  // The curve comes from the learner's own per-step log, not from polling (which can miss fast steps).
  nlohmann::json reward_curve = nlohmann::json::array();
  if (auto steps = ReadMetricsLog(run_dir.metrics_path()); steps.ok()) {
    for (const v1::StepMetrics& m : *steps) {
      reward_curve.push_back({{"step", m.step()}, {"reward_mean", m.reward_mean()}, {"reward_std", m.reward_std()},
                              {"kl", m.kl()}, {"step_s", m.step_s()}});
    }
    // The last status polled can lag the learner by a step or more (a stop request ends polling); its own
    // per-step log says where it really got to.
    if (!steps->empty()) {
      summary["steps"] = std::max<int64_t>(status.step(), steps->back().step());
      summary["policy_version"] = std::max<int64_t>(status.version(), steps->back().version());
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
    if (evaluate && !interrupted && held_out != nullptr) {
      RLJ_ASSIGN_OR_RETURN(LoadedCheckpoint final_checkpoint, LoadCheckpoint(checkpoint));
      RLJ_ASSIGN_OR_RETURN(summary["eval_after"], Evaluate(*held_out, final_checkpoint.model,
                                                           final_checkpoint.state.policy_version, "after", run_dir));
    }
  } else if (!interrupted) {
    return absl::InternalError(absl::StrCat("the learner finished without a checkpoint: ", std::string(latest.status().message())));
  }
  if (auto curve = logs::ReadEvalCurve(run_dir.eval_curve_path()); curve.ok() && !curve->empty()) {
    nlohmann::json points = nlohmann::json::array();
    for (const logs::EvalPoint& point : *curve) points.push_back(logs::EvalPointToJson(point));
    summary["eval_curve"] = points;
    if (const logs::EvalPoint* best = logs::BestPeriodicPoint(*curve); best != nullptr) {
      summary["best_checkpoint"] = {{"step", best->step}, {"accuracy", best->accuracy}, {"path", run_dir.best_checkpoint_dir()}};
    }
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
