// http_dispatcher.cc: the event loop: queue → limits → curl multi → classify (retry_decision.h) → retry or finish.
#include "judge/http/http_dispatcher.h"

#include <curl/curl.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <deque>
#include <map>
#include <random>
#include <unordered_map>
#include <unordered_set>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/blocking_counter.h"
#include "common/log.h"
#include "judge/http/adaptive_concurrency.h"
#include "judge/http/circuit_breaker.h"
#include "judge/http/curl_util.h"
#include "judge/http/retry_decision.h"
#include "judge/judge_backend.h"

namespace rlj {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// How often queued requests are checked against their deadlines.
constexpr milliseconds kDeadlineSweep(20);

double MillisecondsBetween(Clock::time_point from, Clock::time_point to) {
  return std::chrono::duration<double, std::milli>(to - from).count();
}

}  // namespace

struct HttpDispatcher::Job {
  Job() = default;
  Job(const Job&) = delete;
  Job& operator=(const Job&) = delete;
  ~Job() { curl_slist_free_all(transfer.header_list); }  // a job that never started still holds its list
  HttpRequest request;
  Clock::time_point deadline;
  double tokens = 0;
  Callback done;
  Clock::time_point submitted;
  int attempts = 0;
  // The last failure, reported if no later attempt succeeds.
  absl::StatusCode code = absl::StatusCode::kOk;
  std::string kind;
  std::string message;
  // The running attempt.
  CURL* handle = nullptr;
  curl::Transfer transfer;
  Clock::time_point started;
  int64_t epoch = 0;
};

struct HttpDispatcher::Loop {
  Loop(const HttpDispatcherOptions& options)
      : concurrency({options.min_concurrency, options.max_concurrency, options.adaptive, options.latency_factor}),
        breaker(options.breaker_failures, options.breaker_cooldown),
        random(std::random_device{}()) {}
  ~Loop() {
    for (CURL* handle : idle) curl_easy_cleanup(handle);
    if (multi != nullptr) curl_multi_cleanup(multi);
    if (epoll_fd >= 0) close(epoll_fd);
    if (wake_fd >= 0) close(wake_fd);
  }
  CURLM* multi = nullptr;
  // curl's socket interface: the sockets curl wants watched are in epoll_fd (with the wake-up eventfd), and
  // curl's own timer is curl_due (nullopt: none). Only sockets with activity are handed to curl, so a
  // loop turn costs what happened in it, not the number of connections.
  int epoll_fd = -1;
  int wake_fd = -1;
  // A socket curl told about: the events it wants (0: none, it sits idle in curl's connection cache) and
  // those it is registered in epoll_fd with (0: not registered). An idle kept-alive connection (one of
  // ours: opened by OnCurlOpenSocket) stays registered, so reusing it for the next request costs no
  // epoll_ctl; if it has an event while idle (the server closed it) it is unregistered then. Our
  // connections leave the map when curl closes them (OnCurlCloseSocket), so a number the kernel reuses
  // never inherits a stale entry.
  struct Watch {
    uint32_t wanted = 0;
    uint32_t registered = 0;
    bool connection = false;  // opened by OnCurlOpenSocket
  };
  std::unordered_map<curl_socket_t, Watch> watched;
  std::optional<Clock::time_point> curl_due;
  std::deque<std::unique_ptr<Job>> ready;                          // waiting for a slot, oldest first
  std::multimap<Clock::time_point, std::unique_ptr<Job>> waiting;  // retries waiting out their backoff
  std::vector<CURL*> idle;
  std::unordered_set<Job*> running;           // transfers in the multi handle (owned through these pointers)
  std::vector<std::unique_ptr<Job>> arrived;  // taken from incoming_ each turn (the two swap their storage)
  int in_flight = 0;
  int64_t requests_sent = 0;  // attempts started
  int64_t retries = 0;
  AdaptiveConcurrency concurrency;
  CircuitBreaker breaker;
  std::mt19937_64 random;
  Clock::time_point paused_until{};  // a Retry-After holds every request back until then
  Clock::time_point next_wake{};     // the rate limiter's next token
  Clock::time_point last_sweep{};
};

