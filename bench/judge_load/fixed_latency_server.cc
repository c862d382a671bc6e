// fixed_latency_server.cc: the epoll loop: accept, read a request (headers + Content-Length body), answer
// it once its latency has passed (a timerfd armed for the earliest due answer plus a 200 us slack, so
// answers are late by at most that, not by epoll_wait's millisecond rounding), keep the connection for
// the next one.
#include "bench/judge_load/fixed_latency_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>
#include <queue>
#include <unordered_map>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace rlj {
namespace {

using Clock = std::chrono::steady_clock;

constexpr size_t kMaxRequestBytes = 16 << 20;
// The timer fires this long after the earliest due answer, so that one wake-up answers every request due
// within it (answers are late by at most this, never early; a timer per answer costs the stand-in more
// CPU than the precision is worth).
constexpr std::chrono::microseconds kTimerSlack(200);

struct Connection {
  int fd = -1;
  uint64_t generation = 0;
  std::string in;
  std::string out;
  size_t out_offset = 0;
  bool waiting = false;  // a request is waiting out its latency (one at a time: no pipelining)
  bool want_write = false;
};

// Length of the first complete request in `in` (headers and body), or 0 if it is not all there yet;
// SIZE_MAX when it is malformed.
size_t CompleteRequestLength(const std::string& in) {
  const size_t end = in.find("\r\n\r\n");
  if (end == std::string::npos) return in.size() > kMaxRequestBytes ? SIZE_MAX : 0;
  const absl::string_view head(in.data(), end);
  size_t content_length = 0;
  size_t line = head.find("\r\n");
  while (line != absl::string_view::npos) {
    const size_t next = head.find("\r\n", line + 2);
    const absl::string_view header =
        head.substr(line + 2, next == absl::string_view::npos ? absl::string_view::npos : next - line - 2);
    const size_t colon = header.find(':');
    if (colon != absl::string_view::npos &&
        absl::EqualsIgnoreCase(absl::StripAsciiWhitespace(header.substr(0, colon)), "content-length")) {
      uint64_t n = 0;
      if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(header.substr(colon + 1)), &n) || n > kMaxRequestBytes) {
        return SIZE_MAX;
      }
      content_length = static_cast<size_t>(n);
    }
    line = next;
  }
  const size_t total = end + 4 + content_length;
  return in.size() >= total ? total : 0;
}

// Arms `timer_fd` (CLOCK_MONOTONIC, which steady_clock reads) to fire at `at`.
void ArmTimer(int timer_fd, Clock::time_point at) {
  const auto since_epoch = std::chrono::duration_cast<std::chrono::nanoseconds>(at.time_since_epoch()).count();
  itimerspec spec{};
  // A zero it_value would disarm the timer: a time already passed fires at once from 1 ns.
  spec.it_value.tv_sec = static_cast<time_t>(since_epoch / 1000000000);
  spec.it_value.tv_nsec = static_cast<long>(since_epoch % 1000000000);
  if (spec.it_value.tv_sec == 0 && spec.it_value.tv_nsec == 0) spec.it_value.tv_nsec = 1;
  timerfd_settime(timer_fd, TFD_TIMER_ABSTIME, &spec, nullptr);
}

// epoll ids: the listening socket, the wake-up (stop), the timer of the earliest due answer; connections
// get ids from kFirstConnectionId on.
constexpr uint64_t kListenerId = 0;
constexpr uint64_t kWakeId = 1;
constexpr uint64_t kTimerId = 2;
constexpr uint64_t kFirstConnectionId = 3;

// What the serving loop needs of its server: descriptors, the latency, the answer and the counters it keeps.
struct ServeContext {
  int listen_fd;
  int epoll_fd;
  int timer_fd;
  std::chrono::microseconds latency;
  const std::string& response;
  std::atomic<int64_t>& requests;
  std::atomic<int64_t>& connections;
  std::atomic<int64_t>& max_pending;
};

// The epoll loop's state: the connections and the answers waiting out their latency.
class ServeLoop {
 public:
  explicit ServeLoop(ServeContext context) : context_(context) {}
  void Run();  // until the wake-up fires (every connection closed) or epoll_wait fails

 private:
  struct Due {
    Clock::time_point at;
    uint64_t id;
    uint64_t generation;
    bool operator>(const Due& other) const { return at > other.at; }
  };

  void ArmForEarliest();
  void OnTimer();
  void AcceptAll();
  void OnConnectionEvents(uint64_t id, uint32_t events);
  bool Receive(Connection& c);  // reads what is there; false when the connection is gone
  void AnswerDue(Clock::time_point now);
  void CloseConnection(uint64_t id);
  void SetWriteInterest(uint64_t id, Connection& c, bool want);
  bool Flush(uint64_t id, Connection& c);
  bool TakeRequest(uint64_t id, Connection& c);

