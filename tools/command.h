// command.h: the contract between `rlj`'s main and each subcommand file (cmd_*.cc): a subcommand adds
// its flags to the CLI11 app and returns the function that runs it; flags are parsed only in main.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "rlj/v1/config.pb.h"

namespace rlj::tools {

struct Command {
  CLI::App* app = nullptr;
  std::function<int()> run;  // the process exit code
};

// Adds a subcommand to `parent` and returns it with its runner.
using CommandFactory = Command (*)(CLI::App& parent);

// Commands register themselves from their own file, so adding one touches no shared file:
//   RLJ_REGISTER_COMMAND("", 10, AddRunCommand);      // rlj run
//   RLJ_REGISTER_COMMAND("bench", 10, AddSyncBench);  // rlj bench sync
// `group` "" is the top level; any other group becomes a parent subcommand. `order` sorts the help.
struct CommandRegistration {
  std::string group;
  int order;
  CommandFactory factory;
};
bool RegisterCommand(const std::string& group, int order, CommandFactory factory);
const std::vector<CommandRegistration>& RegisteredCommands();

#define RLJ_REGISTER_COMMAND(group, order, factory) \
  [[maybe_unused]] static const bool rlj_registered_##factory = ::rlj::tools::RegisterCommand(group, order, factory)

// Adds the flags every config-driven subcommand shares: the config path and --set overrides.
struct ConfigFlags {
  std::string config_path;
  std::vector<std::string> overrides;
};
void AddConfigFlags(CLI::App* app, ConfigFlags* flags, bool config_required = true);

// Prints "rlj <command>: <message>" to stderr and returns the exit code for a failed command.
int Fail(const std::string& command, const std::string& message);

// What a config-driven command starts from: the validated config and its run directory, with the process
// logging to stderr and to <run_dir>/logs/<process_name>.log.
struct PreparedCommand {
  v1::RunConfig config;
  std::string run_dir;
};

// What to do when the run directory already holds something.
enum class ExistingRunDir {
  kReuse,    // processes of one run share it
  kRefuse,   // a new run must not mix with an old one
  kReplace,  // --overwrite: delete the old run first
};

// Installs the shutdown handler, loads `flags`' config (with overrides), creates the run directory
// (`run_dir_flag`, else <runs_root>/<name>) and initialises logging as `process_name`.
absl::StatusOr<PreparedCommand> PrepareCommand(const ConfigFlags& flags, const std::string& run_dir_flag,
                                               const std::string& process_name,
                                               ExistingRunDir existing = ExistingRunDir::kReuse);

// The run directory a config names: <runs_root>/<name> (name defaults to the config file's stem).
std::string DefaultRunDir(const v1::RunConfig& config);

}  // namespace rlj::tools
