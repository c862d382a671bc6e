// cmd_learner.cc: `rlj learner`: the GRPO learner: takes pushed rollouts, trains, serves versioned weights.
#include "absl/strings/str_cat.h"
#include "common/grpc_util.h"
#include "common/heap_tuning.h"
#include "common/shutdown.h"
#include "learner/learner_server.h"
#include "tools/command.h"

namespace rlj::tools {

namespace {

Command AddLearnerCommand(CLI::App& parent) {
  auto* app = parent.add_subcommand("learner", "Train the policy with GRPO on pushed rollouts and serve its weights");
  struct Flags {
    ConfigFlags config;
    std::string listen;
    std::string run_dir;
    bool resume = false;
  };
  auto flags = std::make_shared<Flags>();
  AddConfigFlags(app, &flags->config);
  app->add_option("--listen", flags->listen, "HOST:PORT to serve on (default learner.listen; port 0 picks a free one)");
  app->add_option("--run-dir", flags->run_dir, "Run directory (default <runs_root>/<name>)");
  app->add_flag("--resume", flags->resume,
                "Continue from the newest checkpoint in <run dir>/checkpoints that verifies (fresh start if none)");
  app->footer(
      "Data-parallel ranks read the torchrun variables RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT: rank 0 serves "
      "and checkpoints, the other ranks train their share of every step.");
  return {app, [flags]() -> int {
            InstallShutdownHandler();     // before any thread starts (PrepareCommand repeats it harmlessly)
            KeepLargeBuffersInTheHeap();  // weight chunks served to actors reuse heap memory
            if (!flags->listen.empty()) {
              if (absl::Status s = CheckListenAddress(flags->listen); !s.ok()) {
                return Fail("learner", "--listen: " + std::string(s.message()));
              }
            }
            // Loads the config, creates the run directory, logs to <run_dir>/logs/learner.log.
            auto ranks = RankGroupOptionsFromEnvironment();
            if (!ranks.ok()) return Fail("learner", std::string(ranks.status().message()));
            const std::string process = ranks->rank == 0 ? "learner" : absl::StrCat("learner-", ranks->rank);
            auto prepared = PrepareCommand(flags->config, flags->run_dir, process);
            if (!prepared.ok()) return Fail("learner", std::string(prepared.status().message()));
            LearnerServerOptions options;
            options.listen = flags->listen;
            options.run_dir = prepared->run_dir;
            options.resume = flags->resume;
            options.ranks = *ranks;
            absl::Status status = RunLearner(prepared->config, options);
            if (!status.ok()) {
              const int code = Fail("learner", std::string(status.message()));
              return IsTrainingStoppedError(status) ? kLearnerExitTrainingStopped
                                                    : code;  // `rlj run` must not restart it
            }
            return 0;
          }};
}

}  // namespace

RLJ_REGISTER_COMMAND("", 20, AddLearnerCommand);

}  // namespace rlj::tools