  ServeContext context_;
  // Connections are keyed by a 64-bit id (the ids below kFirstConnectionId are the loop's own descriptors).
  std::unordered_map<uint64_t, Connection> connections_;
  uint64_t next_id_ = kFirstConnectionId;
  std::optional<Clock::time_point> armed_;  // when the timer fires next
  std::priority_queue<Due, std::vector<Due>, std::greater<Due>> due_;
  int64_t pending_ = 0;
};

void ServeLoop::Run() {
  std::vector<epoll_event> events(1024);
  while (true) {
    ArmForEarliest();
    const int n = epoll_wait(context_.epoll_fd, events.data(), static_cast<int>(events.size()), 1000);
    if (n < 0 && errno != EINTR) return;
    for (int i = 0; i < std::max(n, 0); ++i) {
      const uint64_t id = events[i].data.u64;
      if (id == kWakeId) {  // stop
        for (auto& [key, c] : connections_) close(c.fd);
        return;
      }
      if (id == kTimerId) {
        OnTimer();
      } else if (id == kListenerId) {
        AcceptAll();
      } else {
        OnConnectionEvents(id, events[i].events);
      }
    }
    AnswerDue(Clock::now());
  }
}

void ServeLoop::ArmForEarliest() {
  if (!due_.empty() && (!armed_ || due_.top().at + kTimerSlack < *armed_)) {
    armed_ = due_.top().at + kTimerSlack;
    ArmTimer(context_.timer_fd, *armed_);
  }
}

// The timer fired: the answers due are sent after this turn's events.
void ServeLoop::OnTimer() {
  uint64_t expirations = 0;
  if (read(context_.timer_fd, &expirations, sizeof(expirations)) < 0) {
    // Already read (EAGAIN): nothing to do.
  }
  armed_.reset();
}

void ServeLoop::AcceptAll() {
  while (true) {
    const int fd = accept4(context_.listen_fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) break;
    const int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    const uint64_t cid = next_id_++;
    Connection& c = connections_[cid];
    c.fd = fd;
    epoll_event event{};
    event.events = EPOLLIN;
    event.data.u64 = cid;
    epoll_ctl(context_.epoll_fd, EPOLL_CTL_ADD, fd, &event);
    context_.connections.fetch_add(1, std::memory_order_relaxed);
  }
}

void ServeLoop::OnConnectionEvents(uint64_t id, uint32_t events) {
  auto it = connections_.find(id);
  if (it == connections_.end()) return;
  Connection& c = it->second;
  bool alive = true;
  if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
    alive = Receive(c);
    if (alive) alive = TakeRequest(id, c);
  }
  if (alive && (events & EPOLLOUT)) alive = Flush(id, c);
  if (!alive) CloseConnection(id);
}

bool ServeLoop::Receive(Connection& c) {
  char buffer[65536];
  while (true) {
    const ssize_t got = recv(c.fd, buffer, sizeof(buffer), 0);
    if (got > 0) {
      c.in.append(buffer, static_cast<size_t>(got));
      continue;
    }
    if (got == 0) return false;  // the client closed
    return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
  }
}

// Answers every request whose latency has passed.
void ServeLoop::AnswerDue(Clock::time_point now) {
  while (!due_.empty() && due_.top().at <= now) {
    const Due d = due_.top();
    due_.pop();
    auto it = connections_.find(d.id);
    if (it == connections_.end() || it->second.generation != d.generation || !it->second.waiting) continue;
    Connection& c = it->second;
    c.waiting = false;
    --pending_;
    c.out += context_.response;
    context_.requests.fetch_add(1, std::memory_order_relaxed);
    if (!Flush(d.id, c) || !TakeRequest(d.id, c)) CloseConnection(d.id);
  }
}

void ServeLoop::CloseConnection(uint64_t id) {
  auto it = connections_.find(id);
  if (it == connections_.end()) return;
  if (it->second.waiting) --pending_;
  close(it->second.fd);
  connections_.erase(it);
}

void ServeLoop::SetWriteInterest(uint64_t id, Connection& c, bool want) {
  if (c.want_write == want) return;
  c.want_write = want;
  epoll_event event{};
  event.events = EPOLLIN | (want ? EPOLLOUT : 0u);
  event.data.u64 = id;
  epoll_ctl(context_.epoll_fd, EPOLL_CTL_MOD, c.fd, &event);
}

