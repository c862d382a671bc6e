// judge_server.h: a judge replica as a process: reward log and answer cache in the run directory, usage
// ledger with the budget, backend, gRPC server, endpoint file. JudgeServer runs in-process (tests, `rlj run`);
// RunJudgeServer blocks until shutdown.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/grpc_util.h"
#include "common/telemetry/metrics_registry.h"
#include "common/telemetry/process_telemetry.h"
#include "judge/backend_registry.h"
#include "judge/judge_cache.h"
#include "judge/judge_service.h"
#include "judge/usage_ledger.h"
#include "rlj/v1/config.pb.h"

namespace rlj {

struct JudgeServerOptions {
  std::string listen;   // host:port; empty = config.judge().listen()
  std::string run_dir;  // required: holds reward_log/<replica>.sqlite and endpoints/<replica>
  std::string replica = "judge-0";
};

class JudgeServer {
 public:
  JudgeServer(v1::RunConfig config, JudgeServerOptions options, JudgeBackendDeps deps = {});
  ~JudgeServer();  // stops the server if it still runs
  JudgeServer(const JudgeServer&) = delete;
  JudgeServer& operator=(const JudgeServer&) = delete;

  // Opens the reward log, builds the backend, starts serving, writes the endpoint file; returns the bound
  // address (host:port). Does not block. Fails if already started.
  absl::StatusOr<std::string> Start();

  // Stops accepting calls; calls still running get until `grace` to finish, then are cancelled. Idempotent.
  void Stop(std::chrono::milliseconds grace = std::chrono::seconds(5));

  const std::string& address() const { return address_; }
  // Valid between Start and destruction.
  JudgeService* service() const { return service_.get(); }

 private:
  v1::RunConfig config_;
  JudgeServerOptions options_;
  JudgeBackendDeps deps_;
  std::unique_ptr<JudgeCache> cache_;  // outlives the backend that uses it
  std::shared_ptr<UsageLedger> ledger_;
  std::shared_ptr<telemetry::ProcessTelemetry> telemetry_;  // /metrics and TensorBoard (outlives service_)
  std::unique_ptr<JudgeService> service_;
  telemetry::MetricsRegistry::CollectorHandle counters_metrics_;  // destroyed before service_
  std::unique_ptr<grpc::Server> server_;
  std::string address_;
};

// Runs a judge replica until SIGINT/SIGTERM (common/shutdown.h), then shuts it down within a few seconds.
absl::Status RunJudgeServer(const v1::RunConfig& config, const JudgeServerOptions& options);

}  // namespace rlj
