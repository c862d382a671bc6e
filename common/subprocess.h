// subprocess.h: child processes for the `rlj run` supervisor and integration tests: spawn with output to a
// file, signal, wait with a timeout. A child dies with its parent (PR_SET_PDEATHSIG).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace rlj {

struct ExitInfo {
  int exit_code = -1;  // when exited normally
  int signal = 0;      // when killed by a signal
  bool ok() const { return signal == 0 && exit_code == 0; }
  std::string Describe() const;  // "exit code 1" / "killed by signal 9 (Killed)"
};

class Subprocess {
 public:
  // Runs argv[0] (a path) with argv; stdout and stderr go to `output_path` (appended; empty = inherit).
  // `extra_env` entries ("K=V") are added to the parent's environment.
  static absl::StatusOr<std::unique_ptr<Subprocess>> Spawn(const std::vector<std::string>& argv,
                                                           const std::string& output_path,
                                                           const std::vector<std::string>& extra_env = {});
  ~Subprocess();  // kills a still-running child (SIGKILL) and reaps it

  pid_t pid() const { return pid_; }

  // Exit information once the child has ended, without blocking.
  std::optional<ExitInfo> Poll();

  // Waits up to `timeout` for the child to end.
  std::optional<ExitInfo> Wait(std::chrono::milliseconds timeout);

  void Signal(int signal);

  // SIGTERM, then SIGKILL if it has not ended after `grace`.
  ExitInfo Stop(std::chrono::milliseconds grace);

 private:
  explicit Subprocess(pid_t pid) : pid_(pid) {}
  pid_t pid_;
  std::optional<ExitInfo> exit_;
};

// The path of the running executable (/proc/self/exe resolved).
std::string SelfExecutablePath();

// The last `max_lines` lines of a text file (for error messages about a child that died).
std::string TailOfFile(const std::string& path, int max_lines);

}  // namespace rlj
