// teacher_server.cc: routes of the teacher's OpenAI-compatible HTTP server; JSON stays at this edge.
#include "teacher/teacher_server.h"

#include <httplib.h>
#include <sys/socket.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <future>
#include <random>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/log.h"
#include "common/status.h"
#include "common/tokenizer/chat_template.h"
#include "common/tokenizer/tokenizer.h"
#include "common/tokenizer/tokenizer_fingerprint.h"
#include "nlohmann/json.hpp"
#include "teacher/batch_engine.h"
#include "teacher/openai_protocol.h"
#include "teacher/token_text.h"

namespace rlj::teacher {
namespace {

using nlohmann::json;

constexpr char kJson[] = "application/json";
constexpr char kEventStream[] = "text/event-stream";

void Reply(httplib::Response& response, int status, const json& body) {
  response.status = status;
  response.set_content(body.dump(-1, ' ', false, json::error_handler_t::replace), kJson);
}

void ReplyError(httplib::Response& response, const ApiError& error) {
  Reply(response, error.http_status, ErrorBody(error));
}

std::string RandomId(const char* prefix) {
  thread_local std::mt19937_64 rng(std::random_device{}());
  return absl::StrFormat("%s%016x%08x", prefix, rng(), static_cast<uint32_t>(rng()));
}

int64_t UnixSeconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// Splits "host:port" ("[::1]:80" too); the port must be a number in [0, 65535].
absl::Status SplitAddress(const std::string& address, std::string* host, int* port) {
  const size_t colon = address.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == address.size()) {
    return absl::InvalidArgumentError(absl::StrCat("listen address '", address, "': expected HOST:PORT"));
  }
  const std::string port_text = address.substr(colon + 1);
  if (port_text.size() > 5 || port_text.find_first_not_of("0123456789") != std::string::npos ||
      std::stoi(port_text) > 65535) {
    return absl::InvalidArgumentError(absl::StrCat("listen address '", address, "': bad port '", port_text, "'"));
  }
  *host = address.substr(0, colon);
  if (host->size() >= 2 && host->front() == '[' && host->back() == ']') *host = host->substr(1, host->size() - 2);
  *port = std::stoi(port_text);
  return absl::OkStatus();
}

}  // namespace

struct TeacherServer::State {
  BatchEngine* engine = nullptr;
  const Tokenizer* tokenizer = nullptr;
  TeacherServerOptions options;
  ChatTemplate chat_template;
  std::unique_ptr<TokenTexts> texts;
  json tokenizer_info;  // /v1/models' rlj_tokenizer, hashed once: a large vocabulary takes milliseconds
  httplib::Server http;
  std::thread thread;
  std::string address;
  std::atomic<bool> listen_returned{false};
  socket_t listen_socket = INVALID_SOCKET;  // the last socket httplib prepared; after a bind, the bound one
  bool stopped = false;

  // The body as JSON, or false with the 400 already written.
  bool ParseBody(const httplib::Request& request, httplib::Response& response, json* body) {
    try {
      *body = json::parse(request.body);
      return true;
    } catch (const json::parse_error& e) {
      ReplyError(response, ApiError{400, absl::StrCat("could not parse the JSON body: ", e.what()),
                                    "invalid_request_error", "", ""});
      return false;
    }
  }

  // False with the 404 written when `model` is not the one served.
  bool CheckModel(const std::string& model, httplib::Response& response) {
    if (model == options.served_model_name) return true;
    ReplyError(response, ApiError{404,
                                  absl::StrCat("The model '", model, "' does not exist; this server serves '",
                                               options.served_model_name, "'"),
                                  "invalid_request_error", "model", "model_not_found"});
    return false;
  }

