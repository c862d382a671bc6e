// fixed_latency_server.h: a teacher stand-in for `rlj bench judge`: an HTTP/1.1 server on 127.0.0.1 that
// answers every request with the same body after a fixed latency. One epoll thread serves any number of
// kept-alive connections at once (waiting requests cost a timer entry, not a thread; a timerfd wakes it
// when the earliest answer is due, within 200 us), so the stand-in is never what limits the judge's
// concurrency.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"

namespace rlj {

class FixedLatencyServer {
 public:
  struct Options {
    std::chrono::microseconds latency{50000};
    std::string body = "{}";  // sent with Content-Type: application/json
    int status = 200;
  };

  // Binds 127.0.0.1 on a free port and starts serving.
  static absl::StatusOr<std::unique_ptr<FixedLatencyServer>> Start(Options options);
  ~FixedLatencyServer();  // stops serving and closes every connection
  FixedLatencyServer(const FixedLatencyServer&) = delete;
  FixedLatencyServer& operator=(const FixedLatencyServer&) = delete;

  int port() const { return port_; }
  std::string base_url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/v1"; }

  int64_t requests() const { return requests_.load(); }
  int64_t connections() const { return connections_.load(); }
  // The most requests that were waiting out their latency at one time.
  int64_t max_pending() const { return max_pending_.load(); }

 private:
  FixedLatencyServer(Options options, int listen_fd, int wake_fd, int epoll_fd, int timer_fd, int port);
  void Run();

  Options options_;
  std::string response_;  // status line, headers and body
  int listen_fd_;
  int wake_fd_;
  int epoll_fd_;
  int timer_fd_;
  int port_;
  std::atomic<int64_t> requests_{0};
  std::atomic<int64_t> connections_{0};
  std::atomic<int64_t> max_pending_{0};
  std::thread thread_;
};

}  // namespace rlj
