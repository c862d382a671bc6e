// fixed_latency_server.cc: the epoll loop: accept, read a request (headers + Content-Length body), answer
// it once its latency has passed, keep the connection for the next one.
#include "judge/fixed_latency_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <queue>
#include <unordered_map>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace rlj {
namespace {

using Clock = std::chrono::steady_clock;

constexpr size_t kMaxRequestBytes = 16 << 20;

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
  size_t content_length = 0;
  size_t line = in.find("\r\n");
  while (line != std::string::npos && line < end) {
    const size_t next = in.find("\r\n", line + 2);
    const std::string header = in.substr(line + 2, next - line - 2);
    const size_t colon = header.find(':');
    if (colon != std::string::npos &&
        absl::AsciiStrToLower(absl::StripAsciiWhitespace(header.substr(0, colon))) == "content-length") {
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
  if (wake_fd < 0 || epoll_fd < 0) {
    close(listen_fd);
    if (wake_fd >= 0) close(wake_fd);
    if (epoll_fd >= 0) close(epoll_fd);
    return absl::InternalError("eventfd/epoll_create1 failed");
  }
  epoll_event event{};
  event.events = EPOLLIN;
  event.data.u64 = 0;  // the listening socket
  epoll_ctl(epoll_fd, EPOLL_CTL_ADD, listen_fd, &event);
  event.data.u64 = 1;  // the wake-up
  epoll_ctl(epoll_fd, EPOLL_CTL_ADD, wake_fd, &event);
  std::unique_ptr<FixedLatencyServer> server(
      new FixedLatencyServer(std::move(options), listen_fd, wake_fd, epoll_fd, ntohs(address.sin_port)));
  server->thread_ = std::thread([s = server.get()] { s->Run(); });
  return server;
}

FixedLatencyServer::FixedLatencyServer(Options options, int listen_fd, int wake_fd, int epoll_fd, int port)
    : options_(std::move(options)), listen_fd_(listen_fd), wake_fd_(wake_fd), epoll_fd_(epoll_fd), port_(port) {
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
  close(wake_fd_);
  close(listen_fd_);
}

void FixedLatencyServer::Run() {
  // Connections are keyed by a 64-bit id (ids 0 and 1 are the listener and the wake-up).
  std::unordered_map<uint64_t, Connection> connections;
  uint64_t next_id = 2;
  struct Due {
    Clock::time_point at;
    uint64_t id;
    uint64_t generation;
    bool operator>(const Due& other) const { return at > other.at; }
  };
  std::priority_queue<Due, std::vector<Due>, std::greater<Due>> due;
  int64_t pending = 0;

  auto close_connection = [&](uint64_t id) {
    auto it = connections.find(id);
    if (it == connections.end()) return;
    if (it->second.waiting) --pending;
    close(it->second.fd);
    connections.erase(it);
  };
  auto set_write_interest = [&](uint64_t id, Connection& c, bool want) {
    if (c.want_write == want) return;
    c.want_write = want;
    epoll_event event{};
    event.events = EPOLLIN | (want ? EPOLLOUT : 0u);
    event.data.u64 = id;
    epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, c.fd, &event);
  };
  // Writes what is buffered; false when the connection broke.
  auto flush = [&](uint64_t id, Connection& c) {
    while (c.out_offset < c.out.size()) {
      const ssize_t n = send(c.fd, c.out.data() + c.out_offset, c.out.size() - c.out_offset, MSG_NOSIGNAL);
      if (n > 0) {
        c.out_offset += static_cast<size_t>(n);
        continue;
      }
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        set_write_interest(id, c, true);
        return true;
      }
      if (n < 0 && errno == EINTR) continue;
      return false;
    }
    c.out.clear();
    c.out_offset = 0;
    set_write_interest(id, c, false);
    return true;
  };
  // Starts the latency of the next complete request, if one has arrived and none is waiting.
  auto take_request = [&](uint64_t id, Connection& c) {
    if (c.waiting) return true;
    const size_t length = CompleteRequestLength(c.in);
    if (length == SIZE_MAX) return false;
    if (length == 0) return true;
    c.in.erase(0, length);
    c.waiting = true;
    ++c.generation;
    due.push(Due{Clock::now() + options_.latency, id, c.generation});
    ++pending;
    if (pending > max_pending_.load(std::memory_order_relaxed)) max_pending_.store(pending, std::memory_order_relaxed);
    return true;
  };

  std::vector<epoll_event> events(1024);
  char buffer[65536];
  while (true) {
    int timeout_ms = 1000;
    if (!due.empty()) {
      const auto wait = std::chrono::duration_cast<std::chrono::microseconds>(due.top().at - Clock::now()).count();
      timeout_ms = wait <= 0 ? 0 : static_cast<int>(std::min<int64_t>(1000, (wait + 999) / 1000));
    }
    const int n = epoll_wait(epoll_fd_, events.data(), static_cast<int>(events.size()), timeout_ms);
    if (n < 0 && errno != EINTR) break;
    for (int i = 0; i < std::max(n, 0); ++i) {
      const uint64_t id = events[i].data.u64;
      if (id == 1) {  // stop
        for (auto& [key, c] : connections) close(c.fd);
        return;
      }
      if (id == 0) {
        while (true) {
          const int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
          if (fd < 0) break;
          const int one = 1;
          setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
          const uint64_t cid = next_id++;
          Connection& c = connections[cid];
          c.fd = fd;
          epoll_event event{};
          event.events = EPOLLIN;
          event.data.u64 = cid;
          epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &event);
          connections_.fetch_add(1, std::memory_order_relaxed);
        }
        continue;
      }
      auto it = connections.find(id);
      if (it == connections.end()) continue;
      Connection& c = it->second;
      bool alive = true;
      if (events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
        while (true) {
          const ssize_t got = recv(c.fd, buffer, sizeof(buffer), 0);
          if (got > 0) {
            c.in.append(buffer, static_cast<size_t>(got));
            continue;
          }
          if (got == 0) alive = false;  // the client closed
          else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) alive = false;
          break;
        }
        if (alive) alive = take_request(id, c);
      }
      if (alive && (events[i].events & EPOLLOUT)) alive = flush(id, c);
      if (!alive) close_connection(id);
    }
    // Answer every request whose latency has passed.
    const Clock::time_point now = Clock::now();
    while (!due.empty() && due.top().at <= now) {
      const Due d = due.top();
      due.pop();
      auto it = connections.find(d.id);
      if (it == connections.end() || it->second.generation != d.generation || !it->second.waiting) continue;
      Connection& c = it->second;
      c.waiting = false;
      --pending;
      c.out += response_;
      requests_.fetch_add(1, std::memory_order_relaxed);
      if (!flush(d.id, c) || !take_request(d.id, c)) close_connection(d.id);
    }
  }
}

}  // namespace rlj
