// cmd_status.cc: `rlj status`: a learner's status as JSON, optionally waiting until its training is done
// (for scripts: Slurm jobs, Kubernetes jobs, CI).
#include <google/protobuf/util/json_util.h>

#include <chrono>
#include <filesystem>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/config_loader.h"
#include "common/grpc_security.h"
#include "common/grpc_util.h"
#include "common/run_dir.h"
#include "common/shutdown.h"
#include "rlj/v1/learner.grpc.pb.h"
#include "tools/command.h"

namespace rlj::tools {
namespace {

Command AddStatusCommand(CLI::App& parent) {
  auto* app = parent.add_subcommand("status", "Print a learner's status as JSON (step, version, metrics, done)");
  struct Flags {
    std::string learner;
    std::string run_dir;
    std::string config;
    bool wait_done = false;
    int timeout_s = 0;
  };
  auto flags = std::make_shared<Flags>();
  app->add_option("--learner", flags->learner, "Learner HOST:PORT");
  app->add_option("--run-dir", flags->run_dir, "Read the learner's address from this run directory");
  app->add_option("--config", flags->config,
                  "Run config whose security section (TLS, token) reaches the learner; default <run dir>/config.yaml");
  app->add_flag("--wait-done", flags->wait_done,
                "Wait until training is done (retrying while the learner is unreachable)");
  app->add_option("--timeout", flags->timeout_s, "Give up after this many seconds (0 = never)")->capture_default_str();
  return {app, [flags]() -> int {
            InstallShutdownHandler();
            std::string address = flags->learner;
            if (address.empty() && !flags->run_dir.empty()) {
              auto endpoint = RunDir(flags->run_dir).ReadEndpoint("learner");
              if (!endpoint.ok()) return Fail("status", std::string(endpoint.status().message()));
              address = *endpoint;
            }
            if (address.empty()) return Fail("status", "give --learner HOST:PORT or --run-dir DIR");
            std::string config_path = flags->config;
            if (config_path.empty() && !flags->run_dir.empty() &&
                std::filesystem::exists(RunDir(flags->run_dir).config_path())) {
              config_path = RunDir(flags->run_dir).config_path();
            }
            if (!config_path.empty()) {
              auto config = LoadRunConfig(config_path);
              if (!config.ok()) return Fail("status", std::string(config.status().message()));
              if (absl::Status s = InstallGrpcSecurity(config->security()); !s.ok()) {
                return Fail("status", std::string(s.message()));
              }
            }
            if (absl::Status s = CheckListenAddress(address); !s.ok()) return Fail("status", std::string(s.message()));
            auto stub = v1::Learner::NewStub(MakeChannel(address));
            const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(flags->timeout_s);
            v1::LearnerStatus status;
            while (true) {
              grpc::ClientContext context;
              SetDeadline(&context, std::chrono::seconds(10));
              const grpc::Status rpc = stub->Status(&context, v1::StatusRequest(), &status);
              if (rpc.ok() && (!flags->wait_done || status.done())) break;
              if (!rpc.ok() && !flags->wait_done) {
                return Fail("status", absl::StrCat("Learner.Status at ", address, ": ", rpc.error_message()));
              }
              if (flags->timeout_s > 0 && std::chrono::steady_clock::now() > give_up) {
                return Fail("status", absl::StrCat("learner at ", address, " not done after ", flags->timeout_s, " s"));
              }
              if (WaitForShutdown(std::chrono::seconds(2))) return 130;  // polling interval between status calls
            }
            google::protobuf::util::JsonPrintOptions options;
            options.preserve_proto_field_names = true;
            std::string json;
            (void)google::protobuf::util::MessageToJsonString(status, &json, options);
            std::printf("%s\n", json.c_str());
            return 0;
          }};
}

}  // namespace

RLJ_REGISTER_COMMAND("", 70, AddStatusCommand);

}  // namespace rlj::tools
