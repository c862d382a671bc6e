// teacher_server.h: a real HTTP server on 127.0.0.1 (cpp-httplib) that plays an OpenAI-compatible teacher
// for tests: scripted replies in order (or a handler), every request recorded, replies that hang until the
// server goes away (for timeouts).
#pragma once

#include <httplib.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "nlohmann/json.hpp"

namespace rlj::testing {

struct TeacherReply {
  int status = 200;
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
  bool hang = false;  // never answer (until the server is destroyed): the client must time out
};

struct TeacherRequest {
  std::string method;
  std::string path;
  std::string body;
  std::string authorization;  // "" when the header was absent
  bool has_authorization = false;
  int remote_port = 0;                         // the client's port: equal for requests on one kept-alive connection
  std::string header_x_test;                   // the X-Test request header, for client tests
  std::map<std::string, std::string> headers;  // every request header, names lower-cased
};

// A chat completion whose choices[0].message.content is `content`.
inline std::string ChatCompletionBody(const std::string& content, int prompt_tokens = 0, int completion_tokens = 0,
                                      const std::string& finish_reason = "stop") {
  nlohmann::json body = {
      {"id", "chatcmpl-test"},
      {"object", "chat.completion"},
      {"choices",
       {{{"index", 0}, {"message", {{"role", "assistant"}, {"content", content}}}, {"finish_reason", finish_reason}}}},
      {"usage",
       {{"prompt_tokens", prompt_tokens},
        {"completion_tokens", completion_tokens},
        {"total_tokens", prompt_tokens + completion_tokens}}},
  };
  return body.dump();
}

inline TeacherReply ChatReply(const std::string& content, int prompt_tokens = 0, int completion_tokens = 0) {
  return TeacherReply{200, ChatCompletionBody(content, prompt_tokens, completion_tokens), {}, false};
}

class TeacherServer {
 public:
  using Handler = std::function<TeacherReply(const TeacherRequest&)>;

  TeacherServer() {
    auto handle = [this](const httplib::Request& request, httplib::Response& response) { Serve(request, response); };
    server_.Post(".*", handle);
    server_.Get(".*", handle);
    server_.set_keep_alive_timeout(2);
    port_ = server_.bind_to_any_port("127.0.0.1");
    if (port_ <= 0) throw std::runtime_error("TeacherServer: cannot bind 127.0.0.1");
    // The socket listens from bind on; connections made before the thread runs wait in the backlog.
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    // stop() only works once listen_after_bind has marked the server running.
    while (!server_.is_running()) std::this_thread::yield();
  }

  ~TeacherServer() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      released_ = true;
    }
    released_cv_.notify_all();
    server_.stop();
    thread_.join();
  }

  int port() const { return port_; }
  std::string base_url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/v1"; }

  // Replies are used in order; when none is left, the default reply (a 500 unless set).
  void Push(TeacherReply reply) {
    std::lock_guard<std::mutex> lock(mutex_);
    replies_.push_back(std::move(reply));
  }
  void SetDefault(TeacherReply reply) {
    std::lock_guard<std::mutex> lock(mutex_);
    default_reply_ = std::move(reply);
  }
  // Takes precedence over Push/SetDefault.
  void SetHandler(Handler handler) {
    std::lock_guard<std::mutex> lock(mutex_);
    handler_ = std::move(handler);
  }

  std::vector<TeacherRequest> received() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return received_;
  }
  int max_in_flight() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return max_in_flight_;
  }

 private:
  void Serve(const httplib::Request& request, httplib::Response& response) {
    TeacherRequest seen;
    seen.method = request.method;
    seen.path = request.path;
    seen.body = request.body;
    seen.has_authorization = request.has_header("Authorization");
    seen.authorization = request.get_header_value("Authorization");
    seen.header_x_test = request.get_header_value("X-Test");
    seen.remote_port = request.remote_port;
    for (const auto& [name, value] : request.headers) {
      std::string lower = name;
      std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
      seen.headers[lower] = value;
    }
    TeacherReply reply;
    Handler handler;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      received_.push_back(seen);
      max_in_flight_ = std::max(max_in_flight_, ++in_flight_);
      handler = handler_;
      if (!handler) {
        if (!replies_.empty()) {
          reply = std::move(replies_.front());
          replies_.pop_front();
        } else {
          reply = default_reply_;
        }
      }
    }
    if (handler) reply = handler(seen);
    if (reply.hang) {
      std::unique_lock<std::mutex> lock(mutex_);
      released_cv_.wait_for(lock, std::chrono::seconds(30), [this] { return released_; });
    }
    response.status = reply.status;
    for (const auto& [name, value] : reply.headers) response.set_header(name, value);
    response.set_content(reply.body, "application/json");
    std::lock_guard<std::mutex> lock(mutex_);
    --in_flight_;
  }

  httplib::Server server_;
  int port_ = 0;
  std::thread thread_;
  mutable std::mutex mutex_;
  std::condition_variable released_cv_;
  bool released_ = false;
  std::deque<TeacherReply> replies_;
  TeacherReply default_reply_{500, R"({"error":{"message":"no reply scripted"}})", {}, false};
  Handler handler_;
  std::vector<TeacherRequest> received_;
  int in_flight_ = 0;
  int max_in_flight_ = 0;
};

}  // namespace rlj::testing
