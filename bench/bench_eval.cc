// bench_eval.cc: `rlj bench eval`: what periodic held-out evaluation (eval.every_steps) costs training. Runs
// the same small `rlj run` twice, side by side in one invocation, without and with periodic evaluation, and
// prints one JSON line with the learner's step rate of each and their ratio.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/arithmetic_task.h"
#include "common/dataset.h"
#include "common/file_util.h"
#include "common/status.h"
#include "common/subprocess.h"
#include "logs/eval_curve.h"
#include "tools/command.h"

namespace rlj::tools {
namespace {

struct EvalBenchOptions {
  int steps = 300;
  int every_steps = 20;
  int eval_prompts = 200;
  int d_model = 64;
  int threads = 1;       // torch threads of each process, and of the evaluation
  std::string work_dir;  // default: a temporary directory, removed afterwards
};

std::string RunConfig(const EvalBenchOptions& o, const std::string& dir, const std::string& name, bool periodic) {
  return absl::StrCat(
      "name: ", name, "\nruns_root: ", dir, "/runs\nruntime:\n  threads: ", o.threads,
      "\nmodel:\n  d_model: ", o.d_model, "\n  n_layers: 2\n  n_heads: 2\n  ffn_hidden: ", 3 * o.d_model,
      "\n  max_seq_len: 24\ndata:\n  train_path: ", dir, "/train.jsonl\n  eval_path: ", dir,
      "/eval.jsonl\nsampling:\n  group_size: 8\n  max_new_tokens: 4\njudge:\n  rule:\n    mode: regex\n"
      "    pattern: \"^[ -~]\"\nlearner:\n  steps: ",
      o.steps,
      "\n  groups_per_step: 8\n  lr: 1.0e-4\nactor:\n  prompts_per_batch: 8\neval:\n  before_and_after: false\n"
      "  max_prompts: ",
      o.eval_prompts, "\n  threads: ", o.threads, "\n  every_steps: ", periodic ? o.every_steps : 0, "\n");
}

// One `rlj run`; its training seconds and the periodic evaluations it made.
absl::StatusOr<std::pair<double, int>> TimedRun(const EvalBenchOptions& o, const std::string& dir,
                                                const std::string& name, bool periodic) {
  const std::string config = absl::StrCat(dir, "/", name, ".yaml");
  RLJ_RETURN_IF_ERROR(WriteFileAtomically(config, RunConfig(o, dir, name, periodic)));
  RLJ_ASSIGN_OR_RETURN(std::unique_ptr<Subprocess> run,
                       Subprocess::Spawn({SelfExecutablePath(), "run", config}, absl::StrCat(dir, "/", name, ".out")));
  const std::optional<ExitInfo> exit = run->Wait(std::chrono::hours(2));
  if (!exit || !exit->ok()) {
    return absl::InternalError(absl::StrCat("rlj run ", name, " failed; see ", dir, "/", name, ".out"));
  }
  const std::string run_dir = absl::StrCat(dir, "/runs/", name);
  RLJ_ASSIGN_OR_RETURN(const std::string summary_text, ReadFile(run_dir + "/summary.json"));
  const nlohmann::json summary = nlohmann::json::parse(summary_text, nullptr, /*allow_exceptions=*/false);
  if (!summary.is_object() || !summary.contains("training_s"))
    return absl::DataLossError(run_dir + "/summary.json: no training_s");
  RLJ_ASSIGN_OR_RETURN(const std::vector<logs::EvalPoint> curve, logs::ReadEvalCurve(run_dir + "/eval_curve.jsonl"));
  return std::make_pair(summary["training_s"].get<double>(), static_cast<int>(curve.size()));
}

absl::StatusOr<nlohmann::json> RunEvalBench(const EvalBenchOptions& o) {
  const bool temporary = o.work_dir.empty();
  const std::string dir =
      temporary ? absl::StrCat(std::filesystem::temp_directory_path().string(), "/rlj-bench-eval-", ::getpid())
                : std::filesystem::absolute(o.work_dir).string();
  std::filesystem::create_directories(dir);
  ArithmeticTaskOptions task;
  task.train_size = 5000;
  task.eval_size = o.eval_prompts;
  task.max_operand = 99;
  RLJ_ASSIGN_OR_RETURN(const ArithmeticSplit split, MakeArithmeticTask(task));
  RLJ_RETURN_IF_ERROR(WritePromptDataset(dir + "/train.jsonl", split.train));
  RLJ_RETURN_IF_ERROR(WritePromptDataset(dir + "/eval.jsonl", split.eval));
  RLJ_ASSIGN_OR_RETURN(const auto without, TimedRun(o, dir, "without", false));
  RLJ_ASSIGN_OR_RETURN(const auto with, TimedRun(o, dir, "with", true));
  if (temporary) std::filesystem::remove_all(dir);
  nlohmann::json out;
  out["bench"] = "eval";
  out["steps"] = o.steps;
  out["every_steps"] = o.every_steps;
  out["eval_prompts"] = o.eval_prompts;
  out["d_model"] = o.d_model;
  out["training_s_without"] = without.first;
  out["training_s_with"] = with.first;
  out["steps_per_s_without"] = o.steps / without.first;
  out["steps_per_s_with"] = o.steps / with.first;
  out["evaluations"] = with.second;
  out["step_rate_ratio"] = without.first / with.first;  // 1 = periodic evaluation costs training nothing
  return out;
}

Command AddEvalBench(CLI::App& parent) {
  auto* app = parent.add_subcommand(
      "eval",
      "The learner's step rate with and without periodic held-out evaluation (eval.every_steps), one JSON line");
  auto options = std::make_shared<EvalBenchOptions>();
  app->add_option("--steps", options->steps, "Learner steps of each run")->capture_default_str();
  app->add_option("--every-steps", options->every_steps, "eval.every_steps of the second run")->capture_default_str();
  app->add_option("--eval-prompts", options->eval_prompts, "Held-out prompts per evaluation")->capture_default_str();
  app->add_option("--d-model", options->d_model, "The student's width")->capture_default_str();
  app->add_option("--threads", options->threads, "Torch threads per process and of the evaluation")
      ->capture_default_str();
  app->add_option("--work-dir", options->work_dir, "Keep the runs here (default: a temporary directory, removed)");
  return {app, [options]() -> int {
            const absl::StatusOr<nlohmann::json> result = RunEvalBench(*options);
            if (!result.ok()) return Fail("bench eval", std::string(result.status().message()));
            std::printf("%s\n", result->dump().c_str());
            return 0;
          }};
}

}  // namespace

RLJ_REGISTER_COMMAND("bench", 45, AddEvalBench);

}  // namespace rlj::tools