namespace {

// Books one retry under its cause (the failed attempt's error kind and HTTP status; 0 = no response).
void CountRetry(const std::string& kind, long status, const std::optional<std::chrono::milliseconds>& retry_after,
                HttpDispatcherStats* stats) {
  if (kind == error_kind::kRateLimited) {
    ++stats->retries_rate_limited;
  } else if (kind == error_kind::kParse) {
    ++stats->retries_malformed;
  } else if (kind == error_kind::kTimeout) {
    ++stats->retries_timeout;
  } else if (status >= 500) {
    ++stats->retries_server_error;
  } else {
    ++stats->retries_transport;
  }
  if (retry_after) {
    ++stats->retry_after_waits;
    stats->retry_after_seconds += std::chrono::duration<double>(*retry_after).count();
  }
}

}  // namespace

absl::StatusOr<std::unique_ptr<HttpDispatcher>> HttpDispatcher::Create(HttpDispatcherOptions options) {
  if (options.max_concurrency < 1) return absl::InvalidArgumentError("max_concurrency must be >= 1");
  if (options.min_concurrency < 1 || options.min_concurrency > options.max_concurrency) {
    return absl::InvalidArgumentError("min_concurrency must be in [1, max_concurrency]");
  }
  if (options.max_retries < 0) return absl::InvalidArgumentError("max_retries must be >= 0");
  if (options.request_timeout.count() <= 0) return absl::InvalidArgumentError("timeout_ms must be > 0");
  curl::GlobalInitOnce();
  std::unique_ptr<HttpDispatcher> dispatcher(new HttpDispatcher(std::move(options)));
  dispatcher->loop_->multi = curl_multi_init();
  if (dispatcher->loop_->multi == nullptr) return absl::ResourceExhaustedError("curl_multi_init failed");
  const long connections = dispatcher->options_.max_concurrency;
  curl_multi_setopt(dispatcher->loop_->multi, CURLMOPT_MAXCONNECTS, connections + 4);
  curl_multi_setopt(dispatcher->loop_->multi, CURLMOPT_MAX_HOST_CONNECTIONS, connections);
  Loop* loop = dispatcher->loop_.get();
  loop->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
  loop->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (loop->epoll_fd < 0 || loop->wake_fd < 0) return absl::ResourceExhaustedError("epoll_create1/eventfd failed");
  epoll_event wake{};
  wake.events = EPOLLIN;
  wake.data.fd = loop->wake_fd;
  epoll_ctl(loop->epoll_fd, EPOLL_CTL_ADD, loop->wake_fd, &wake);
  curl_multi_setopt(loop->multi, CURLMOPT_SOCKETFUNCTION, &HttpDispatcher::OnCurlSocket);
  curl_multi_setopt(loop->multi, CURLMOPT_SOCKETDATA, loop);
  curl_multi_setopt(loop->multi, CURLMOPT_TIMERFUNCTION, &HttpDispatcher::OnCurlTimer);
  curl_multi_setopt(loop->multi, CURLMOPT_TIMERDATA, loop);
  dispatcher->thread_ = std::thread([d = dispatcher.get()] { d->Run(); });
  return dispatcher;
}

HttpDispatcher::HttpDispatcher(HttpDispatcherOptions options)
    : options_(std::move(options)),
      limiter_(options_.requests_per_minute, options_.tokens_per_minute, Clock::now()),
      loop_(std::make_unique<Loop>(options_)) {
  if (!options_.redact) options_.redact = [](std::string text) { return text; };
  stats_.concurrency_limit = loop_->concurrency.limit();
}

HttpDispatcher::~HttpDispatcher() {
  {
    absl::MutexLock lock(&mutex_);
    stopping_ = true;
  }
  Wake();
  if (thread_.joinable()) thread_.join();
}

std::unique_ptr<HttpDispatcher::Job> HttpDispatcher::MakeJob(HttpRequest request, Clock::time_point deadline,
                                                             double estimated_tokens, Callback done) {
  auto job = std::make_unique<Job>();
  job->request = std::move(request);
  job->deadline = deadline;
  job->tokens = estimated_tokens;
  job->done = std::move(done);
  job->submitted = Clock::now();
  // Built here, on the submitting thread, not on the loop's (which every request's latency goes through).
  job->transfer.header_list = curl::HeaderList(job->request);
  return job;
}

