// rlj_process.h: integration-test helpers: run the real `rlj` binary as a child process, capture its
// output, and write small configs and datasets into a scratch directory.
#pragma once

#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <memory>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/arithmetic_task.h"
#include "common/dataset.h"
#include "common/file_util.h"
#include "common/run_dir.h"
#include "common/subprocess.h"

namespace rlj::testing {

inline std::string RljBinary() { return RLJ_BINARY; }

struct Finished {
  ExitInfo exit;
  std::string output;  // stdout and stderr together
};

// The tiny arithmetic task (sums up to 20): DIR/train.jsonl (200 rows) and a disjoint DIR/eval.jsonl (20 rows).
inline void WriteTinyTask(const std::string& dir) {
  ArithmeticTaskOptions task;
  task.train_size = 200;
  task.eval_size = 20;
  task.max_operand = 20;
  auto split = MakeArithmeticTask(task);
  ASSERT_TRUE(split.ok()) << split.status();
  ASSERT_TRUE(WritePromptDataset(dir + "/train.jsonl", split->train).ok());
  ASSERT_TRUE(WritePromptDataset(dir + "/eval.jsonl", split->eval).ok());
}

// The head of a tiny run's config: its name, runs under DIR/runs, one thread, a 2-layer d32 model, the tiny
// task's data and groups of 4 completions of at most 4 tokens. Tests append their own sections.
inline std::string TinyRunConfigHead(const std::string& dir, const std::string& name) {
  return absl::StrCat("name: ", name, "\nruns_root: ", dir, R"(/runs
runtime:
  threads: 1
model:
  d_model: 32
  n_layers: 2
  n_heads: 2
  ffn_hidden: 64
  max_seq_len: 24
data:
  train_path: )",
                      dir, R"(/train.jsonl
  eval_path: )",
                      dir, R"(/eval.jsonl
sampling:
  group_size: 4
  max_new_tokens: 4
)");
}

// A rule judge that a random tiny model gets a learning signal from: reward 1 when the completion starts with a
// printable ASCII character (about 37% of a random byte model's samples), else 0. With the tiny task's exact
// answers a random model is never right, every group's rewards are equal, and a batch without signal is not a
// step: tests of the loop's mechanics need steps that are real updates.
inline std::string TinySignalJudgeSection() {
  return R"(judge:
  rule:
    mode: regex
    pattern: "^[ -~]"
)";
}

// Starts `rlj args...` with its output in `output_path`.
inline std::unique_ptr<Subprocess> StartRlj(const std::vector<std::string>& args, const std::string& output_path) {
  std::vector<std::string> argv{RljBinary()};
  argv.insert(argv.end(), args.begin(), args.end());
  auto process = Subprocess::Spawn(argv, output_path);
  EXPECT_TRUE(process.ok()) << process.status();
  return process.ok() ? std::move(*process) : nullptr;
}

// Runs `rlj args...` to completion (killed after `timeout`, which fails the test).
inline Finished RunRlj(const std::vector<std::string>& args, const std::string& output_path,
                       std::chrono::seconds timeout = std::chrono::seconds(600)) {
  Finished finished;
  auto process = StartRlj(args, output_path);
  if (!process) return finished;
  auto exit = process->Wait(timeout);
  EXPECT_TRUE(exit.has_value()) << "rlj " << (args.empty() ? "" : args[0]) << " did not finish within "
                                << timeout.count() << " s";
  finished.exit = exit ? *exit : process->Stop(std::chrono::seconds(5));
  finished.output = ReadFile(output_path).value_or("");
  return finished;
}

// What a clean failure looks like: non-zero exit, not a crash, and no C++ stack trace in the output.
inline ::testing::AssertionResult FailedCleanly(const Finished& finished, const std::string& needle) {
  if (finished.exit.signal != 0)
    return ::testing::AssertionFailure() << "crashed: " << finished.exit.Describe() << "\n" << finished.output;
  if (finished.exit.exit_code == 0)
    return ::testing::AssertionFailure() << "exited 0, expected an error:\n" << finished.output;
  for (const char* trace : {"terminate called", "Exception raised from", "frame #", "Aborted", "Segmentation"}) {
    if (finished.output.find(trace) != std::string::npos) {
      return ::testing::AssertionFailure() << "output holds a crash trace ('" << trace << "'):\n" << finished.output;
    }
  }
  if (finished.output.find(needle) == std::string::npos) {
    return ::testing::AssertionFailure() << "expected '" << needle << "' in:\n" << finished.output;
  }
  return ::testing::AssertionSuccess();
}

