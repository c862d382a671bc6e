// judge_server.cc: wiring of a judge replica (run dir, reward log, backend, server) and its lifetime.
#include "judge/judge_server.h"

#include <grpcpp/server.h>

#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "common/run_dir.h"
#include "common/shutdown.h"
#include "common/status.h"
#include "common/tokenizer/tokenizer.h"
#include "common/tokenizer/tokenizer_fingerprint.h"
#include "judge/quality/judge_counters_metrics.h"
#include "judge/quality/judge_quality.h"

namespace rlj {
namespace {

// The student's tokenizer as the backends' start checks compare it (distill mode).
JudgeStartContext StartContext(const v1::RunConfig& config) {
  JudgeStartContext context;
  context.student_tokenizer = config.tokenizer().kind() == v1::TokenizerConfig::hf
                                  ? absl::StrCat("tokenizer.path ", config.tokenizer().path())
                                  : "tokenizer.kind byte";
  absl::StatusOr<std::unique_ptr<Tokenizer>> tokenizer = MakeTokenizer(config);
  if (tokenizer.ok()) {
    context.student_tokenizer_fingerprint = TokenizerFingerprint(**tokenizer);
  } else {
    absl::StrAppend(&context.student_tokenizer, " (", tokenizer.status().message(), ")");
  }
  return context;
}

}  // namespace

JudgeServer::JudgeServer(v1::RunConfig config, JudgeServerOptions options, JudgeBackendDeps deps)
    : config_(std::move(config)), options_(std::move(options)), deps_(std::move(deps)) {}

JudgeServer::~JudgeServer() { Stop(); }

absl::StatusOr<std::string> JudgeServer::Start() {
  if (server_ != nullptr) return absl::FailedPreconditionError("judge server already started");
  if (options_.run_dir.empty()) return absl::InvalidArgumentError("judge server: no run directory given");
  if (options_.replica.empty()) return absl::InvalidArgumentError("judge server: empty replica name");
  const v1::JudgeConfig& judge = config_.judge();
  const RunDir run_dir(options_.run_dir);
  RLJ_RETURN_IF_ERROR(run_dir.Create());
  RLJ_ASSIGN_OR_RETURN(std::unique_ptr<RewardLogWriter> reward_log,
                       RewardLogWriter::Open(run_dir.reward_log_path(options_.replica)));
  JudgeBackendDeps deps = deps_;
  if (judge.cache().enabled() && deps.cache == nullptr) {
    const std::string cache_path =
        judge.cache().path().empty() ? run_dir.root() + "/judge_cache.sqlite" : judge.cache().path();
    RLJ_ASSIGN_OR_RETURN(cache_, JudgeCache::Open(cache_path));
    deps.cache = cache_.get();
  }
  ledger_ = std::make_shared<UsageLedger>(judge.budget_usd());
  if (deps.ledger == nullptr) deps.ledger = ledger_.get();
  RLJ_ASSIGN_OR_RETURN(std::unique_ptr<JudgeBackend> backend, MakeJudgeBackend(judge, deps));
  RLJ_RETURN_IF_ERROR(backend->CheckAtStart(StartContext(config_)));
  auto service = std::make_unique<JudgeService>(std::move(backend), std::move(reward_log), ledger_);
  RLJ_ASSIGN_OR_RETURN(telemetry_, telemetry::ProcessTelemetry::Start(config_, options_.run_dir, options_.replica,
                                                                      "judge", /*with_tensorboard=*/true));
  RLJ_ASSIGN_OR_RETURN(std::shared_ptr<JudgeQuality> quality, JudgeQuality::Create(config_, telemetry_));
  service->SetQuality(std::move(quality));
  service->SetOutagePolicy(OutagePolicyFromConfig(judge.on_outage()));
  service->ExportOutageMetrics(&telemetry_->metrics());

  ServerOptions server_options;
  server_options.listen = options_.listen.empty() ? judge.listen() : options_.listen;
  server_options.max_concurrent_rpcs = judge.threads();
  RLJ_ASSIGN_OR_RETURN(RunningServer running, StartServer(server_options, {service.get()}));
  service_ = std::move(service);
  counters_metrics_ = ExportJudgeCounters(service_.get(), &telemetry_->metrics());
  server_ = std::move(running.server);
  address_ = running.address;
  if (absl::Status written = run_dir.WriteEndpoint(options_.replica, address_); !written.ok()) {
    Stop();
    return written;
  }
  log::Info("judge backend {} ({}), reward log {}, cache {}{}, on outage: {}", service_->backend().name(),
            service_->backend().model(), run_dir.reward_log_path(options_.replica),
            cache_ != nullptr ? cache_->path() : std::string("off"),
            judge.budget_usd() > 0 ? absl::StrCat(", budget $", judge.budget_usd()) : std::string(),
            v1::JudgeConfig::OutagePolicy_Name(judge.on_outage()));
  log::Info("judge listening on {}", address_);
  return address_;
}

void JudgeServer::Stop(std::chrono::milliseconds grace) {
  if (server_ == nullptr) return;
  server_->Shutdown(std::chrono::system_clock::now() + grace);
  server_->Wait();
  server_.reset();
}

absl::Status RunJudgeServer(const v1::RunConfig& config, const JudgeServerOptions& options) {
  JudgeServer server(config, options);
  RLJ_RETURN_IF_ERROR(server.Start().status());
  WaitForShutdown();
  log::Info("judge {} shutting down", options.replica);
  server.Stop(std::chrono::seconds(5));
  const v1::JudgeStatus status = server.service()->StatusNow();
  log::Info(
      "judge {} stopped: {} requests, {} samples, {} errors, {} cache hits, {} tokens in, {} tokens out, "
      "${:.4f} spent{}, {} reward log failures, {} teacher outages, {} calls paused",
      options.replica, status.requests(), status.samples(), status.errors(), status.cache_hits(), status.tokens_in(),
      status.tokens_out(), status.cost_usd(), status.budget_exhausted() ? " (budget exhausted)" : "",
      status.reward_log_failures(), server.service()->counters().outages, server.service()->counters().paused_requests);
  return absl::OkStatus();
}

}  // namespace rlj
