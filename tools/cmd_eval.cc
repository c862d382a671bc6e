// cmd_eval.cc: `rlj eval`: held-out accuracy of a checkpoint (greedy decoding, answers checked against
// the references).
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "actor/evaluator.h"
#include "common/config_loader.h"
#include "common/config_validate.h"
#include "common/dataset.h"
#include "common/shutdown.h"
#include "common/tokenizer/tokenizer.h"
#include "model/checkpoint/checkpoint.h"
#include "model/tensor/torch_util.h"
#include "tools/command.h"

namespace rlj::tools {

namespace {

Command AddEvalCommand(CLI::App& parent) {
  auto* app = parent.add_subcommand("eval", "Held-out accuracy of a checkpoint on data.eval_path");
  struct Flags {
    ConfigFlags config;
    std::string checkpoint;
    std::string data;
    bool json = false;
    int show = 0;
  };
  auto flags = std::make_shared<Flags>();
  AddConfigFlags(app, &flags->config);
  app->add_option("--checkpoint", flags->checkpoint, "Checkpoint directory")->required();
  app->add_option("--data", flags->data, "Prompts JSONL (default data.eval_path)");
  app->add_flag("--json", flags->json, "Print one JSON object");
  app->add_option("--show", flags->show, "Print this many examples")->capture_default_str();
  return {app, [flags]() -> int {
            InstallShutdownHandler();
            auto config = LoadRunConfig(flags->config.config_path, flags->config.overrides);
            if (!config.ok()) return Fail("eval", std::string(config.status().message()));
            const std::string data = flags->data.empty() ? config->data().eval_path() : flags->data;
            if (data.empty()) return Fail("eval", "no prompts: set data.eval_path or pass --data");
            auto rows = LoadPromptDataset(data);
            if (!rows.ok()) return Fail("eval", std::string(rows.status().message()));
            if (config->eval().max_prompts() > 0 && static_cast<int>(rows->size()) > config->eval().max_prompts()) {
              rows->resize(static_cast<size_t>(config->eval().max_prompts()));
            }
            auto tokenizer = MakeTokenizer(config->tokenizer());
            if (!tokenizer.ok()) return Fail("eval", std::string(tokenizer.status().message()));
            SetTorchThreads(ResolveThreads(*config, 0));
            auto checkpoint = LoadCheckpoint(flags->checkpoint);
            if (!checkpoint.ok()) return Fail("eval", std::string(checkpoint.status().message()));
            auto result = EvaluateAccuracy(checkpoint->model, **tokenizer, *rows, EvalOptionsFromConfig(*config));
            if (!result.ok()) return Fail("eval", std::string(result.status().message()));
            if (flags->json) {
              nlohmann::json out = {
                  {"checkpoint", flags->checkpoint}, {"data", data},
                  {"total", result->total},          {"correct", result->correct},
                  {"accuracy", result->accuracy()},  {"mean_completion_tokens", result->mean_completion_tokens}};
              std::printf("%s\n", out.dump().c_str());
            } else {
              std::printf("accuracy %.4f (%d / %d) on %s\n", result->accuracy(), result->correct, result->total,
                          data.c_str());
            }
            for (int i = 0; i < flags->show && i < static_cast<int>(result->examples.size()); ++i) {
              const EvalExample& e = result->examples[static_cast<size_t>(i)];
              std::printf("%s %s -> %s (reference %s)\n", e.correct ? "ok " : "bad", e.prompt.c_str(),
                          e.completion.c_str(), e.reference.c_str());
            }
            return 0;
          }};
}

}  // namespace

RLJ_REGISTER_COMMAND("", 60, AddEvalCommand);

}  // namespace rlj::tools