  void Chat(const httplib::Request& http_request, httplib::Response& response) {
    json body;
    if (!ParseBody(http_request, response, &body)) return;
    ChatRequest request;
    if (auto error = ParseChatRequest(body, &request)) return ReplyError(response, *error);
    if (!CheckModel(request.model, response)) return;
    GenerationRequest generation{texts->EncodePrompt(chat_template.RenderChat(request.messages)), request.params};
    const auto prompt_tokens = static_cast<int64_t>(generation.prompt.size());
    if (generation.params.max_tokens < 0) {
      generation.params.max_tokens = static_cast<int>(std::max<int64_t>(0, engine->max_context() - prompt_tokens));
      if (generation.params.max_tokens == 0) {
        return ReplyError(response,
                          ApiError{400,
                                   absl::StrCat("this model's maximum context length is ", engine->max_context(),
                                                " tokens; the messages take ", prompt_tokens),
                                   "invalid_request_error", "messages", "context_length_exceeded"});
      }
    }
    absl::StatusOr<GenerationResult> result = engine->Generate(generation);
    if (!result.ok()) return ReplyError(response, ApiErrorFromStatus(result.status()));
    const ResponseHeader header{RandomId("chatcmpl-"), UnixSeconds(), options.served_model_name};
    if (request.stream) {
      auto events =
          ChatCompletionStream(header, *result, generation.params, prompt_tokens, request.stream_usage, *texts);
      if (!events.ok()) return ReplyError(response, ApiErrorFromStatus(events.status()));
      response.status = 200;
      response.set_content(*events, kEventStream);
      return;
    }
    auto reply = ChatCompletionBody(header, *result, generation.params, prompt_tokens, *texts);
    if (!reply.ok()) return ReplyError(response, ApiErrorFromStatus(reply.status()));
    Reply(response, 200, *reply);
  }

  void Complete(const httplib::Request& http_request, httplib::Response& response) {
    json body;
    if (!ParseBody(http_request, response, &body)) return;
    CompletionRequest request;
    if (auto error = ParseCompletionRequest(body, &request)) return ReplyError(response, *error);
    if (!CheckModel(request.model, response)) return;
    // Every prompt is queued before any is waited for, so they share batches.
    std::vector<CompletionOutcome> outcomes(request.prompts.size());
    std::vector<std::future<absl::StatusOr<GenerationResult>>> futures;
    for (size_t p = 0; p < request.prompts.size(); ++p) {
      const CompletionPrompt& prompt = request.prompts[p];
      CompletionOutcome& outcome = outcomes[p];
      if (prompt.is_ids) {
        outcome.prompt_ids = prompt.ids;
        auto text = tokenizer->Decode(prompt.ids);
        if (!text.ok()) {
          return ReplyError(response,
                            ApiError{400, std::string(text.status().message()), "invalid_request_error", "prompt", ""});
        }
        outcome.prompt_text = *std::move(text);
      } else {
        outcome.prompt_ids = texts->EncodePrompt(prompt.text);
        outcome.prompt_text = prompt.text;
      }
      futures.push_back(engine->Submit(GenerationRequest{outcome.prompt_ids, request.params}));
    }
    absl::Status failure;
    for (size_t p = 0; p < futures.size(); ++p) {
      absl::StatusOr<GenerationResult> result = futures[p].get();
      if (!result.ok()) {
        if (failure.ok()) failure = result.status();
        continue;
      }
      outcomes[p].result = *std::move(result);
    }
    if (!failure.ok()) return ReplyError(response, ApiErrorFromStatus(failure));
    const ResponseHeader header{RandomId("cmpl-"), UnixSeconds(), options.served_model_name};
    if (request.stream) {
      auto events = CompletionStream(header, outcomes, request, *texts);
      if (!events.ok()) return ReplyError(response, ApiErrorFromStatus(events.status()));
      response.status = 200;
      response.set_content(*events, kEventStream);
      return;
    }
    auto reply = CompletionBody(header, outcomes, request, *texts);
    if (!reply.ok()) return ReplyError(response, ApiErrorFromStatus(reply.status()));
    Reply(response, 200, *reply);
  }

