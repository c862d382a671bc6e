// http_dispatcher_test.cc: the shared HTTP machinery against a real fault-injecting server on 127.0.0.1:
// 429 + Retry-After (honoured, the adaptive limit cut), 500 retried then given up, the circuit breaker
// opening and failing requests without sending them (and closing when its probe is answered, a 429 too), a
// 200 whose body is not JSON retried like a 5xx, retries counted by cause, deadlines on a slow server, the
// budget check, the cap on requests in flight and connection reuse.
#include "judge/http/http_dispatcher.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "judge/judge_backend.h"
#include "teacher_server.h"
#include "test_util.h"

namespace rlj {
namespace {

using ::rlj::testing::TeacherReply;
using ::rlj::testing::TeacherRequest;
using ::rlj::testing::TeacherServer;
using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

HttpRequest Post(const TeacherServer& server, const std::string& body = "{}") {
  HttpRequest request;
  request.url = server.base_url() + "/chat/completions";
  request.headers = {{"Content-Type", "application/json"}};
  request.body = body;
  return request;
}

HttpDispatcherOptions FastOptions() {
  HttpDispatcherOptions options;
  options.name = "test-teacher";
  options.max_concurrency = 8;
  options.max_retries = 3;
  options.backoff = BackoffPolicy{milliseconds(1), milliseconds(5)};
  options.request_timeout = milliseconds(10000);
  options.breaker_failures = 0;
  return options;
}

std::unique_ptr<HttpDispatcher> Make(HttpDispatcherOptions options) {
  auto dispatcher = HttpDispatcher::Create(std::move(options));
  EXPECT_TRUE(dispatcher.ok()) << dispatcher.status();
  return dispatcher.ok() ? std::move(dispatcher).value() : nullptr;
}

HttpOutcome SendOne(HttpDispatcher& dispatcher, HttpRequest request, milliseconds budget = milliseconds(20000)) {
  std::vector<HttpOutcome> outcomes = dispatcher.SendAll({std::move(request)}, Clock::now() + budget, {10});
  EXPECT_EQ(outcomes.size(), 1u);
  return outcomes.empty() ? HttpOutcome{} : outcomes[0];
}

TEST(HttpDispatcher, RateLimitedAnswerIsRetriedAfterRetryAfterAndCutsTheLimit) {
  TeacherServer server;
  server.Push(TeacherReply{429, R"({"error":"slow down"})", {{"Retry-After", "0.3"}}, false});
  server.Push(TeacherReply{200, R"({"ok":1})", {}, false});
  auto dispatcher = Make(FastOptions());
  const auto start = Clock::now();
  const HttpOutcome outcome = SendOne(*dispatcher, Post(server));
  const auto elapsed = Clock::now() - start;
  ASSERT_TRUE(outcome.response.has_value()) << outcome.kind << ": " << outcome.message;
  EXPECT_EQ(outcome.response->status, 200);
  EXPECT_EQ(outcome.response->body, R"({"ok":1})");
  EXPECT_EQ(outcome.attempts, 2);
  // The 1–5 ms backoff alone would retry at once: the wait is the server's Retry-After.
  EXPECT_GE(elapsed, milliseconds(300));
  EXPECT_EQ(server.received().size(), 2u);
  const HttpDispatcherStats stats = dispatcher->stats();
  EXPECT_EQ(stats.rate_limited, 1);
  EXPECT_EQ(stats.retries, 1);
  EXPECT_EQ(stats.requests_sent, 2);
  EXPECT_EQ(stats.succeeded, 1);
  EXPECT_EQ(stats.concurrency_limit, 8);  // one 429 is not a fifth of a window: not congestion, no cut
}

// A sporadic 429's Retry-After delays that request's retry only: the other requests go on (while the limit
// can still be cut, it and not a pause of everything answers congestion).
TEST(HttpDispatcher, RetryAfterOfOneRequestDoesNotHoldTheOthers) {
  TeacherServer server;
  server.Push(TeacherReply{429, R"({"error":"slow down"})", {{"Retry-After", "3"}}, false});
  server.SetDefault(TeacherReply{200, R"({"ok":1})", {}, false});
  HttpDispatcherOptions options = FastOptions();
  options.max_concurrency = 2;  // requests 3 and 4 start after the 429 is in
  auto dispatcher = Make(options);
  std::vector<HttpRequest> requests;
  for (int i = 0; i < 4; ++i) requests.push_back(Post(server));
  const std::vector<HttpOutcome> outcomes =
      dispatcher->SendAll(std::move(requests), Clock::now() + milliseconds(20000), {10, 10, 10, 10});
  ASSERT_EQ(outcomes.size(), 4u);
  int retried = 0;
  for (const HttpOutcome& outcome : outcomes) {
    ASSERT_TRUE(outcome.response.has_value()) << outcome.kind << ": " << outcome.message;
    if (outcome.attempts == 2) {
      ++retried;
      EXPECT_GE(outcome.latency_ms, 3000) << "the rate-limited request waits its Retry-After";
    } else {
      EXPECT_LT(outcome.latency_ms, 2500) << "a request that was not rate-limited waited for another's Retry-After";
    }
  }
  EXPECT_EQ(retried, 1);
}

TEST(HttpDispatcher, PersistentRateLimitEndsAsRateLimitedAfterMaxRetries) {
  TeacherServer server;
  server.SetDefault(TeacherReply{429, R"({"error":"quota"})", {}, false});
  HttpDispatcherOptions options = FastOptions();
  options.max_retries = 2;
  auto dispatcher = Make(options);
  const HttpOutcome outcome = SendOne(*dispatcher, Post(server));
  EXPECT_FALSE(outcome.response.has_value());
  EXPECT_EQ(outcome.kind, error_kind::kRateLimited);
  EXPECT_EQ(outcome.code, absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(outcome.attempts, 3);
  EXPECT_NE(outcome.message.find("HTTP 429"), std::string::npos) << outcome.message;
  EXPECT_NE(outcome.message.find("3 attempts"), std::string::npos) << outcome.message;
  EXPECT_EQ(server.received().size(), 3u);
}

TEST(HttpDispatcher, ServerErrorsAreRetriedAndClientErrorsAreNot) {
  TeacherServer server;
  server.Push(TeacherReply{500, "boom", {}, false});
  server.Push(TeacherReply{503, "busy", {}, false});
  server.Push(TeacherReply{200, "fine", {}, false});
  auto dispatcher = Make(FastOptions());
  HttpOutcome outcome = SendOne(*dispatcher, Post(server));
  ASSERT_TRUE(outcome.response.has_value()) << outcome.message;
  EXPECT_EQ(outcome.response->body, "fine");
  EXPECT_EQ(outcome.attempts, 3);

  server.Push(TeacherReply{400, R"({"error":"bad request"})", {}, false});
  outcome = SendOne(*dispatcher, Post(server));
  EXPECT_FALSE(outcome.response.has_value());
  EXPECT_EQ(outcome.kind, error_kind::kHttpError);
  EXPECT_EQ(outcome.code, absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(outcome.attempts, 1);
  EXPECT_NE(outcome.message.find("bad request"), std::string::npos);
  EXPECT_EQ(server.received().size(), 4u);
}

TEST(HttpDispatcher, PersistentServerErrorGivesUpWithUnavailable) {
  TeacherServer server;
  server.SetDefault(TeacherReply{502, "bad gateway", {}, false});
  HttpDispatcherOptions options = FastOptions();
  options.max_retries = 1;
  auto dispatcher = Make(options);
  const HttpOutcome outcome = SendOne(*dispatcher, Post(server));
  EXPECT_EQ(outcome.kind, error_kind::kHttpError);
  EXPECT_EQ(outcome.code, absl::StatusCode::kUnavailable);
  EXPECT_EQ(outcome.attempts, 2);
  EXPECT_EQ(dispatcher->stats().failed, 1);
}

TEST(HttpDispatcher, CircuitOpensAndFailsRequestsWithoutSendingThem) {
  TeacherServer server;
  server.SetDefault(TeacherReply{500, "down", {}, false});
  HttpDispatcherOptions options = FastOptions();
  options.max_retries = 0;
  options.breaker_failures = 2;
  options.breaker_cooldown = std::chrono::minutes(10);
  auto dispatcher = Make(options);
  EXPECT_EQ(SendOne(*dispatcher, Post(server)).kind, error_kind::kHttpError);
  EXPECT_EQ(SendOne(*dispatcher, Post(server)).kind, error_kind::kHttpError);
  const HttpOutcome refused = SendOne(*dispatcher, Post(server));
  EXPECT_EQ(refused.kind, error_kind::kCircuitOpen);
  EXPECT_EQ(refused.code, absl::StatusCode::kUnavailable);
  EXPECT_TRUE(error_kind::IsAvailabilityError(refused.kind));
  EXPECT_EQ(server.received().size(), 2u);  // the third never reached the server
  const HttpDispatcherStats stats = dispatcher->stats();
  EXPECT_EQ(stats.circuit, "open");
  EXPECT_EQ(stats.circuit_opened, 1);
}

TEST(HttpDispatcher, HalfOpenProbeClosesTheCircuitOnSuccess) {
  TeacherServer server;
  server.Push(TeacherReply{500, "down", {}, false});
  server.Push(TeacherReply{200, "back", {}, false});
  server.Push(TeacherReply{200, "again", {}, false});
  HttpDispatcherOptions options = FastOptions();
  options.max_retries = 0;
  options.breaker_failures = 1;
  options.breaker_cooldown = milliseconds(1);  // half-open as soon as the next request comes
  auto dispatcher = Make(options);
  EXPECT_EQ(SendOne(*dispatcher, Post(server)).kind, error_kind::kHttpError);  // opens the circuit
  // Past the cooldown the next request is the probe; it succeeds and closes the circuit.
  const auto reopen = Clock::now() + milliseconds(2);
  while (Clock::now() < reopen) std::this_thread::yield();
  const HttpOutcome probe = SendOne(*dispatcher, Post(server));
  ASSERT_TRUE(probe.response.has_value()) << probe.kind << ": " << probe.message;
  EXPECT_EQ(probe.response->body, "back");
  // Closed again: the next request goes straight through (half-open would refuse it while probing).
  const HttpOutcome next = SendOne(*dispatcher, Post(server));
  ASSERT_TRUE(next.response.has_value()) << next.kind << ": " << next.message;
  EXPECT_EQ(next.response->body, "again");
  EXPECT_EQ(dispatcher->stats().circuit, "closed");
  EXPECT_EQ(dispatcher->stats().circuit_opened, 1);
}

// A half-open circuit whose probe is answered by a 429 closes: the server answers (it used to wait for its probe
// forever, failing every later request).
TEST(HttpDispatcher, HalfOpenProbeAnsweredByARateLimitClosesTheCircuit) {
  TeacherServer server;
  server.Push(TeacherReply{500, "down", {}, false});
  server.Push(TeacherReply{429, R"({"error":"slow down"})", {{"Retry-After", "0.05"}}, false});
  server.Push(TeacherReply{200, R"({"n":1})", {}, false});
  server.Push(TeacherReply{200, R"({"n":2})", {}, false});
  HttpDispatcherOptions options = FastOptions();
  options.max_retries = 2;
  options.breaker_failures = 1;
  options.breaker_cooldown = milliseconds(1000);  // far longer than the 1-5 ms backoff of the first retry
  auto dispatcher = Make(options);
  ASSERT_NE(dispatcher, nullptr);
  // The 500 opens the circuit; its retry finds it open and gives up without sending.
  EXPECT_EQ(SendOne(*dispatcher, Post(server)).kind, error_kind::kCircuitOpen);
  // Past the cooldown (waiting longer is always fine) the next request is the half-open probe.
  std::this_thread::sleep_for(milliseconds(1100));
  // The probe is rate-limited: the server answers, so the circuit closes and the retry after Retry-After goes.
  const HttpOutcome probe = SendOne(*dispatcher, Post(server));
  ASSERT_TRUE(probe.response.has_value()) << probe.kind << ": " << probe.message;
  EXPECT_EQ(probe.response->body, R"({"n":1})");
  const HttpOutcome next = SendOne(*dispatcher, Post(server));
  ASSERT_TRUE(next.response.has_value()) << next.kind << ": " << next.message;
  EXPECT_EQ(next.response->body, R"({"n":2})");
  EXPECT_EQ(server.received().size(), 4u);
  const HttpDispatcherStats stats = dispatcher->stats();
  EXPECT_EQ(stats.circuit, "closed");
  EXPECT_EQ(stats.retries_server_error, 1);  // the 500's retry (failed at once: the circuit was open)
  EXPECT_EQ(stats.retries_rate_limited, 1);
  EXPECT_EQ(stats.retry_after_waits, 1);
  EXPECT_NEAR(stats.retry_after_seconds, 0.05, 1e-9);
}

TEST(HttpDispatcher, AnOkAnswerWhoseBodyIsNotJsonIsRetried) {
  TeacherServer server;
  server.Push(TeacherReply{200, R"({"choices":[{"message":)", {}, false});  // cut short
  server.Push(TeacherReply{200, "<html>502 Bad Gateway</html>", {}, false});
  server.Push(TeacherReply{200, R"({"ok":true})", {}, false});
  HttpDispatcherOptions options = FastOptions();
  options.require_json_body = true;
  auto dispatcher = Make(options);
  ASSERT_NE(dispatcher, nullptr);
  const HttpOutcome outcome = SendOne(*dispatcher, Post(server));
  ASSERT_TRUE(outcome.response.has_value()) << outcome.kind << ": " << outcome.message;
  EXPECT_EQ(outcome.response->body, R"({"ok":true})");
  EXPECT_EQ(outcome.attempts, 3);
  const HttpDispatcherStats stats = dispatcher->stats();
  EXPECT_EQ(stats.malformed, 2);
  EXPECT_EQ(stats.retries, 2);
  EXPECT_EQ(stats.retries_malformed, 2);
  EXPECT_EQ(stats.retries_server_error + stats.retries_rate_limited + stats.retries_timeout + stats.retries_transport,
            0);
}

TEST(HttpDispatcher, ABodyThatStaysMalformedFailsAsParseNotAsAnOutage) {
  TeacherServer server;
  for (int i = 0; i < 3; ++i) server.Push(TeacherReply{200, "not json", {}, false});
  HttpDispatcherOptions options = FastOptions();
  options.require_json_body = true;
  options.max_retries = 2;
  auto dispatcher = Make(options);
  ASSERT_NE(dispatcher, nullptr);
  const HttpOutcome outcome = SendOne(*dispatcher, Post(server));
  EXPECT_FALSE(outcome.response.has_value());
  EXPECT_EQ(outcome.kind, error_kind::kParse);
  EXPECT_FALSE(error_kind::IsAvailabilityError(outcome.kind));  // masked, not waited for
  EXPECT_NE(outcome.message.find("not JSON"), std::string::npos) << outcome.message;
  EXPECT_EQ(outcome.attempts, 3);
}

TEST(HttpDispatcher, WithoutTheOptionAnOkBodyIsPassedOnAsItIs) {
  TeacherServer server;
  server.Push(TeacherReply{200, "plain text", {}, false});
  auto dispatcher = Make(FastOptions());
  ASSERT_NE(dispatcher, nullptr);
  const HttpOutcome outcome = SendOne(*dispatcher, Post(server));
  ASSERT_TRUE(outcome.response.has_value());
  EXPECT_EQ(outcome.response->body, "plain text");
}

TEST(HttpDispatcher, SlowServerHitsTheDeadline) {
  TeacherServer server;
  server.SetDefault(TeacherReply{200, "late", {}, /*hang=*/true});
  auto dispatcher = Make(FastOptions());
  const auto start = Clock::now();
  const HttpOutcome outcome = SendOne(*dispatcher, Post(server), milliseconds(300));
  EXPECT_FALSE(outcome.response.has_value());
  EXPECT_EQ(outcome.kind, error_kind::kTimeout);
  EXPECT_EQ(outcome.code, absl::StatusCode::kDeadlineExceeded);
  // It waited for the server (libcurl rounds its timeout to whole milliseconds and may fire a little early),
  // and it was the deadline that ended the wait, not the 10 s request timeout.
  EXPECT_GE(Clock::now() - start, milliseconds(250));
  EXPECT_LT(Clock::now() - start, milliseconds(9000));
}

TEST(HttpDispatcher, ExhaustedBudgetFailsRequestsBeforeTheyAreSent) {
  TeacherServer server;
  server.SetDefault(TeacherReply{200, "{}", {}, false});
  HttpDispatcherOptions options = FastOptions();
  std::atomic<bool> spent{false};
  options.budget_exhausted = [&spent] { return spent.load(); };
  auto dispatcher = Make(options);
  EXPECT_TRUE(SendOne(*dispatcher, Post(server)).response.has_value());
  spent = true;
  const HttpOutcome outcome = SendOne(*dispatcher, Post(server));
  EXPECT_EQ(outcome.kind, error_kind::kBudget);
  EXPECT_EQ(outcome.code, absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(server.received().size(), 1u);
}

TEST(HttpDispatcher, InFlightNeverExceedsTheCapAndAllComplete) {
  TeacherServer server;
  // The server holds each request until 4 are in flight together (or 5 s pass), proving the
  // dispatcher does send 4 at once, then answers with the request's body.
  std::mutex mutex;
  std::condition_variable cv;
  int arrived = 0;
  server.SetHandler([&](const TeacherRequest& request) {
    std::unique_lock<std::mutex> lock(mutex);
    const int target = (arrived / 4 + 1) * 4;  // this request's wave of 4 is complete at `target` arrivals
    ++arrived;
    cv.notify_all();
    cv.wait_for(lock, std::chrono::seconds(5), [&] { return arrived >= target; });
    return TeacherReply{200, request.body, {}, false};
  });
  HttpDispatcherOptions options = FastOptions();
  options.max_concurrency = 4;
  options.adaptive = false;
  auto dispatcher = Make(options);
  std::vector<HttpRequest> requests;
  for (int i = 0; i < 40; ++i) requests.push_back(Post(server, std::to_string(i)));
  const std::vector<HttpOutcome> outcomes =
      dispatcher->SendAll(std::move(requests), Clock::now() + std::chrono::seconds(60), std::vector<double>(40, 1));
  ASSERT_EQ(outcomes.size(), 40u);
  for (int i = 0; i < 40; ++i) {
    ASSERT_TRUE(outcomes[i].response.has_value()) << i << ": " << outcomes[i].message;
    EXPECT_EQ(outcomes[i].response->body, std::to_string(i));  // outcomes in order
  }
  EXPECT_EQ(server.max_in_flight(), 4);
  // Connections are kept alive and reused: far fewer client ports than requests.
  std::set<int> ports;
  for (const TeacherRequest& request : server.received()) ports.insert(request.remote_port);
  EXPECT_LE(ports.size(), 8u);
  EXPECT_EQ(dispatcher->stats().succeeded, 40);
}

TEST(HttpDispatcher, ClosedConnectionsAreReplacedAndKeptAliveOnesReused) {
  // Idle connections stay registered with epoll between requests; a connection the server closes must
  // leave no trace, even when the next socket gets the same descriptor number.
  TeacherServer server;
  std::atomic<bool> close_after{true};
  server.SetHandler([&](const TeacherRequest& request) {
    TeacherReply reply{200, request.body, {}, false};
    if (close_after.load()) reply.headers.emplace_back("Connection", "close");
    return reply;
  });
  HttpDispatcherOptions options = FastOptions();
  options.max_concurrency = 3;
  options.max_retries = 0;  // a request sent on a dead connection would show as a failure
  auto dispatcher = Make(options);
  for (int round = 0; round < 2; ++round) {
    close_after.store(round == 0);
    for (int wave = 0; wave < 5; ++wave) {
      std::vector<HttpRequest> requests;
      for (int i = 0; i < 6; ++i) requests.push_back(Post(server, absl::StrCat(round, "/", wave, "/", i)));
      const std::vector<HttpOutcome> outcomes =
          dispatcher->SendAll(std::move(requests), Clock::now() + std::chrono::seconds(30), std::vector<double>(6, 1));
      for (int i = 0; i < 6; ++i) {
        ASSERT_TRUE(outcomes[i].response.has_value())
            << round << "/" << wave << "/" << i << ": " << outcomes[i].message;
        EXPECT_EQ(outcomes[i].response->body, absl::StrCat(round, "/", wave, "/", i));
      }
    }
  }
  ASSERT_EQ(server.received().size(), 60u);
  std::set<int> closing_ports, kept_ports;
  for (size_t i = 0; i < 60; ++i) (i < 30 ? closing_ports : kept_ports).insert(server.received()[i].remote_port);
  EXPECT_EQ(closing_ports.size(), 30u);  // a new connection for every request
  // Three in flight at a time, reused (the server ends a kept-alive connection after 5 requests).
  EXPECT_LE(kept_ports.size(), 12u);
  EXPECT_EQ(dispatcher->stats().succeeded, 60);
  EXPECT_EQ(dispatcher->stats().requests_sent, 60);
}

TEST(HttpDispatcher, RefusedConnectionIsRetriedThenAnHttpError) {
  int port = 0;
  {
    TeacherServer gone;
    port = gone.port();
  }
  HttpDispatcherOptions options = FastOptions();
  options.max_retries = 2;
  auto dispatcher = Make(options);
  HttpRequest request;
  request.url = "http://127.0.0.1:" + std::to_string(port) + "/v1/chat/completions";
  const HttpOutcome outcome = SendOne(*dispatcher, request);
  EXPECT_FALSE(outcome.response.has_value());
  EXPECT_TRUE(error_kind::IsAvailabilityError(outcome.kind)) << outcome.kind;
  EXPECT_EQ(outcome.attempts, 3);
}

TEST(HttpDispatcher, BadOptionsAreRefused) {
  HttpDispatcherOptions options = FastOptions();
  options.max_concurrency = 0;
  EXPECT_FALSE(HttpDispatcher::Create(options).ok());
  options = FastOptions();
  options.min_concurrency = 9;
  EXPECT_FALSE(HttpDispatcher::Create(options).ok());
  options = FastOptions();
  options.max_retries = -1;
  EXPECT_FALSE(HttpDispatcher::Create(options).ok());
}

}  // namespace
}  // namespace rlj
