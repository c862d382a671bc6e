// cmd_sft.cc: `rlj sft`: supervised warm start on prompt → reference pairs, saved as a checkpoint.
#include "common/shutdown.h"
#include "learner/sft_trainer.h"
#include "tools/command.h"

namespace rlj::tools {

namespace {

Command AddSftCommand(CLI::App& parent) {
  auto* app = parent.add_subcommand("sft", "Supervised warm start: next-token cross-entropy on prompt -> reference");
  struct Flags {
    ConfigFlags config;
    std::string output;
    std::string run_dir;
  };
  auto flags = std::make_shared<Flags>();
  AddConfigFlags(app, &flags->config);
  app->add_option("--output", flags->output, "Checkpoint directory (default sft.output, else <run dir>/sft)");
  app->add_option("--run-dir", flags->run_dir, "Run directory (default <runs_root>/<name>)");
  return {app, [flags]() -> int {
            InstallShutdownHandler();  // before any thread starts (PrepareCommand repeats it harmlessly)
            // Loads the config, creates the run directory, logs to <run_dir>/logs/sft.log.
            auto prepared = PrepareCommand(flags->config, flags->run_dir, "sft");
            if (!prepared.ok()) return Fail("sft", std::string(prepared.status().message()));
            SftOptions options;
            options.output_dir = flags->output;
            options.run_dir = prepared->run_dir;
            options.stop_requested = [] { return ShutdownRequested(); };
            absl::Status status = RunSft(prepared->config, options);
            if (!status.ok()) return Fail("sft", std::string(status.message()));
            return 0;
          }};
}

}  // namespace

RLJ_REGISTER_COMMAND("", 50, AddSftCommand);

}  // namespace rlj::tools
