// line_process.cc: fork + execvp with a socketpair for stdin/stdout, and line exchanges with poll timeouts.
#include "judge/line_process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace rlj {
namespace {

using Clock = std::chrono::steady_clock;

std::string ErrnoText(int error) { return std::strerror(error); }

}  // namespace

absl::StatusOr<std::unique_ptr<LineProcess>> LineProcess::Start(const std::vector<std::string>& argv) {
  if (argv.empty() || argv[0].empty()) return absl::InvalidArgumentError("the command is empty");
  std::vector<char*> args;
  for (const std::string& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
  args.push_back(nullptr);
  int sockets[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sockets) != 0) {
    return absl::ResourceExhaustedError(absl::StrCat("socketpair: ", ErrnoText(errno)));
  }
  int report[2];  // the child writes errno here if exec fails; closed by a successful exec
  if (pipe2(report, O_CLOEXEC) != 0) {
    close(sockets[0]);
    close(sockets[1]);
    return absl::ResourceExhaustedError(absl::StrCat("pipe: ", ErrnoText(errno)));
  }
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid < 0) {
    const int error = errno;
    for (int fd : {sockets[0], sockets[1], report[0], report[1]}) close(fd);
    return absl::ResourceExhaustedError(absl::StrCat("fork: ", ErrnoText(error)));
  }
  if (pid == 0) {
    // Child: only async-signal-safe calls until exec.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);
    dup2(sockets[1], STDIN_FILENO);
    dup2(sockets[1], STDOUT_FILENO);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);  // the judge blocks SIGINT/SIGTERM for its sigwait thread
    execvp(args[0], args.data());
    const int error = errno;
    (void)!write(report[1], &error, sizeof(error));
    _exit(127);
  }
  close(sockets[1]);
  close(report[1]);
  int exec_error = 0;
  ssize_t got;
  do {
    got = read(report[0], &exec_error, sizeof(exec_error));
  } while (got < 0 && errno == EINTR);
  close(report[0]);
  if (got == static_cast<ssize_t>(sizeof(exec_error))) {
    close(sockets[0]);
    waitpid(pid, nullptr, 0);
    return absl::FailedPreconditionError(absl::StrCat("cannot run '", argv[0], "': ", ErrnoText(exec_error)));
  }
  return std::unique_ptr<LineProcess>(new LineProcess(pid, sockets[0]));
}

LineProcess::~LineProcess() {
  close(fd_);
  if (!reaped_) {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
}

std::string LineProcess::Describe() {
  if (!reaped_) {
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      reaped_ = true;
      wait_status_ = status;
    }
  }
  if (!reaped_) return "running";
  if (WIFEXITED(wait_status_)) return absl::StrCat("exit code ", WEXITSTATUS(wait_status_));
  if (WIFSIGNALED(wait_status_)) return absl::StrCat("killed by signal ", WTERMSIG(wait_status_));
  return "ended";
}

absl::StatusOr<std::string> LineProcess::Exchange(const std::string& line, std::chrono::milliseconds timeout,
                                                  size_t max_line_bytes) {
  const Clock::time_point deadline = Clock::now() + timeout;
  const std::string out = line + "\n";
  size_t written = 0;
  while (written < out.size()) {
    // Non-blocking, so a program that stops reading its input cannot hold the judge past the timeout.
    const ssize_t n = send(fd_, out.data() + written, out.size() - written, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n >= 0) {
      written += static_cast<size_t>(n);
      continue;
    }
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) {
      return absl::UnavailableError(
          absl::StrCat("writing to the program failed (", ErrnoText(errno), "; ", Describe(), ")"));
    }
    const auto remaining = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (remaining <= 0) {
      return absl::DeadlineExceededError(
          absl::StrCat("timeout: the program did not read its input within ", timeout.count(), " ms"));
    }
    pollfd writable{fd_, POLLOUT, 0};
    if (poll(&writable, 1, static_cast<int>(std::min<int64_t>(remaining, 1000))) < 0 && errno != EINTR) {
      return absl::UnavailableError(absl::StrCat("poll: ", ErrnoText(errno)));
    }
  }
  while (true) {
    const size_t newline = buffered_.find('\n');
    if (newline != std::string::npos) {
      if (newline > max_line_bytes) {
        return absl::ResourceExhaustedError(
            absl::StrCat("the program's answer line is longer than ", max_line_bytes, " bytes"));
      }
      std::string answer = buffered_.substr(0, newline);
      buffered_.erase(0, newline + 1);
      if (!answer.empty() && answer.back() == '\r') answer.pop_back();
      return answer;
    }
    if (buffered_.size() > max_line_bytes) {
      return absl::ResourceExhaustedError(
          absl::StrCat("the program's answer line is longer than ", max_line_bytes, " bytes"));
    }
    const auto remaining = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (remaining <= 0) {
      return absl::DeadlineExceededError(
          absl::StrCat("timeout: the program did not answer within ", timeout.count(), " ms"));
    }
    pollfd readable{fd_, POLLIN, 0};
    const int ready = poll(&readable, 1, static_cast<int>(std::min<int64_t>(remaining, 1000)));
    if (ready < 0 && errno != EINTR) return absl::UnavailableError(absl::StrCat("poll: ", ErrnoText(errno)));
    if (ready <= 0) continue;
    char chunk[65536];
    const ssize_t n = recv(fd_, chunk, sizeof(chunk), 0);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      return absl::UnavailableError(absl::StrCat("reading from the program failed (", ErrnoText(errno), ")"));
    }
    if (n == 0) {
      // The program closed its output: it ended (or is ending).
      for (int i = 0; i < 100 && Describe() == "running"; ++i) usleep(1000);
      return absl::UnavailableError(absl::StrCat("the program closed its output (", Describe(), ")"));
    }
    buffered_.append(chunk, static_cast<size_t>(n));
  }
}

}  // namespace rlj