void HttpDispatcher::Enqueue(std::vector<std::unique_ptr<Job>> jobs) {
  {
    absl::MutexLock lock(&mutex_);
    stats_.submitted += static_cast<int64_t>(jobs.size());
    for (auto& job : jobs) incoming_.push_back(std::move(job));
  }
  Wake();
}

void HttpDispatcher::Submit(HttpRequest request, Clock::time_point deadline, double estimated_tokens, Callback done) {
  std::vector<std::unique_ptr<Job>> jobs;
  jobs.push_back(MakeJob(std::move(request), deadline, estimated_tokens, std::move(done)));
  Enqueue(std::move(jobs));
}

void HttpDispatcher::Wake() {
  if (loop_->wake_fd < 0) return;
  const uint64_t one = 1;
  if (write(loop_->wake_fd, &one, sizeof(one)) < 0) {
    // EAGAIN: the counter is already non-zero, so the loop wakes anyway.
  }
}

int HttpDispatcher::OnCurlSocket(CURL* /*easy*/, curl_socket_t socket, int what, void* user, void* /*socket_data*/) {
  Loop* loop = static_cast<Loop*>(user);
  auto it = loop->watched.find(socket);
  if (what == CURL_POLL_REMOVE) {
    if (it == loop->watched.end()) return 0;
    if (it->second.connection) {
      it->second.wanted = 0;  // idle: stays registered until it is reused, closed, or has an event
    } else {
      if (it->second.registered != 0) epoll_ctl(loop->epoll_fd, EPOLL_CTL_DEL, socket, nullptr);
      loop->watched.erase(it);
    }
    return 0;
  }
  epoll_event event{};
  event.events = (what == CURL_POLL_IN || what == CURL_POLL_INOUT ? EPOLLIN : 0u) |
                 (what == CURL_POLL_OUT || what == CURL_POLL_INOUT ? EPOLLOUT : 0u);
  event.data.fd = socket;
  if (it == loop->watched.end()) it = loop->watched.emplace(socket, Loop::Watch{}).first;
  Loop::Watch& watch = it->second;
  watch.wanted = event.events;
  if (watch.registered == 0) {
    if (epoll_ctl(loop->epoll_fd, EPOLL_CTL_ADD, socket, &event) != 0 && errno == EEXIST) {
      epoll_ctl(loop->epoll_fd, EPOLL_CTL_MOD, socket, &event);
    }
  } else if (watch.registered != event.events) {
    if (epoll_ctl(loop->epoll_fd, EPOLL_CTL_MOD, socket, &event) != 0 && errno == ENOENT) {
      epoll_ctl(loop->epoll_fd, EPOLL_CTL_ADD, socket, &event);
    }
  }
  watch.registered = event.events;
  return 0;
}

curl_socket_t HttpDispatcher::OnCurlOpenSocket(void* user, curlsocktype /*purpose*/, curl_sockaddr* address) {
  Loop* loop = static_cast<Loop*>(user);
  const curl_socket_t socket = ::socket(address->family, address->socktype | SOCK_CLOEXEC, address->protocol);
  if (socket == CURL_SOCKET_BAD) return socket;
  Loop::Watch watch;
  watch.connection = true;
  loop->watched[socket] = watch;  // a new socket: nothing of an earlier one with this number applies
  return socket;
}

int HttpDispatcher::OnCurlCloseSocket(void* user, curl_socket_t socket) {
  Loop* loop = static_cast<Loop*>(user);
  auto it = loop->watched.find(socket);
  if (it != loop->watched.end()) {
    if (it->second.registered != 0) epoll_ctl(loop->epoll_fd, EPOLL_CTL_DEL, socket, nullptr);
    loop->watched.erase(it);
  }
  return close(socket);
}

int HttpDispatcher::OnCurlTimer(CURLM* /*multi*/, long timeout_ms, void* user) {
  Loop* loop = static_cast<Loop*>(user);
  if (timeout_ms < 0) {
    loop->curl_due.reset();
  } else {
    loop->curl_due = Clock::now() + milliseconds(timeout_ms);
  }
  return 0;
}

