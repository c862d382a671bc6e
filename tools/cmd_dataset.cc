// cmd_dataset.cc: `rlj dataset arithmetic`: writes the demo's generated task as train/eval JSONL.
#include "absl/strings/str_cat.h"
#include "common/arithmetic_task.h"
#include "common/dataset.h"
#include "common/file_util.h"
#include "tools/command.h"

namespace rlj::tools {

namespace {

Command AddDatasetCommand(CLI::App& parent) {
  auto* app = parent.add_subcommand("dataset", "Generate prompt datasets with verifiable answers");
  app->require_subcommand(1);
  auto* arithmetic = app->add_subcommand("arithmetic", "a+b= problems: DIR/train.jsonl and DIR/eval.jsonl (held out)");
  struct Flags {
    std::string out;
    ArithmeticTaskOptions options;
  };
  auto flags = std::make_shared<Flags>();
  arithmetic->add_option("--out", flags->out, "Output directory")->required();
  arithmetic->add_option("--train", flags->options.train_size, "Training problems")->capture_default_str();
  arithmetic->add_option("--eval", flags->options.eval_size, "Held-out problems")->capture_default_str();
  arithmetic->add_option("--min-operand", flags->options.min_operand, "Smallest operand")->capture_default_str();
  arithmetic->add_option("--max-operand", flags->options.max_operand, "Largest operand")->capture_default_str();
  arithmetic->add_option("--ops", flags->options.ops, "Operators, any of +-*")->capture_default_str();
  arithmetic->add_option("--seed", flags->options.seed, "Seed")->capture_default_str();
  return {app, [flags]() -> int {
            auto split = MakeArithmeticTask(flags->options);
            if (!split.ok()) return Fail("dataset", std::string(split.status().message()));
            if (absl::Status s = MakeDirectories(flags->out); !s.ok()) return Fail("dataset", std::string(s.message()));
            for (const auto& [name, rows] : {std::pair{"train", &split->train}, std::pair{"eval", &split->eval}}) {
              const std::string path = absl::StrCat(flags->out, "/", name, ".jsonl");
              if (absl::Status s = WritePromptDataset(path, *rows); !s.ok()) return Fail("dataset", std::string(s.message()));
              std::printf("wrote %zu rows to %s\n", rows->size(), path.c_str());
            }
            return 0;
          }};
}

}  // namespace

RLJ_REGISTER_COMMAND("", 90, AddDatasetCommand);

}  // namespace rlj::tools
