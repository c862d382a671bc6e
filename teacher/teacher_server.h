// teacher_server.h: `rlj teacher`'s HTTP side: the OpenAI API (/v1/chat/completions, /v1/completions,
// /v1/models) and /health over cpp-httplib, in front of the batch engine. Loopback by default, request bodies
// capped (413), bad JSON and bad fields answered with the API's error object (400), unknown models 404.
#pragma once

#include <cstddef>
#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace rlj {
class Tokenizer;
}  // namespace rlj

namespace rlj::teacher {

class BatchEngine;

struct TeacherServerOptions {
  std::string listen = "127.0.0.1:0";  // host:port; port 0 picks a free one
  std::string served_model_name = "teacher";
  std::string chat_template;        // see ChatTemplate::RenderChat; "" joins the message contents
  int http_threads = 256;           // connections served at once
  size_t max_body_bytes = 1 << 20;  // larger bodies: 413
};

class TeacherServer {
 public:
  // Binds and starts serving. `engine` and `tokenizer` are not owned and must outlive the server. A taken
  // port or a bad address is an error naming it.
  static absl::StatusOr<std::unique_ptr<TeacherServer>> Start(BatchEngine* engine, const Tokenizer* tokenizer,
                                                              const TeacherServerOptions& options);
  ~TeacherServer();  // Stop()

  TeacherServer(const TeacherServer&) = delete;
  TeacherServer& operator=(const TeacherServer&) = delete;

  // host:port actually bound (the port resolved when 0 was asked for).
  const std::string& address() const;
  // "http://host:port/v1", what an OpenAI client takes as its base URL.
  std::string base_url() const;

  // Stops accepting connections and waits for the handlers in flight.
  void Stop();

 private:
  struct State;
  explicit TeacherServer(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

}  // namespace rlj::teacher