  json ModelObject() const {
    return json{{"id", options.served_model_name},
                {"object", "model"},
                {"created", 0},
                {"owned_by", "rlj"},
                {"max_model_len", engine->max_context()},
                {"rlj_tokenizer", tokenizer_info}};
  }

  json Health() const {
    const BatchEngineStats stats = engine->stats();
    return json{{"status", "ok"},
                {"model", options.served_model_name},
                {"max_context", engine->max_context()},
                {"requests", stats.requests},
                {"batches", stats.batches},
                {"rows", stats.rows},
                {"computed_rows", stats.computed_rows},
                {"forward_passes", stats.forward_passes},
                {"prompt_tokens", stats.prompt_tokens},
                {"generated_tokens", stats.generated_tokens}};
  }
};

TeacherServer::TeacherServer(std::unique_ptr<State> state) : state_(std::move(state)) {}

TeacherServer::~TeacherServer() { Stop(); }

absl::StatusOr<std::unique_ptr<TeacherServer>> TeacherServer::Start(BatchEngine* engine, const Tokenizer* tokenizer,
                                                                    const TeacherServerOptions& options) {
  if (engine == nullptr || tokenizer == nullptr)
    return absl::InvalidArgumentError("teacher server: no engine or tokenizer");
  if (options.http_threads < 1) return absl::InvalidArgumentError("teacher.http_threads must be >= 1");
  RLJ_ASSIGN_OR_RETURN(ChatTemplate chat_template, ChatTemplate::Parse(options.chat_template, "teacher chat_template"));
  std::string host;
  int port = 0;
  RLJ_RETURN_IF_ERROR(SplitAddress(options.listen, &host, &port));

  auto state = std::make_unique<State>();
  state->engine = engine;
  state->tokenizer = tokenizer;
  state->options = options;
  state->chat_template = std::move(chat_template);
  state->texts = std::make_unique<TokenTexts>(*tokenizer);
  // A student distilled from this teacher checks its vocabulary against the fingerprint.
  state->tokenizer_info = json{{"kind", TokenizerKind(*tokenizer)},
                               {"vocab_size", tokenizer->vocab_size()},
                               {"fingerprint", TokenizerFingerprint(*tokenizer)}};
  State* s = state.get();
  httplib::Server& http = state->http;
  const size_t threads = static_cast<size_t>(options.http_threads);
  http.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  http.set_payload_max_length(options.max_body_bytes);
  http.set_keep_alive_max_count(100000);
  http.set_keep_alive_timeout(5);
  // SO_REUSEADDR only: a second server on a taken port must fail rather than share it (SO_REUSEPORT).
  http.set_socket_options([s](socket_t sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
    s->listen_socket = sock;
  });

  http.Post("/v1/chat/completions", [s](const httplib::Request& q, httplib::Response& r) { s->Chat(q, r); });
  http.Post("/v1/completions", [s](const httplib::Request& q, httplib::Response& r) { s->Complete(q, r); });
  http.Get("/v1/models", [s](const httplib::Request&, httplib::Response& r) {
    Reply(r, 200, json{{"object", "list"}, {"data", json::array({s->ModelObject()})}});
  });
  http.Get("/v1/models/(.+)", [s](const httplib::Request& q, httplib::Response& r) {
    if (s->CheckModel(q.matches[1].str(), r)) Reply(r, 200, s->ModelObject());
  });
  http.Get("/health", [s](const httplib::Request&, httplib::Response& r) { Reply(r, 200, s->Health()); });
  http.set_exception_handler([](const httplib::Request&, httplib::Response& r, std::exception_ptr error) {
    std::string what = "unknown error";
    try {
      if (error) std::rethrow_exception(error);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    RLJ_EVERY(10, log::Error("teacher: a request failed: {}", what));
    ReplyError(r, ApiError{500, absl::StrCat("internal error: ", what), "server_error", "", ""});
  });
  const size_t max_body = options.max_body_bytes;
  // httplib 0.11 enforces the body limit only on a Content-Length: a chunked body, or one that runs until the
  // connection closes, would be read into memory whole, and an oversized Content-Length is read through
  // before the 413. Decide from the headers, before any body byte is read, and close the connection.
  http.set_pre_routing_handler([max_body](const httplib::Request& q, httplib::Response& r) {
    const bool chunked = q.has_header("Transfer-Encoding");
    const bool has_length = q.has_header("Content-Length");
    if (!chunked && (has_length || (q.method != "POST" && q.method != "PUT" && q.method != "PATCH"))) {
      uint64_t length = 0;
      if (!has_length || absl::SimpleAtoi(q.get_header_value("Content-Length"), &length)) {
        if (length <= max_body) return httplib::Server::HandlerResponse::Unhandled;
        r.set_header("Connection", "close");
        ReplyError(r,
                   ApiError{413, absl::StrCat("the request body exceeds this server's limit of ", max_body, " bytes"),
                            "invalid_request_error", "", ""});
        return httplib::Server::HandlerResponse::Handled;
      }
    }
    r.set_header("Connection", "close");
    ReplyError(r, ApiError{411, "a request body needs a valid Content-Length header (chunked bodies are not accepted)",
                           "invalid_request_error", "", ""});
    return httplib::Server::HandlerResponse::Handled;
  });
  // Errors httplib answers itself (413, 404, 400) get the API's error object too.
  http.set_error_handler(
      httplib::Server::HandlerWithResponse([max_body](const httplib::Request& q, httplib::Response& r) {
        if (!r.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
        ApiError error{r.status, "", r.status >= 500 ? "server_error" : "invalid_request_error", "", ""};
        if (r.status == 413) {
          error.message = absl::StrCat("the request body exceeds this server's limit of ", max_body, " bytes");
        } else if (r.status == 404) {
          error.message = absl::StrCat("no route for ", q.method, " ", q.path);
        } else {
          error.message = absl::StrCat("HTTP ", r.status);
        }
        ReplyError(r, error);
        return httplib::Server::HandlerResponse::Handled;
      }));

  int bound = port;
  if (port == 0) {
    bound = http.bind_to_any_port(host);
    if (bound <= 0) return absl::UnavailableError(absl::StrCat("teacher: cannot listen on ", options.listen));
  } else if (!http.bind_to_port(host, port)) {
    return absl::UnavailableError(
        absl::StrCat("teacher: cannot listen on ", options.listen, " (taken, or a bad host)"));
  }
  // cpp-httplib 0.11 listens with a backlog of 5 (compiled into the distribution's library). A judge opens
  // one connection per sample at once; past the backlog the kernel drops them and those clients wait for
  // their timeout with nothing received. listen() again on the bound socket raises the backlog.
  if (s->listen_socket != INVALID_SOCKET && ::listen(s->listen_socket, SOMAXCONN) != 0) {
    log::Warn("teacher: could not raise the listen backlog on {}: errno {}", options.listen, errno);
  }
  state->address = absl::StrCat(host.find(':') != std::string::npos ? absl::StrCat("[", host, "]") : host, ":", bound);
  state->thread = std::thread([s] {
    s->http.listen_after_bind();
    s->listen_returned = true;
  });
  // stop() only takes effect once listen_after_bind has marked the server running.
  while (!http.is_running() && !s->listen_returned) std::this_thread::yield();
  if (!http.is_running()) {
    state->thread.join();
    return absl::UnavailableError(absl::StrCat("teacher: the HTTP server on ", state->address, " did not start"));
  }
  log::Info("teacher: serving '{}' on http://{}/v1", options.served_model_name, state->address);
  return std::unique_ptr<TeacherServer>(new TeacherServer(std::move(state)));
}

const std::string& TeacherServer::address() const { return state_->address; }

std::string TeacherServer::base_url() const { return absl::StrCat("http://", state_->address, "/v1"); }

void TeacherServer::Stop() {
  if (state_->stopped) return;
  state_->stopped = true;
  state_->http.stop();
  if (state_->thread.joinable()) state_->thread.join();
}

}  // namespace rlj::teacher
