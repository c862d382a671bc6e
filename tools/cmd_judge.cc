// cmd_judge.cc: `rlj judge`: one judge replica serving Judge.Score with the configured backend.
#include "common/shutdown.h"
#include "judge/judge_server.h"
#include "tools/command.h"

namespace rlj::tools {

namespace {

Command AddJudgeCommand(CLI::App& parent) {
  auto* app = parent.add_subcommand("judge", "Serve Judge.Score: score completions with the configured judge backend");
  struct Flags {
    ConfigFlags config;
    std::string listen;
    std::string run_dir;
    std::string replica = "judge-0";
  };
  auto flags = std::make_shared<Flags>();
  AddConfigFlags(app, &flags->config);
  app->add_option("--listen", flags->listen, "HOST:PORT to serve on (default judge.listen; port 0 picks a free one)");
  app->add_option("--run-dir", flags->run_dir, "Run directory (default <runs_root>/<name>)");
  app->add_option("--replica", flags->replica, "Replica name: endpoints/NAME, reward_log/NAME.sqlite, logs/NAME.log")
      ->capture_default_str();
  return {app, [flags]() -> int {
            InstallShutdownHandler();  // before any thread starts (PrepareCommand repeats it harmlessly)
            if (flags->replica.empty() || flags->replica.find('/') != std::string::npos) {
              return Fail("judge", "--replica must be a non-empty name without '/'");
            }
            // Loads the config, creates the run directory, logs to <run_dir>/logs/<replica>.log.
            auto prepared = PrepareCommand(flags->config, flags->run_dir, flags->replica);
            if (!prepared.ok()) return Fail("judge", std::string(prepared.status().message()));
            JudgeServerOptions options;
            options.listen = flags->listen;
            options.run_dir = prepared->run_dir;
            options.replica = flags->replica;
            absl::Status status = RunJudgeServer(prepared->config, options);
            if (!status.ok()) return Fail("judge", std::string(status.message()));
            return 0;
          }};
}

}  // namespace

RLJ_REGISTER_COMMAND("", 30, AddJudgeCommand);

}  // namespace rlj::tools
