// main.cc: `rlj`, the one binary with every role as a subcommand (kubectl/vllm style).

#include <algorithm>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <map>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/config_loader.h"
#include "common/grpc_security.h"
#include "common/heap_tuning.h"
#include "common/log.h"
#include "common/run_dir.h"
#include "common/shutdown.h"
#include "common/status.h"
#include "judge/backend_registry.h"
#include "tools/command.h"

namespace rlj::tools {

void AddConfigFlags(CLI::App* app, ConfigFlags* flags, bool config_required) {
  auto* option = app->add_option("config,--config", flags->config_path, "Run config (YAML)");
  if (config_required) option->required();
  app->add_option("--set", flags->overrides, "Override a config key: --set learner.lr=1e-4 (repeatable)");
}

int Fail(const std::string& command, const std::string& message) {
  std::fprintf(stderr, "rlj %s: %s\n", command.c_str(), message.c_str());
  return 1;
}

std::string DefaultRunDir(const v1::RunConfig& config) {
  return config.runs_root() + "/" + (config.name().empty() ? std::string("run") : config.name());
}

absl::StatusOr<PreparedCommand> PrepareCommand(const ConfigFlags& flags, const std::string& run_dir_flag,
                                               const std::string& process_name, ExistingRunDir existing) {
  InstallShutdownHandler();
  PreparedCommand prepared;
  RLJ_ASSIGN_OR_RETURN(prepared.config, LoadRunConfig(flags.config_path, flags.overrides));
  // The judge section's backends check themselves (judge/backend_registry), before any command does work.
  RLJ_RETURN_IF_ERROR(Annotate(ValidateJudgeConfig(prepared.config.judge()), flags.config_path));
  // Every server and channel this process makes from here on uses the run's TLS and bearer token; a missing
  // certificate or token stops the command before it touches the run directory.
  RLJ_RETURN_IF_ERROR(InstallGrpcSecurity(prepared.config.security()));
  if (!prepared.config.has_name()) {
    // A config without a name runs under its file's stem: configs/demo.yaml → runs/demo.
    const std::filesystem::path stem = std::filesystem::path(flags.config_path).stem();
    prepared.config.set_name(stem.empty() ? "run" : stem.string());
  }
  prepared.run_dir = run_dir_flag.empty() ? DefaultRunDir(prepared.config) : run_dir_flag;
  std::error_code ec;
  if (existing != ExistingRunDir::kReuse && std::filesystem::is_directory(prepared.run_dir, ec) &&
      !std::filesystem::is_empty(prepared.run_dir, ec)) {
    if (existing == ExistingRunDir::kRefuse) {
      return absl::AlreadyExistsError(
          absl::StrCat("run directory ", prepared.run_dir,
                       " already holds a run; pass --overwrite to replace it, or set another name"));
    }
    std::filesystem::remove_all(prepared.run_dir, ec);
    if (ec) return absl::UnavailableError(absl::StrCat("cannot remove ", prepared.run_dir, ": ", ec.message()));
  }
  const RunDir run_dir(prepared.run_dir);
  RLJ_RETURN_IF_ERROR(run_dir.Create());
  RLJ_RETURN_IF_ERROR(log::Init(process_name, prepared.config.runtime().log_level(), run_dir.log_path(process_name)));
  if (const std::string security = DescribeGrpcSecurity(); security != "plaintext") {
    log::Info("gRPC transport security: {}", security);
  }
  return prepared;
}

bool RegisterCommand(const std::string& group, int order, CommandFactory factory) {
  const_cast<std::vector<CommandRegistration>&>(RegisteredCommands()).push_back({group, order, factory});
  return true;
}

const std::vector<CommandRegistration>& RegisteredCommands() {
  static std::vector<CommandRegistration> registrations;  // filled by static initialisers of cmd_*.cc
  return registrations;
}

namespace {

// What each command group is for, in `rlj --help`.
std::string GroupDescription(const std::string& group) {
  if (group == "bench") return "Benchmarks; each prints one JSON line";
  return "Commands of " + group;
}

}  // namespace
}  // namespace rlj::tools

namespace {

// Whether the command line names `rlj learner`, `rlj actor` or `rlj bench sync`.
bool MovesWeightBuffers(int argc, char** argv) {
  if (argc < 2) return false;
  const std::string command = argv[1];
  return command == "learner" || command == "actor" ||
         (command == "bench" && argc >= 3 && std::string(argv[2]) == "sync");
}

}  // namespace

int main(int argc, char** argv) {
  using namespace rlj::tools;
  rlj::KeepFreedMemoryInTheHeap();
  if (MovesWeightBuffers(argc, argv)) rlj::UseOneMallocArena();  // before any thread exists
  CLI::App app{"rlj: reinforcement learning of language models with a teacher model as the judge"};
  app.require_subcommand(1);
  app.set_help_all_flag("--help-all", "Help for every subcommand");

  std::vector<CommandRegistration> registrations = RegisteredCommands();
  std::stable_sort(registrations.begin(), registrations.end(), [](const auto& a, const auto& b) {
    return a.group != b.group ? a.group < b.group : a.order < b.order;
  });
  std::map<std::string, CLI::App*> groups;
  std::vector<Command> commands;
  for (const CommandRegistration& registration : registrations) {
    CLI::App* parent = &app;
    if (!registration.group.empty()) {
      CLI::App*& group = groups[registration.group];
      if (group == nullptr) {
        group = app.add_subcommand(registration.group, GroupDescription(registration.group));
        group->require_subcommand(1);
      }
      parent = group;
    }
    commands.push_back(registration.factory(*parent));
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  for (const Command& command : commands) {
    if (!command.app->parsed()) continue;
    try {
      return command.run();
    } catch (const std::exception& e) {
      // LibTorch and the standard library report through exceptions; never let one end in a stack trace.
      std::string what = e.what();
      if (const size_t newline = what.find('\n'); newline != std::string::npos) what.resize(newline);
      std::fprintf(stderr, "rlj %s: internal error: %s\n", command.app->get_name().c_str(), what.c_str());
      return 70;
    }
  }
  return 2;
}
