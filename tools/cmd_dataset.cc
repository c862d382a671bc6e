// cmd_dataset.cc: `rlj dataset arithmetic` writes the demo's generated task as train/eval JSONL; `rlj dataset
// grading` turns such a task into the grading data a teacher model is trained on; `rlj dataset reasoning-gym`
// writes a Reasoning Gym task through tools/reasoning_gym_dataset.py and the project venv's Python.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/arithmetic_task.h"
#include "common/dataset.h"
#include "common/file_util.h"
#include "common/status.h"
#include "common/subprocess.h"
#include "tools/command.h"

namespace rlj::tools {

namespace {

// The candidates of the grading rows as canaries: {id, prompt, completion, reference, expected_reward} per line.
absl::Status WriteGradingCanaries(const std::vector<PromptRow>& problems, const GradingOptions& options,
                                  const std::string& path) {
  RLJ_ASSIGN_OR_RETURN(const std::vector<GradingCandidate> candidates, MakeGradingCandidates(problems, options));
  std::string out;
  for (size_t i = 0; i < candidates.size(); ++i) {
    const PromptRow& problem = problems[candidates[i].problem];
    out += nlohmann::json{{"id", absl::StrCat("grade-", i)},
                          {"prompt", problem.prompt},
                          {"completion", candidates[i].completion},
                          {"reference", problem.reference},
                          {"expected_reward", candidates[i].correct ? 1.0 : 0.0}}
               .dump();
    out += "\n";
  }
  const std::string parent = std::filesystem::path(path).parent_path().string();
  if (!parent.empty()) RLJ_RETURN_IF_ERROR(MakeDirectories(parent));
  RLJ_RETURN_IF_ERROR(WriteFileAtomically(path, out));
  std::printf("wrote %zu canaries to %s\n", candidates.size(), path.c_str());
  return absl::OkStatus();
}

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
    std::string canaries;
  };
  auto flags = std::make_shared<Flags>();
  grading->add_option("--from", flags->from, "Problems with integer references (JSONL, e.g. the task's train.jsonl)")
      ->required();
  grading->add_option("--out", flags->out, "Output JSONL file")->required();
  grading
      ->add_option("--template", flags->options.prompt_template,
                   "Grading prompt; {prompt}, {completion} and {reference} (the right answer) are substituted")
      ->capture_default_str();
  grading->add_option("--correct-label", flags->options.correct_label, "Reference of a right candidate")
      ->capture_default_str();
  grading->add_option("--wrong-label", flags->options.wrong_label, "Reference of a wrong candidate")
      ->capture_default_str();
  grading->add_option("--correct-fraction", flags->options.correct_fraction, "Share of rows with the right answer")
      ->capture_default_str();
  grading
      ->add_option("--junk-fraction", flags->options.junk_fraction,
                   "Share of wrong candidates that are junk (empty, the answer with junk around it, cut short, "
                   "random) rather than near misses")
      ->capture_default_str();
  grading->add_option("--rows-per-problem", flags->options.rows_per_problem, "Grading rows per problem")
      ->capture_default_str();
  grading->add_flag("--with-answers", flags->options.include_answers,
                    "Also keep problems as plain prompt -> answer rows (the teacher learns the task too)");
  grading
      ->add_option("--answer-fraction", flags->options.answer_fraction,
                   "With --with-answers: the share of problems that get an answer row")
      ->capture_default_str();
  grading->add_flag("--with-copies", flags->options.include_copies,
                    "Also a row per problem that copies the reference after the template's text before "
                    "{completion} (needs {reference} there; teaches the teacher to match characters)");
  grading->add_option("--answer-max", flags->options.answer_max,
                      "With --with-answers: answer rows only for problems whose answer is at most this");
  grading->add_flag("--with-prefix-checks", flags->options.include_prefix_checks,
                    "Also a row per candidate: a prefix of it, then --prefix-marker, labelled by whether the "
                    "reference begins with it (needs {reference} before {completion}; teaches the comparison)");
  grading->add_option("--prefix-marker", flags->options.prefix_marker, "What ends a prefix-check row's prompt")
      ->capture_default_str();
  grading->add_option("--canaries", flags->canaries,
                      "Also write the graded candidates as canaries for quality.canary_path (JSONL: the problem, "
                      "the candidate, the reference, expected_reward 1 or 0)");
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
    if (!flags->canaries.empty()) {
      if (absl::Status s = WriteGradingCanaries(*problems, flags->options, flags->canaries); !s.ok()) {
        return Fail("dataset grading", std::string(s.message()));
      }
    }
    return 0;
  };
}

// The checkout `rlj` was built in: the directory above the binary's (build/rlj), else the working directory,
// whichever holds tools/reasoning_gym_dataset.py.
std::filesystem::path ProjectRoot() {
  const std::filesystem::path self = SelfExecutablePath();
  for (const std::filesystem::path& root : {self.parent_path().parent_path(), std::filesystem::current_path()}) {
    if (!root.empty() && std::filesystem::exists(root / "tools" / "reasoning_gym_dataset.py")) return root;
  }
  return self.parent_path().parent_path();
}