std::vector<HttpOutcome> HttpDispatcher::SendAll(std::vector<HttpRequest> requests, Clock::time_point deadline,
                                                 const std::vector<double>& estimated_tokens) {
  std::vector<HttpOutcome> outcomes(requests.size());
  if (requests.empty()) return outcomes;
  absl::BlockingCounter pending(static_cast<int>(requests.size()));
  std::vector<std::unique_ptr<Job>> jobs;
  jobs.reserve(requests.size());
  for (size_t i = 0; i < requests.size(); ++i) {
    const double tokens = i < estimated_tokens.size() ? estimated_tokens[i] : 0;
    jobs.push_back(MakeJob(std::move(requests[i]), deadline, tokens, [&outcomes, &pending, i](HttpOutcome outcome) {
      outcomes[i] = std::move(outcome);
      pending.DecrementCount();
    }));
  }
  Enqueue(std::move(jobs));  // one lock and one wake-up for the lot
  pending.Wait();
  return outcomes;
}

void HttpDispatcher::CorrectTokens(double estimated, double actual) {
  limiter_.Correct(estimated, actual, Clock::now());
}

HttpDispatcherStats HttpDispatcher::stats() const {
  absl::MutexLock lock(&mutex_);
  return stats_;
}

void HttpDispatcher::Run() {
  Loop& loop = *loop_;
  while (true) {
    if (!TakeArrivals()) {
      CancelEverything();
      return;
    }
    Clock::time_point now = Clock::now();
    ReadyDueRetries(now);
    SweepDeadlines(now);
    Dispatch(now);
    int running = 0;
    if (loop.curl_due && *loop.curl_due <= Clock::now()) {
      loop.curl_due.reset();
      curl_multi_socket_action(loop.multi, CURL_SOCKET_TIMEOUT, 0, &running);
    }
    DrainCompletions();
    now = Clock::now();
    Dispatch(now);  // slots freed by completions
    PublishState(now);
    WaitForEvents(NextWake(now));
    DrainCompletions();
  }
}

bool HttpDispatcher::TakeArrivals() {
  Loop& loop = *loop_;
  bool stopping = false;
  {
    absl::MutexLock lock(&mutex_);
    loop.arrived.swap(incoming_);
    stopping = stopping_;
  }
  if (stopping) return false;  // what arrived is cancelled with the rest
  for (auto& job : loop.arrived) loop.ready.push_back(std::move(job));
  loop.arrived.clear();
  return true;
}

void HttpDispatcher::ReadyDueRetries(Clock::time_point now) {
  Loop& loop = *loop_;
  while (!loop.waiting.empty() && loop.waiting.begin()->first <= now) {
    loop.ready.push_front(std::move(loop.waiting.begin()->second));
    loop.waiting.erase(loop.waiting.begin());
  }
}

void HttpDispatcher::SweepDeadlines(Clock::time_point now) {
  Loop& loop = *loop_;
  if (now - loop.last_sweep < kDeadlineSweep) return;
  loop.last_sweep = now;
  std::deque<std::unique_ptr<Job>> keep;
  for (auto& job : loop.ready) {
    if (job->deadline <= now) {
      FailAfter(std::move(job), absl::StatusCode::kDeadlineExceeded, error_kind::kTimeout,
                "the deadline passed before the teacher answered");
    } else {
      keep.push_back(std::move(job));
    }
  }
  loop.ready.swap(keep);
}

