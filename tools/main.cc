// main.cc: `rlj`, the one binary with every role as a subcommand (kubectl/vllm style).
#include <cstdio>
#include <exception>
#include <string>

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

}  // namespace rlj::tools

int main(int argc, char** argv) {
  using namespace rlj::tools;
  CLI::App app{"rlj: reinforcement learning of language models with a teacher model as the judge"};
  app.require_subcommand(1);
  app.set_help_all_flag("--help-all", "Help for every subcommand");
  const Command commands[] = {
      AddRunCommand(app),   AddSftCommand(app),  AddEvalCommand(app),   AddLearnerCommand(app),
      AddJudgeCommand(app), AddActorCommand(app), AddDatasetCommand(app),
  };
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
