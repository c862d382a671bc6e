// cmd_dataset.cc: `rlj dataset arithmetic` writes the demo's generated task as train/eval JSONL; `rlj dataset
// grading` turns such a task into the grading data a teacher model is trained on.
#include <cstdio>
#include <filesystem>
#include <functional>
#include <memory>

#include "absl/strings/str_cat.h"
#include "common/arithmetic_task.h"
#include "common/dataset.h"
#include "common/file_util.h"
#include "tools/command.h"

namespace rlj::tools {

namespace {

// `rlj dataset grading --from FILE --out FILE`: "a+b=c?" (or "a+b=c|ref?" with --template) → Y/N rows from
// problems with integer answers.
void AddGradingCommand(CLI::App* dataset, std::function<int()>* run) {
  auto* grading = dataset->add_subcommand(
      "grading", "Grading rows for a teacher: each problem with its right answer or a near miss, labelled Y or N");
  struct Flags {
    std::string from;
    std::string out;
    GradingOptions options;
    int limit = 0;
  };
  auto flags = std::make_shared<Flags>();
  grading->add_option("--from", flags->from, "Problems with integer references (JSONL, e.g. the task's train.jsonl)")
      ->required();
  grading->add_option("--out", flags->out, "Output JSONL file")->required();
  grading->add_option("--template", flags->options.prompt_template,
                      "Grading prompt; {prompt}, {completion} and {reference} (the right answer) are substituted")
      ->capture_default_str();
  grading->add_option("--correct-label", flags->options.correct_label, "Reference of a right candidate")
      ->capture_default_str();
  grading->add_option("--wrong-label", flags->options.wrong_label, "Reference of a wrong candidate")->capture_default_str();
  grading->add_option("--correct-fraction", flags->options.correct_fraction, "Share of rows with the right answer")
      ->capture_default_str();
  grading->add_option("--junk-fraction", flags->options.junk_fraction,
                      "Share of wrong candidates that are junk (empty, the answer with junk around it, cut short, "
                      "random) rather than near misses")
      ->capture_default_str();
  grading->add_option("--rows-per-problem", flags->options.rows_per_problem, "Grading rows per problem")
      ->capture_default_str();
  grading->add_flag("--with-answers", flags->options.include_answers,
                    "Also keep every problem as a plain prompt -> answer row (the teacher learns the task too)");
  grading->add_flag("--with-copies", flags->options.include_copies,
                    "Also a row per problem that copies the reference after the template's text before "
                    "{completion} (needs {reference} there; teaches the teacher to match characters)");
  grading->add_option("--limit", flags->limit, "Use only the first N problems (0 = all)")->capture_default_str();
  grading->add_option("--seed", flags->options.seed, "Seed")->capture_default_str();
  *run = [flags]() -> int {
    auto problems = LoadPromptDataset(flags->from);
    if (!problems.ok()) return Fail("dataset grading", std::string(problems.status().message()));
    if (flags->limit > 0 && problems->size() > static_cast<size_t>(flags->limit)) {
      problems->resize(static_cast<size_t>(flags->limit));
    }
    auto rows = MakeGradingDataset(*problems, flags->options);
    if (!rows.ok()) return Fail("dataset grading", std::string(rows.status().message()));
    const std::string parent = std::filesystem::path(flags->out).parent_path().string();
    if (!parent.empty()) {
      if (absl::Status s = MakeDirectories(parent); !s.ok()) return Fail("dataset grading", std::string(s.message()));
    }
    if (absl::Status s = WritePromptDataset(flags->out, *rows); !s.ok()) {
      return Fail("dataset grading", std::string(s.message()));
    }
    std::printf("wrote %zu rows to %s\n", rows->size(), flags->out.c_str());
    return 0;
  };
}

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
  auto run_grading = std::make_shared<std::function<int()>>();
  AddGradingCommand(app, run_grading.get());
  return {app, [flags, arithmetic, run_grading]() -> int {
            if (!arithmetic->parsed()) return (*run_grading)();
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