void HttpDispatcher::Dispatch(Clock::time_point now) {
  Loop& loop = *loop_;
  auto take_front = [&loop] {
    std::unique_ptr<Job> job = std::move(loop.ready.front());
    loop.ready.pop_front();
    return job;
  };
  while (!loop.ready.empty() && loop.in_flight < loop.concurrency.limit()) {
    const Job& front = *loop.ready.front();
    if (front.deadline <= now) {
      FailAfter(take_front(), absl::StatusCode::kDeadlineExceeded, error_kind::kTimeout,
                "the deadline passed before the teacher answered");
      continue;
    }
    if (options_.budget_exhausted && options_.budget_exhausted()) {
      Fail(take_front(), absl::StatusCode::kResourceExhausted, error_kind::kBudget,
           "the judge's budget (judge.budget_usd) is spent");
      continue;
    }
    if (now < loop.paused_until) break;
    const CircuitBreaker::State state = loop.breaker.state(now);
    if (state == CircuitBreaker::State::kOpen) {
      FailAfter(take_front(), absl::StatusCode::kUnavailable, error_kind::kCircuitOpen,
                absl::StrCat("the circuit breaker of ", options_.name, " is open after repeated failures"));
      continue;
    }
    const std::chrono::nanoseconds wait = limiter_.Reserve(front.tokens, now);
    if (wait.count() > 0) {
      loop.next_wake = now + wait;
      break;
    }
    if (!loop.breaker.Allow(now)) {  // half-open with its probe still out
      FailAfter(take_front(), absl::StatusCode::kUnavailable, error_kind::kCircuitOpen,
                absl::StrCat("the circuit breaker of ", options_.name, " is half-open, waiting for its probe"));
      continue;
    }
    StartAttempt(take_front(), now);
  }
}

void HttpDispatcher::StartAttempt(std::unique_ptr<Job> job, Clock::time_point now) {
  Loop& loop = *loop_;
  CURL* handle = nullptr;
  if (!loop.idle.empty()) {
    handle = loop.idle.back();
    loop.idle.pop_back();
    curl_easy_reset(handle);
  } else {
    handle = curl_easy_init();
  }
  if (handle == nullptr) {
    FailAfter(std::move(job), absl::StatusCode::kResourceExhausted, error_kind::kHttpError, "curl_easy_init failed");
    return;
  }
  ++job->attempts;
  job->handle = handle;
  job->started = now;
  job->epoch = loop.concurrency.epoch();
  job->transfer.response = HttpResponse();  // a retry starts from nothing (its header list was released)
  job->transfer.error_buffer[0] = '\0';
  const auto remaining = std::chrono::duration_cast<milliseconds>(job->deadline - now);
  curl::SetRequestOptions(handle, job->request, std::min(options_.request_timeout, remaining), options_.connect_timeout,
                          &job->transfer);
  curl_easy_setopt(handle, CURLOPT_OPENSOCKETFUNCTION, &HttpDispatcher::OnCurlOpenSocket);
  curl_easy_setopt(handle, CURLOPT_OPENSOCKETDATA, &loop);
  curl_easy_setopt(handle, CURLOPT_CLOSESOCKETFUNCTION, &HttpDispatcher::OnCurlCloseSocket);
  curl_easy_setopt(handle, CURLOPT_CLOSESOCKETDATA, &loop);
  Job* raw = job.release();
  curl_easy_setopt(handle, CURLOPT_PRIVATE, raw);
  curl_multi_add_handle(loop.multi, handle);
  loop.running.insert(raw);
  ++loop.in_flight;
  ++loop.requests_sent;  // published with the next outcome or loop turn
  if (raw->attempts > 1) ++loop.retries;
}

void HttpDispatcher::DrainCompletions() {
  int pending = 0;
  while (CURLMsg* message = curl_multi_info_read(loop_->multi, &pending)) {
    if (message->msg != CURLMSG_DONE) continue;
    Job* raw = nullptr;
    curl_easy_getinfo(message->easy_handle, CURLINFO_PRIVATE, reinterpret_cast<char**>(&raw));
    Complete(raw, message->data.result);
  }
}

void HttpDispatcher::Complete(Job* raw, CURLcode code) {
  Loop& loop = *loop_;
  std::unique_ptr<Job> job(raw);
  loop.running.erase(raw);
  const Clock::time_point now = Clock::now();
  long status = 0;
  if (code == CURLE_OK) curl_easy_getinfo(job->handle, CURLINFO_RESPONSE_CODE, &status);
  RecycleHandle(job.get());
  const double latency_ms = MillisecondsBetween(job->started, now);

  const absl::Status transport =
      code == CURLE_OK ? absl::OkStatus() : curl::TransportError(code, job->request, job->transfer.error_buffer);
  const AttemptClassification attempt = ClassifyAttempt(transport, status, job->transfer.response, job->request.url,
                                                        options_.require_json_body, std::chrono::system_clock::now());
  RecordAttempt(*job, attempt, latency_ms, now);
  if (attempt.result == AttemptClassification::Result::kSucceeded) {
    job->transfer.response.status = static_cast<int>(status);
    HttpOutcome outcome;
    outcome.response = std::move(job->transfer.response);
    Finish(std::move(job), std::move(outcome));
    return;
  }
  job->code = attempt.code;
  job->kind = attempt.kind;
  job->message = attempt.message;
  const RetryDecision decision =
      DecideRetry(attempt, job->attempts, options_.max_retries, options_.backoff, loop.random, now, job->deadline);
  if (!decision.retry) {
    Fail(std::move(job), attempt.code, attempt.kind, decision.message);
    return;
  }
  {
    absl::MutexLock lock(&mutex_);
    CountRetry(attempt.kind, status, attempt.retry_after, &stats_);
  }
  loop.waiting.emplace(now + decision.wait, std::move(job));
}

