// cmd_run.cc: `rlj run CONFIG`: a whole supervised run on this machine (see run_supervisor.h).
#include <unistd.h>

#include "tools/command.h"
#include "tools/run_supervisor.h"

namespace rlj::tools {

namespace {

Command AddRunCommand(CLI::App& parent) {
  auto* app =
      parent.add_subcommand("run", "Run learner, judge and actors as processes on this machine, with evaluation");
  struct Flags {
    ConfigFlags config;
    std::string run_dir;
    bool overwrite = false;
    bool resume = false;
  };
  auto flags = std::make_shared<Flags>();
  AddConfigFlags(app, &flags->config);
  app->add_option("--run-dir", flags->run_dir, "Run directory (default <runs_root>/<name>)");
  app->add_flag("--overwrite", flags->overwrite, "Replace an existing run directory");
  app->add_flag("--resume", flags->resume,
                "Continue a stopped or killed run in its run directory from the newest checkpoint that verifies");
  return {app, [flags]() -> int {
            if (flags->resume && flags->overwrite) return Fail("run", "--resume and --overwrite exclude each other");
            auto prepared = PrepareCommand(flags->config, flags->run_dir, "run",
                                           flags->resume      ? ExistingRunDir::kReuse
                                           : flags->overwrite ? ExistingRunDir::kReplace
                                                              : ExistingRunDir::kRefuse);
            if (!prepared.ok()) return Fail("run", std::string(prepared.status().message()));
            SupervisorOptions options;
            options.run_dir = prepared->run_dir;
            options.config_source = flags->config.config_path;
            options.progress_tty = ::isatty(STDERR_FILENO) != 0;
            options.resume = flags->resume;
            absl::Status status = SuperviseRun(prepared->config, options);
            if (!status.ok()) return Fail("run", std::string(status.message()));
            return 0;
          }};
}

}  // namespace

RLJ_REGISTER_COMMAND("", 10, AddRunCommand);

}  // namespace rlj::tools
