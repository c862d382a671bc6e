// line_process.h: a child program the judge talks to in lines: started from an argv list (no shell), its
// stdin and stdout one Unix socket (so a dead child is an error, never SIGPIPE), stderr inherited, killed
// when the judge dies (PR_SET_PDEATHSIG) or this object goes away. One exchange at a time.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace rlj {

class LineProcess {
 public:
  // argv[0] is looked up in PATH. A program that cannot be executed is an error here (FailedPrecondition
  // naming it), not a silent child that exits 127.
  static absl::StatusOr<std::unique_ptr<LineProcess>> Start(const std::vector<std::string>& argv);
  ~LineProcess();  // SIGKILL and reap
  LineProcess(const LineProcess&) = delete;
  LineProcess& operator=(const LineProcess&) = delete;

  // Writes `line` and a newline, then reads one line (without its newline). DeadlineExceeded ("timeout: ...")
  // when the program did not take the line or no full line came within `timeout`; ResourceExhausted when the line
  // passed `max_line_bytes`; Unavailable when the program closed its end or died. After any error the stream is out of
  // step: discard the process.
  absl::StatusOr<std::string> Exchange(const std::string& line, std::chrono::milliseconds timeout,
                                       size_t max_line_bytes);

  pid_t pid() const { return pid_; }
  // The exit description once it has ended ("exit code 1", "killed by signal 9"), else "running".
  std::string Describe();

 private:
  LineProcess(pid_t pid, int fd) : pid_(pid), fd_(fd) {}
  pid_t pid_;
  int fd_;
  std::string buffered_;  // bytes read past the last line
  bool reaped_ = false;
  int wait_status_ = 0;
};

}  // namespace rlj