void HttpDispatcher::RecycleHandle(Job* job) {
  Loop& loop = *loop_;
  curl_multi_remove_handle(loop.multi, job->handle);
  curl::ReleaseTransfer(job->handle, &job->transfer);
  if (static_cast<int>(loop.idle.size()) < options_.max_concurrency) {
    loop.idle.push_back(job->handle);
  } else {
    curl_easy_cleanup(job->handle);
  }
  job->handle = nullptr;
  --loop.in_flight;
}

void HttpDispatcher::RecordAttempt(const Job& job, const AttemptClassification& attempt, double latency_ms,
                                   Clock::time_point now) {
  Loop& loop = *loop_;
  if (attempt.server_answered) {
    loop.breaker.OnSuccess();
  } else {
    loop.breaker.OnFailure(now);
  }
  if (attempt.result == AttemptClassification::Result::kSucceeded) loop.concurrency.OnSuccess(job.epoch, latency_ms);
  if (attempt.rate_limited) loop.concurrency.OnRateLimited(job.epoch);
  if (attempt.malformed || attempt.rate_limited) {
    absl::MutexLock lock(&mutex_);
    if (attempt.malformed) ++stats_.malformed;
    if (attempt.rate_limited) ++stats_.rate_limited;
  }
  // A Retry-After delays this request's retry; it holds every request only when the limit can be cut no
  // further (a sporadic 429 of a hosted API must not stall the whole backend).
  if (attempt.retry_after && attempt.rate_limited && loop.concurrency.at_floor()) {
    loop.paused_until = std::max(loop.paused_until, now + *attempt.retry_after);
  }
}

void HttpDispatcher::PublishState(Clock::time_point now) {
  const Loop& loop = *loop_;
  absl::MutexLock lock(&mutex_);
  stats_.requests_sent = loop.requests_sent;
  stats_.retries = loop.retries;
  stats_.concurrency_limit = loop.concurrency.limit();
  stats_.in_flight = loop.in_flight;
  stats_.queued = static_cast<int>(loop.ready.size() + loop.waiting.size());
  stats_.circuit = CircuitBreaker::StateName(loop.breaker.state(now));
  stats_.circuit_opened = loop.breaker.times_opened();
}

// Sleep until curl has work, a request arrives (wakeup), a retry or token is due, or the next sweep.
HttpDispatcher::Clock::time_point HttpDispatcher::NextWake(Clock::time_point now) const {
  const Loop& loop = *loop_;
  Clock::time_point wake = now + milliseconds(1000);
  if (!loop.waiting.empty()) wake = std::min(wake, loop.waiting.begin()->first);
  if (!loop.ready.empty()) {
    wake = std::min(wake, now + kDeadlineSweep);
    if (loop.in_flight < loop.concurrency.limit()) {
      if (loop.next_wake > now) wake = std::min(wake, loop.next_wake);
      if (loop.paused_until > now) wake = std::min(wake, loop.paused_until);
    }
  }
  if (loop.curl_due) wake = std::min(wake, *loop.curl_due);
  return wake;
}