// `rlj dataset reasoning-gym --task NAME --out DIR`: runs tools/reasoning_gym_dataset.py with the project venv's
// Python (RLJ_VENV, else <checkout>/.venv, where tools/install-deps.sh installs the pinned reasoning-gym).
void AddReasoningGymCommand(CLI::App* dataset, std::function<int()>* run) {
  auto* rg = dataset->add_subcommand(
      "reasoning-gym",
      "A Reasoning Gym task (Python package reasoning-gym): DIR/train.jsonl, DIR/eval.jsonl (held "
      "out) and DIR/reasoning_gym.json for examples/reasoning_gym_judge");
  struct Flags {
    std::string task;
    std::string out;
    int train = 2000;
    int eval = 200;
    uint64_t seed = 1;
    std::vector<std::string> sets;
    std::string config;
    std::string template_text;
    bool list = false;
    std::string python;
    std::string script;
  };
  auto flags = std::make_shared<Flags>();
  rg->add_option("--task", flags->task, "Task name (--list prints them), e.g. basic_arithmetic");
  rg->add_option("--out", flags->out, "Output directory");
  rg->add_option("--train", flags->train, "Training problems")->capture_default_str();
  rg->add_option("--eval", flags->eval, "Held-out problems (no question of them is in train.jsonl)")
      ->capture_default_str();
  rg->add_option("--seed", flags->seed, "Seed of the task's dataset")->capture_default_str();
  rg->add_option("--set", flags->sets,
                 "A key of the task's config: KEY=VALUE, the value JSON when it parses (repeatable)");
  rg->add_option("--config", flags->config, "The task's config as a JSON object");
  rg->add_option("--template", flags->template_text, "The prompt, with {question} (default: the question alone)");
  rg->add_flag("--list", flags->list, "Print the task names");
  rg->add_option("--python", flags->python,
                 "Python with reasoning-gym (default: $RLJ_VENV/bin/python3, else the checkout's .venv)");
  rg->add_option("--script", flags->script, "The generator (default: the checkout's tools/reasoning_gym_dataset.py)");
  *run = [flags]() -> int {
    const char* kCommand = "dataset reasoning-gym";
    if (!flags->list && (flags->task.empty() || flags->out.empty()))
      return Fail(kCommand, "--task and --out are required (--list prints the tasks)");
    const std::filesystem::path root = ProjectRoot();
    std::string python = flags->python;
    if (python.empty()) {
      const char* venv = std::getenv("RLJ_VENV");
      python = (venv != nullptr && *venv != '\0') ? (std::filesystem::path(venv) / "bin" / "python3").string()
                                                  : (root / ".venv" / "bin" / "python3").string();
    }
    const std::string script =
        flags->script.empty() ? (root / "tools" / "reasoning_gym_dataset.py").string() : flags->script;
    if (!std::filesystem::exists(python)) {
      return Fail(kCommand, absl::StrCat("no Python at ", python,
                                         ": the project's virtual environment is made by "
                                         "tools/install-deps.sh (RLJ_VENV=DIR picks another); or give --python"));
    }
    if (!std::filesystem::exists(script)) {
      return Fail(kCommand, absl::StrCat("no generator script at ", script,
                                         " (it ships in the rlj checkout as "
                                         "tools/reasoning_gym_dataset.py); give --script"));
    }
    std::vector<std::string> argv = {python, script};
    if (flags->list) {
      argv.push_back("--list");
    } else {
      argv.insert(argv.end(), {"--task", flags->task, "--out", flags->out, "--train", std::to_string(flags->train),
                               "--eval", std::to_string(flags->eval), "--seed", std::to_string(flags->seed)});
      for (const std::string& set : flags->sets) argv.insert(argv.end(), {"--set", set});
      if (!flags->config.empty()) argv.insert(argv.end(), {"--config", flags->config});
      if (!flags->template_text.empty()) argv.insert(argv.end(), {"--template", flags->template_text});
    }
    auto child = Subprocess::Spawn(argv, /*output_path=*/"");  // its output is ours
    if (!child.ok()) return Fail(kCommand, absl::StrCat(python, ": ", child.status().message()));
    const auto exit = (*child)->Wait(std::chrono::hours(24));
    if (!exit.has_value() || !exit->ok()) {
      // The script has said why (e.g. the package missing from that Python, an unknown task).
      return Fail(kCommand, absl::StrCat(script, " ", exit.has_value() ? exit->Describe() : "did not finish"));
    }
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
  arithmetic->add_flag("--fixed-width", flags->options.fixed_width,
                       "Zero-pad operands and answers to fixed widths (\"635+043=\" -> \"0678\")");
  arithmetic->add_option("--seed", flags->options.seed, "Seed")->capture_default_str();
  auto run_grading = std::make_shared<std::function<int()>>();
  AddGradingCommand(app, run_grading.get());
  auto run_reasoning_gym = std::make_shared<std::function<int()>>();
  AddReasoningGymCommand(app, run_reasoning_gym.get());
  CLI::App* reasoning_gym = app->get_subcommand("reasoning-gym");
  return {app, [flags, arithmetic, run_grading, reasoning_gym, run_reasoning_gym]() -> int {
            if (reasoning_gym->parsed()) return (*run_reasoning_gym)();
            if (!arithmetic->parsed()) return (*run_grading)();
            auto split = MakeArithmeticTask(flags->options);
            if (!split.ok()) return Fail("dataset", std::string(split.status().message()));
            if (absl::Status s = MakeDirectories(flags->out); !s.ok()) return Fail("dataset", std::string(s.message()));
            for (const auto& [name, rows] : {std::pair{"train", &split->train}, std::pair{"eval", &split->eval}}) {
              const std::string path = absl::StrCat(flags->out, "/", name, ".jsonl");
              if (absl::Status s = WritePromptDataset(path, *rows); !s.ok())
                return Fail("dataset", std::string(s.message()));
              std::printf("wrote %zu rows to %s\n", rows->size(), path.c_str());
            }
            return 0;
          }};
}

}  // namespace

RLJ_REGISTER_COMMAND("", 90, AddDatasetCommand);

}  // namespace rlj::tools
