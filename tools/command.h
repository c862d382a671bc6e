// command.h: the contract between `rlj`'s main and each subcommand file (cmd_*.cc): a subcommand adds
// its flags to the CLI11 app and returns the function that runs it; flags are parsed only in main.
#pragma once

#include <CLI/CLI.hpp>

#include <functional>
#include <string>
#include <vector>

namespace rlj::tools {

struct Command {
  CLI::App* app = nullptr;
  std::function<int()> run;  // the process exit code
};

Command AddDatasetCommand(CLI::App& parent);
Command AddJudgeCommand(CLI::App& parent);
Command AddLearnerCommand(CLI::App& parent);
Command AddActorCommand(CLI::App& parent);
Command AddSftCommand(CLI::App& parent);
Command AddEvalCommand(CLI::App& parent);
Command AddRunCommand(CLI::App& parent);

// Adds the flags every config-driven subcommand shares: the config path and --set overrides.
struct ConfigFlags {
  std::string config_path;
  std::vector<std::string> overrides;
};
void AddConfigFlags(CLI::App* app, ConfigFlags* flags, bool config_required = true);

// Prints "rlj <command>: <message>" to stderr and returns the exit code for a failed command.
int Fail(const std::string& command, const std::string& message);

}  // namespace rlj::tools