// The tiny teacher: grading rows (Y/N) made from DIR/train.jsonl (WriteTinyTask first) and a 2-layer model
// fine-tuned on them into DIR/teacher. Returns "" when it is ready, else what failed with its output.
inline std::string MakeTinyTeacher(const std::string& dir) {
  const std::string teacher_config = absl::StrCat("name: tiny-teacher\nruns_root: ", dir, R"(/runs
runtime:
  threads: 1
model:
  d_model: 32
  n_layers: 2
  n_heads: 2
  ffn_hidden: 64
  max_seq_len: 24
data:
  train_path: )",
                                                  dir, R"(/grading.jsonl
sampling:
  max_new_tokens: 1
sft:
  steps: 150
  batch_size: 32
  lr: 3.0e-3
  warmup_steps: 5
)");
  if (absl::Status s = WriteFileAtomically(dir + "/teacher.yaml", teacher_config); !s.ok()) return s.ToString();
  const Finished grading = RunRlj({"dataset", "grading", "--from", dir + "/train.jsonl", "--out",
                                   dir + "/grading.jsonl", "--rows-per-problem", "2", "--seed", "3"},
                                  dir + "/grading.out");
  if (!grading.exit.ok()) return "rlj dataset grading: " + grading.output;
  const Finished sft = RunRlj({"sft", dir + "/teacher.yaml", "--output", dir + "/teacher"}, dir + "/sft.out");
  if (!sft.exit.ok()) return "rlj sft (teacher): " + sft.output;
  return "";
}

// The `teacher` and `judge` sections of a run judged by the tiny teacher (MakeTinyTeacher) in label mode:
// reward = P(Y) from the teacher's top log-probs, with `replicas` judge processes.
inline std::string TinyTeacherJudgeSections(const std::string& dir, int replicas) {
  return absl::StrCat(R"(teacher:
  model: )",
                      dir, R"(/teacher
  max_batch: 32
judge:
  backend: openai
  replicas: )",
                      replicas, R"(
  openai:
    model: teacher
    mode: label
    rubric: "{prompt}{completion}?"
    labels: {"Y": 1.0, "N": 0.0}
    top_logprobs: 5
    label_min_mass: 0.05
    max_tokens: 1
)");
}

// The pid `rlj run` logged for `child` the last time it started it (restarts log again); 0 when not found.
inline pid_t ChildPid(const RunDir& run_dir, const std::string& child) {
  const std::string log = ReadFile(run_dir.log_path("run")).value_or("");
  const std::regex started("started " + child + R"( \(pid (\d+)\))");
  pid_t pid = 0;
  for (auto it = std::sregex_iterator(log.begin(), log.end(), started); it != std::sregex_iterator(); ++it) {
    pid = static_cast<pid_t>(std::stol((*it)[1].str()));
  }
  return pid;
}

// Sends SIGSTOP to `pid` and waits (up to a minute) until /proc says it is stopped. From then on it writes
// nothing, so what it left on disk can be read before a SIGKILL: `kill -9` alone returns before the target
// is gone, and a supervisor may restart it (and the new one write) before the test gets to look.
inline bool StopAndAwaitStopped(pid_t pid) {
  if (pid <= 0 || ::kill(pid, SIGSTOP) != 0) return false;
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::minutes(1);
  while (std::chrono::steady_clock::now() < give_up) {
    const std::string stat = ReadFile("/proc/" + std::to_string(pid) + "/stat").value_or("");
    const size_t name_end = stat.rfind(')');  // "pid (comm) STATE ...": comm may hold spaces and parens
    if (name_end == std::string::npos || name_end + 2 >= stat.size()) return false;  // gone
    if (stat[name_end + 2] == 'T') return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));  // polling the kernel's view of another process
  }
  return false;
}

}  // namespace rlj::testing
