// openai_stand_in.h: an OpenAI-compatible teacher for integration tests, served on 127.0.0.1 by this process.
// It answers every chat completion "Score: N" (N in 1..10, a function of what it was asked, so a group's
// rewards differ and a reward of 0 can only be a failure turned into a score) after `latency`, and fails the
// way hosted APIs fail at the rates of a FaultMix: 429 with Retry-After, 500, stalls, 200s whose body is not
// JSON, refusals without a score and scores out of range. Stop() takes it down (connections refused),
// Start(port) brings it back on the same port.
#pragma once

#include <gtest/gtest.h>
#include <httplib.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"

namespace rlj::testing {

// The teacher's score of a request: 1..10, never 0.
inline int StandInScore(const std::string& request_body) {
  return 1 + static_cast<int>(std::hash<std::string>{}(request_body) % 10);
}

// Shares of requests that fail, each way (the rest are answered correctly).
struct FaultMix {
  double rate_limited = 0;  // 429 with Retry-After: retry_after_s (retried)
  double server_error = 0;  // 500 (retried)
  double stall = 0;         // answered after stall_ms (past the judge's timeout: retried)
  double malformed = 0;     // 200 with a body that is not JSON (retried)
  double refusal = 0;       // 200, a refusal without a score (not retryable: masked)
  double out_of_range = 0;  // 200, "Score: 15" on a 0..10 scale (not retryable: masked)
  int retry_after_s = 1;
  std::chrono::milliseconds stall_ms{3000};

  double non_retryable() const { return refusal + out_of_range; }
};

// The fault mix of issue 15's report: 18% of requests fail, 3% of them for good.
inline FaultMix HostedApiFaultMix() {
  FaultMix mix;
  mix.rate_limited = 0.05;
  mix.server_error = 0.05;
  mix.stall = 0.03;
  mix.malformed = 0.02;
  mix.refusal = 0.02;
  mix.out_of_range = 0.01;
  return mix;
}

class OpenAiStandIn {
 public:
  explicit OpenAiStandIn(std::chrono::milliseconds latency = std::chrono::milliseconds(0), FaultMix faults = {},
                         uint32_t seed = 1)
      : latency_(latency), faults_(faults), random_(seed) {}
  ~OpenAiStandIn() { Stop(); }

  void Start(int port = 0) {
    server_ = std::make_unique<httplib::Server>();
    // Stalled requests hold a thread each: enough threads that the stand-in is never the bottleneck.
    server_->new_task_queue = [] { return new httplib::ThreadPool(96); };
    server_->Post("/v1/chat/completions",
                  [this](const httplib::Request& request, httplib::Response& response) { Answer(request, response); });
    if (port == 0) {
      port_ = server_->bind_to_any_port("127.0.0.1");
    } else {
      port_ = server_->bind_to_port("127.0.0.1", port) ? port : -1;
    }
    ASSERT_GT(port_, 0) << "cannot bind 127.0.0.1:" << port;
    thread_ = std::thread([this] { server_->listen_after_bind(); });
    while (!server_->is_running()) std::this_thread::yield();
  }

  void Stop() {
    if (server_ == nullptr) return;
    server_->stop();
    thread_.join();
    server_.reset();
  }

  int port() const { return port_; }
  int64_t requests() const { return requests_.load(); }
  int64_t faults_injected() const { return faults_injected_.load(); }
  int64_t non_retryable_injected() const { return non_retryable_injected_.load(); }

 private:
  enum class Fault { kNone, kRateLimited, kServerError, kStall, kMalformed, kRefusal, kOutOfRange };

  Fault Draw() {
    std::lock_guard<std::mutex> lock(mutex_);
    double u = std::uniform_real_distribution<double>(0, 1)(random_);
    const std::pair<double, Fault> shares[] = {
        {faults_.rate_limited, Fault::kRateLimited},
        {faults_.server_error, Fault::kServerError},
        {faults_.stall, Fault::kStall},
        {faults_.malformed, Fault::kMalformed},
        {faults_.refusal, Fault::kRefusal},
        {faults_.out_of_range, Fault::kOutOfRange},
    };
    for (const auto& [share, fault] : shares) {
      if (u < share) return fault;
      u -= share;
    }
    return Fault::kNone;
  }

  static std::string Completion(const std::string& content) {
    const nlohmann::json body = {
        {"id", "chatcmpl-test"},
        {"object", "chat.completion"},
        {"choices",
         {{{"index", 0}, {"message", {{"role", "assistant"}, {"content", content}}}, {"finish_reason", "stop"}}}},
        {"usage", {{"prompt_tokens", 10}, {"completion_tokens", 2}, {"total_tokens", 12}}},
    };
    return body.dump();
  }

  void Answer(const httplib::Request& request, httplib::Response& response) {
    ++requests_;
    if (latency_.count() > 0) std::this_thread::sleep_for(latency_);  // a slow teacher, not synchronisation
    const Fault fault = Draw();
    if (fault != Fault::kNone) ++faults_injected_;
    switch (fault) {
      case Fault::kRateLimited:
        response.status = 429;
        response.set_header("Retry-After", std::to_string(faults_.retry_after_s));
        response.set_content(R"({"error":{"message":"Rate limit reached","type":"requests"}})", "application/json");
        return;
      case Fault::kServerError:
        response.status = 500;
        response.set_content(R"({"error":{"message":"The server had an error","type":"server_error"}})",
                             "application/json");
        return;
      case Fault::kStall:
        std::this_thread::sleep_for(faults_.stall_ms);  // a stalled response, past the client's timeout
        break;
      case Fault::kMalformed:
        response.set_content(R"({"id":"chatcmpl-test","choices":[{"index":0,"mess)", "application/json");
        return;
      case Fault::kRefusal:
        ++non_retryable_injected_;
        response.set_content(Completion("I'm sorry, but I can't help with grading this."), "application/json");
        return;
      case Fault::kOutOfRange:
        ++non_retryable_injected_;
        response.set_content(Completion("Score: 15"), "application/json");
        return;
      case Fault::kNone:
        break;
    }
    response.set_content(Completion(absl::StrCat("Score: ", StandInScore(request.body))), "application/json");
  }

  const std::chrono::milliseconds latency_;
  const FaultMix faults_;
  std::mutex mutex_;
  std::mt19937_64 random_;
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  int port_ = 0;
  std::atomic<int64_t> requests_{0};
  std::atomic<int64_t> faults_injected_{0};
  std::atomic<int64_t> non_retryable_injected_{0};
};

}  // namespace rlj::testing
