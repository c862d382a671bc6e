// rlj_process.h: integration-test helpers: run the real `rlj` binary as a child process, capture its
// output, and write small configs and datasets into a scratch directory.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "common/file_util.h"
#include "common/subprocess.h"

namespace rlj::testing {

inline std::string RljBinary() { return RLJ_BINARY; }

struct Finished {
  ExitInfo exit;
  std::string output;  // stdout and stderr together
};

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
  EXPECT_TRUE(exit.has_value()) << "rlj " << (args.empty() ? "" : args[0]) << " did not finish within " << timeout.count() << " s";
  finished.exit = exit ? *exit : process->Stop(std::chrono::seconds(5));
  finished.output = ReadFile(output_path).value_or("");
  return finished;
}

// What a clean failure looks like: non-zero exit, not a crash, and no C++ stack trace in the output.
inline ::testing::AssertionResult FailedCleanly(const Finished& finished, const std::string& needle) {
  if (finished.exit.signal != 0) return ::testing::AssertionFailure() << "crashed: " << finished.exit.Describe() << "\n" << finished.output;
  if (finished.exit.exit_code == 0) return ::testing::AssertionFailure() << "exited 0, expected an error:\n" << finished.output;
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

}  // namespace rlj::testing
