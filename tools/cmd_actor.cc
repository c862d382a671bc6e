// cmd_actor.cc: `rlj actor`: one rollout worker, addressed at a learner and a judge.
#include "absl/strings/str_cat.h"
#include "actor/rollout_worker.h"
#include "common/heap_tuning.h"
#include "common/run_dir.h"
#include "tools/command.h"

namespace rlj::tools {

namespace {

Command AddActorCommand(CLI::App& parent) {
  auto* app =
      parent.add_subcommand("actor", "Sample groups of completions, have them judged, push them to the learner");
  struct Flags {
    ConfigFlags config;
    std::string run_dir;
    std::string learner;
    std::string judge;
    ActorOptions actor;
  };
  auto flags = std::make_shared<Flags>();
  AddConfigFlags(app, &flags->config);
  app->add_option("--run-dir", flags->run_dir, "Run directory (default <runs_root>/<name>)");
  app->add_option("--learner", flags->learner, "Learner HOST:PORT (default: the run directory's endpoints/learner)");
  app->add_option("--judge", flags->judge, "Judge HOST:PORT (default: the run directory's endpoints/judge-0)");
  app->add_option("--index", flags->actor.index, "This actor's shard of the prompts")->capture_default_str();
  app->add_option("--count", flags->actor.count, "Number of prompt shards (actors)")->capture_default_str();
  app->add_option("--name", flags->actor.name, "Actor name (default actor-<index>)");
  return {
      app, [flags]() -> int {
        KeepLargeBuffersInTheHeap();  // fetched weight chunks reuse heap memory (before any thread starts)
        if (flags->actor.name == "actor-0" || flags->actor.name.empty()) {
          flags->actor.name = absl::StrCat("actor-", flags->actor.index);
        }
        auto prepared = PrepareCommand(flags->config, flags->run_dir, flags->actor.name);
        if (!prepared.ok()) return Fail("actor", std::string(prepared.status().message()));
        const RunDir run_dir(prepared->run_dir);
        flags->actor.run_dir = prepared->run_dir;
        for (auto [address, service] : {std::pair{&flags->learner, "learner"}, std::pair{&flags->judge, "judge-0"}}) {
          if (!address->empty()) continue;
          auto from_file = run_dir.ReadEndpoint(service);
          if (!from_file.ok()) {
            return Fail("actor", absl::StrCat("no --", service == std::string("learner") ? "learner" : "judge",
                                              " address given and none in the run directory: ",
                                              std::string(from_file.status().message())));
          }
          *address = *from_file;
        }
        absl::Status status = RunActor(prepared->config, flags->actor, flags->learner, flags->judge);
        if (!status.ok()) return Fail("actor", std::string(status.message()));
        return 0;
      }};
}

}  // namespace

RLJ_REGISTER_COMMAND("", 40, AddActorCommand);

}  // namespace rlj::tools