void HttpDispatcher::WaitForEvents(Clock::time_point wake) {
  Loop& loop = *loop_;
  const auto timeout_us = std::chrono::duration_cast<std::chrono::microseconds>(wake - Clock::now()).count();
  const int timeout_ms = static_cast<int>(std::clamp<int64_t>((timeout_us + 999) / 1000, 0, 1000));
  epoll_event events[256];
  const int n = epoll_wait(loop.epoll_fd, events, 256, timeout_ms);
  int running = 0;
  for (int i = 0; i < n; ++i) {
    const int fd = events[i].data.fd;
    if (fd == loop.wake_fd) {
      uint64_t count = 0;
      if (read(loop.wake_fd, &count, sizeof(count)) < 0) {
        // Already drained.
      }
      continue;
    }
    auto watch = loop.watched.find(fd);
    if (watch == loop.watched.end() || watch->second.wanted == 0) {
      // An idle connection with news (the server closed it): curl finds out when it next checks it.
      if (watch != loop.watched.end() && watch->second.registered != 0) {
        epoll_ctl(loop.epoll_fd, EPOLL_CTL_DEL, fd, nullptr);
        watch->second.registered = 0;
      }
      continue;
    }
    int flags = 0;
    if (events[i].events & EPOLLIN) flags |= CURL_CSELECT_IN;
    if (events[i].events & EPOLLOUT) flags |= CURL_CSELECT_OUT;
    if (events[i].events & (EPOLLERR | EPOLLHUP)) flags |= CURL_CSELECT_ERR;
    curl_multi_socket_action(loop.multi, fd, flags, &running);
  }
}

void HttpDispatcher::CancelEverything() {
  Loop& loop = *loop_;
  std::vector<std::unique_ptr<Job>> jobs;
  for (auto& job : loop.ready) jobs.push_back(std::move(job));
  loop.ready.clear();
  for (auto& [at, job] : loop.waiting) jobs.push_back(std::move(job));
  loop.waiting.clear();
  for (auto& job : loop.arrived) jobs.push_back(std::move(job));
  loop.arrived.clear();
  for (Job* raw : loop.running) {
    curl_multi_remove_handle(loop.multi, raw->handle);
    curl::ReleaseTransfer(raw->handle, &raw->transfer);
    curl_easy_cleanup(raw->handle);
    raw->handle = nullptr;
    jobs.emplace_back(raw);
  }
  loop.running.clear();
  loop.in_flight = 0;
  for (auto& job : jobs) {
    Fail(std::move(job), absl::StatusCode::kCancelled, error_kind::kBackend, "the judge is shutting down");
  }
}

void HttpDispatcher::Finish(std::unique_ptr<Job> job, HttpOutcome outcome) {
  const Loop& loop = *loop_;
  outcome.attempts = job->attempts;
  outcome.latency_ms = MillisecondsBetween(job->submitted, Clock::now());
  {
    // The state this outcome leaves behind is published before anyone hears of the outcome.
    absl::MutexLock lock(&mutex_);
    if (outcome.response) {
      ++stats_.succeeded;
    } else {
      ++stats_.failed;
    }
    stats_.requests_sent = loop.requests_sent;
    stats_.retries = loop.retries;
    stats_.concurrency_limit = loop.concurrency.limit();
    stats_.circuit = CircuitBreaker::StateName(loop.breaker.state(Clock::now()));
    stats_.circuit_opened = loop.breaker.times_opened();
  }
  Callback done = std::move(job->done);
  job.reset();
  done(std::move(outcome));
}

void HttpDispatcher::Fail(std::unique_ptr<Job> job, absl::StatusCode code, std::string kind, std::string message) {
  HttpOutcome outcome;
  outcome.code = code;
  outcome.kind = std::move(kind);
  outcome.message = options_.redact(std::move(message));
  Finish(std::move(job), std::move(outcome));
}

void HttpDispatcher::FailAfter(std::unique_ptr<Job> job, absl::StatusCode code, std::string kind,
                               const std::string& why) {
  std::string message = why;
  if (job->attempts > 0 && !job->message.empty()) {
    message = absl::StrCat(job->message, " (", AttemptsText(job->attempts), "); ", why);
    if (kind == error_kind::kTimeout && !job->kind.empty()) {
      // Ran out of time while retrying: keep saying what kept failing.
      kind = job->kind;
      code = job->code;
    }
  }
  Fail(std::move(job), code, std::move(kind), std::move(message));
}

}  // namespace rlj