// Writes what is buffered; false when the connection broke.
bool ServeLoop::Flush(uint64_t id, Connection& c) {
  while (c.out_offset < c.out.size()) {
    const ssize_t n = send(c.fd, c.out.data() + c.out_offset, c.out.size() - c.out_offset, MSG_NOSIGNAL);
    if (n > 0) {
      c.out_offset += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      SetWriteInterest(id, c, true);
      return true;
    }
    if (n < 0 && errno == EINTR) continue;
    return false;
  }
  c.out.clear();
  c.out_offset = 0;
  SetWriteInterest(id, c, false);
  return true;
}

// Starts the latency of the next complete request, if one has arrived and none is waiting; false when the
// request is malformed.
bool ServeLoop::TakeRequest(uint64_t id, Connection& c) {
  if (c.waiting) return true;
  const size_t length = CompleteRequestLength(c.in);
  if (length == SIZE_MAX) return false;
  if (length == 0) return true;
  c.in.erase(0, length);
  c.waiting = true;
  ++c.generation;
  due_.push(Due{Clock::now() + context_.latency, id, c.generation});
  ++pending_;
  if (pending_ > context_.max_pending.load(std::memory_order_relaxed)) {
    context_.max_pending.store(pending_, std::memory_order_relaxed);
  }
  return true;
}

}  // namespace

absl::StatusOr<std::unique_ptr<FixedLatencyServer>> FixedLatencyServer::Start(Options options) {
  const int listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (listen_fd < 0) return absl::InternalError(absl::StrCat("socket: ", std::strerror(errno)));
  const int one = 1;
  setsockopt(listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = 0;
  if (bind(listen_fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0 || listen(listen_fd, 4096) != 0) {
    const std::string why = std::strerror(errno);
    close(listen_fd);
    return absl::UnavailableError(absl::StrCat("cannot listen on 127.0.0.1: ", why));
  }
  socklen_t length = sizeof(address);
  getsockname(listen_fd, reinterpret_cast<sockaddr*>(&address), &length);
  const int wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  const int epoll_fd = epoll_create1(EPOLL_CLOEXEC);
  const int timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
  if (wake_fd < 0 || epoll_fd < 0 || timer_fd < 0) {
    close(listen_fd);
    if (wake_fd >= 0) close(wake_fd);
    if (epoll_fd >= 0) close(epoll_fd);
    if (timer_fd >= 0) close(timer_fd);
    return absl::InternalError("eventfd/epoll_create1/timerfd_create failed");
  }
  epoll_event event{};
  event.events = EPOLLIN;
  event.data.u64 = kListenerId;
  epoll_ctl(epoll_fd, EPOLL_CTL_ADD, listen_fd, &event);
  event.data.u64 = kWakeId;
  epoll_ctl(epoll_fd, EPOLL_CTL_ADD, wake_fd, &event);
  event.data.u64 = kTimerId;
  epoll_ctl(epoll_fd, EPOLL_CTL_ADD, timer_fd, &event);
  std::unique_ptr<FixedLatencyServer> server(
      new FixedLatencyServer(std::move(options), listen_fd, wake_fd, epoll_fd, timer_fd, ntohs(address.sin_port)));
  server->thread_ = std::thread([s = server.get()] { s->Run(); });
  return server;
}

FixedLatencyServer::FixedLatencyServer(Options options, int listen_fd, int wake_fd, int epoll_fd, int timer_fd,
                                       int port)
    : options_(std::move(options)),
      listen_fd_(listen_fd),
      wake_fd_(wake_fd),
      epoll_fd_(epoll_fd),
      timer_fd_(timer_fd),
      port_(port) {
  const char* reason = options_.status == 200 ? "OK" : "Status";
  response_ = absl::StrCat("HTTP/1.1 ", options_.status, " ", reason,
                           "\r\nContent-Type: application/json\r\nConnection: keep-alive\r\nContent-Length: ",
                           options_.body.size(), "\r\n\r\n", options_.body);
}

FixedLatencyServer::~FixedLatencyServer() {
  const uint64_t one = 1;
  if (write(wake_fd_, &one, sizeof(one)) < 0) {
    // The loop also ends when the descriptors close below; nothing else to do.
  }
  if (thread_.joinable()) thread_.join();
  close(epoll_fd_);
  close(timer_fd_);
  close(wake_fd_);
  close(listen_fd_);
}

void FixedLatencyServer::Run() {
  ServeLoop loop(ServeContext{listen_fd_, epoll_fd_, timer_fd_, options_.latency, response_, requests_, connections_,
                              max_pending_});
  loop.Run();
}

}  // namespace rlj
