// teacher_server_test.cc: `rlj teacher`'s HTTP API against a real server on 127.0.0.1:0 and a tiny real model:
// response shapes of every endpoint, logprobs equal to the model's log-softmax, echo offsets, concurrent HTTP
// requests batched into one forward pass, streaming, 400/404/413 error objects, loopback by default, bodies
// over the limit refused from their headers.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include "common/tokenizer/tokenizer_fingerprint.h"
#include "nlohmann/json.hpp"
#include "teacher_test_util.h"
#include "test_util.h"

namespace rlj::teacher {
namespace {

using nlohmann::json;
using rlj::testing::RankedIds;
using rlj::testing::ReferenceNextLogprobs;
using rlj::testing::TinyTeacher;

struct Reply {
  int status = 0;
  std::string content_type;
  std::string body;
  json parsed;
};

Reply Send(const TinyTeacher& t, const std::string& method, const std::string& path, const std::string& body = "") {
  httplib::Client client("http://" + t.server->address());
  client.set_read_timeout(std::chrono::seconds(120));
  httplib::Result result = method == "GET" ? client.Get(path) : client.Post(path, body, "application/json");
  Reply reply;
  if (!result) {
    ADD_FAILURE() << method << " " << path << ": " << httplib::to_string(result.error());
    return reply;
  }
  reply.status = result->status;
  reply.content_type = result->get_header_value("Content-Type");
  reply.body = result->body;
  reply.parsed = json::parse(result->body, nullptr, /*allow_exceptions=*/false);
  return reply;
}

Reply Post(const TinyTeacher& t, const std::string& path, const json& body) {
  return Send(t, "POST", path, body.dump());
}

// An OpenAI error object with this status, type and param.
::testing::AssertionResult IsApiError(const Reply& reply, int status, const std::string& param) {
  if (reply.status != status) return ::testing::AssertionFailure() << "status " << reply.status << ": " << reply.body;
  if (reply.content_type.find("application/json") == std::string::npos) {
    return ::testing::AssertionFailure() << "content type " << reply.content_type;
  }
  const json& error = reply.parsed.contains("error") ? reply.parsed["error"] : json();
  if (!error.is_object() || !error["message"].is_string() || error["message"].get<std::string>().empty() ||
      !error["type"].is_string() || !error.contains("param") || !error.contains("code")) {
    return ::testing::AssertionFailure() << "not an error object: " << reply.body;
  }
  if (param.empty() ? !error["param"].is_null() : error["param"] != param) {
    return ::testing::AssertionFailure() << "param " << error["param"] << ", expected " << param;
  }
  return ::testing::AssertionSuccess();
}

TEST(TeacherServer, ListensOnLoopbackByDefault) {
  TinyTeacher t;
  EXPECT_EQ(TeacherServerOptions().listen, "127.0.0.1:0");
  const std::string& address = t.server->address();
  EXPECT_EQ(address.rfind("127.0.0.1:", 0), 0u) << address;
  EXPECT_NE(address, "127.0.0.1:0");
  EXPECT_EQ(t.server->base_url(), "http://" + address + "/v1");
  // A second server cannot take the same port.
  TeacherServerOptions same;
  same.listen = address;
  EXPECT_FALSE(TeacherServer::Start(t.engine.get(), &t.tokenizer, same).ok());
}

TEST(TeacherServer, ModelsAndHealth) {
  TinyTeacher t;
  const Reply models = Send(t, "GET", "/v1/models");
  ASSERT_EQ(models.status, 200) << models.body;
  EXPECT_EQ(models.parsed["object"], "list");
  ASSERT_EQ(models.parsed["data"].size(), 1u);
  EXPECT_EQ(models.parsed["data"][0]["id"], "teacher");
  EXPECT_EQ(models.parsed["data"][0]["object"], "model");
  EXPECT_EQ(models.parsed["data"][0]["owned_by"], "rlj");
  EXPECT_EQ(models.parsed["data"][0]["max_model_len"], 48);
  // What a student compares its own tokenizer against before distilling.
  const json expected_tokenizer = {
      {"kind", "byte"}, {"vocab_size", 259}, {"fingerprint", TokenizerFingerprint(t.tokenizer)}};
  EXPECT_EQ(models.parsed["data"][0]["rlj_tokenizer"], expected_tokenizer);
  EXPECT_EQ(models.parsed["data"][0]["rlj_tokenizer"]["fingerprint"].get<std::string>().size(), 64u);
  const Reply one = Send(t, "GET", "/v1/models/teacher");
  ASSERT_EQ(one.status, 200);
  EXPECT_EQ(one.parsed["id"], "teacher");
  EXPECT_EQ(one.parsed["rlj_tokenizer"], expected_tokenizer);
  EXPECT_TRUE(IsApiError(Send(t, "GET", "/v1/models/gpt-4o"), 404, "model"));
  const Reply health = Send(t, "GET", "/health");
  ASSERT_EQ(health.status, 200);
  EXPECT_EQ(health.parsed["status"], "ok");
  EXPECT_EQ(health.parsed["forward_passes"], 0);
}

TEST(TeacherServer, ChatCompletionWithLogprobsMatchesTheModel) {
  TinyTeacher t;
  const Reply reply = Post(t, "/v1/chat/completions",
                           {{"model", "teacher"},
                            {"messages", {{{"role", "user"}, {"content", "12+34=46?"}}}},
                            {"max_tokens", 3},
                            {"temperature", 0},
                            {"logprobs", true},
                            {"top_logprobs", 4}});
  ASSERT_EQ(reply.status, 200) << reply.body;
  const json& body = reply.parsed;
  EXPECT_EQ(body["object"], "chat.completion");
  EXPECT_EQ(body["model"], "teacher");
  EXPECT_EQ(body["id"].get<std::string>().rfind("chatcmpl-", 0), 0u);
  EXPECT_TRUE(body["created"].is_number_integer());
  ASSERT_EQ(body["choices"].size(), 1u);
  const json& choice = body["choices"][0];
  EXPECT_EQ(choice["index"], 0);
  EXPECT_EQ(choice["message"]["role"], "assistant");
  const std::string finish = choice["finish_reason"];
  EXPECT_TRUE(finish == "stop" || finish == "length") << finish;

  // The prompt the server scored: <bos> + the user's content (the raw chat template).
  std::vector<int32_t> sequence = t.tokenizer.EncodePrompt("12+34=46?");
  const json& content = choice["logprobs"]["content"];
  ASSERT_TRUE(content.is_array());
  ASSERT_FALSE(content.empty());
  std::vector<int32_t> generated;
  auto text_of = [&](int32_t id) {
    const int32_t ids[] = {id};
    return t.tokenizer.Decode(ids).value();
  };
  for (size_t i = 0; i < content.size(); ++i) {
    const std::vector<double> reference = ReferenceNextLogprobs(t.model, sequence);
    const std::vector<int32_t> ranked = RankedIds(reference, 4);
    const json& entry = content[i];
    // Greedy: the token is the most likely one, with the model's log-prob; a byte token's bytes are its byte.
    EXPECT_EQ(entry["token"], text_of(ranked[0])) << "position " << i;
    EXPECT_NEAR(entry["logprob"].get<double>(), reference[ranked[0]], 1e-4);
    if (ranked[0] < 256) {
      EXPECT_EQ(entry["bytes"], json::array({ranked[0]}));
    }
    ASSERT_EQ(entry["top_logprobs"].size(), 4u);
    for (size_t k = 0; k < 4; ++k) {
      const json& alternative = entry["top_logprobs"][k];
      EXPECT_EQ(alternative["token"], text_of(ranked[k])) << "position " << i << " rank " << k;
      EXPECT_NEAR(alternative["logprob"].get<double>(), reference[ranked[k]], 1e-4);
      EXPECT_TRUE(alternative["bytes"].is_array());
    }
    generated.push_back(ranked[0]);
    sequence.push_back(ranked[0]);
  }
  EXPECT_EQ(choice["message"]["content"], t.tokenizer.Decode(generated).value());
  EXPECT_EQ(body["usage"]["prompt_tokens"], static_cast<int>(t.tokenizer.EncodePrompt("12+34=46?").size()));
  EXPECT_GE(body["usage"]["completion_tokens"].get<int>(), static_cast<int>(content.size()));
  EXPECT_EQ(body["usage"]["total_tokens"].get<int>(),
            body["usage"]["prompt_tokens"].get<int>() + body["usage"]["completion_tokens"].get<int>());

  // Without logprobs the field is null.
  const Reply plain =
      Post(t, "/v1/chat/completions",
           {{"model", "teacher"}, {"messages", {{{"role", "user"}, {"content", "hi"}}}}, {"max_tokens", 2}});
  ASSERT_EQ(plain.status, 200) << plain.body;
  EXPECT_TRUE(plain.parsed["choices"][0]["logprobs"].is_null());
}

TEST(TeacherServer, CompletionsEchoScoresThePromptWithOffsets) {
  TinyTeacher t;
  const Reply reply =
      Post(t, "/v1/completions",
           {{"model", "teacher"}, {"prompt", "5+5=10"}, {"max_tokens", 0}, {"echo", true}, {"logprobs", 2}});
  ASSERT_EQ(reply.status, 200) << reply.body;
  const json& body = reply.parsed;
  EXPECT_EQ(body["object"], "text_completion");
  EXPECT_EQ(body["id"].get<std::string>().rfind("cmpl-", 0), 0u);
  const json& choice = body["choices"][0];
  EXPECT_EQ(choice["text"], "5+5=10");
  const json& logprobs = choice["logprobs"];
  // <bos> (no text) and one token per byte; offsets into the text.
  EXPECT_EQ(logprobs["tokens"], json({"", "5", "+", "5", "=", "1", "0"}));
  EXPECT_EQ(logprobs["text_offset"], json({0, 0, 1, 2, 3, 4, 5}));
  EXPECT_TRUE(logprobs["token_logprobs"][0].is_null());
  EXPECT_TRUE(logprobs["top_logprobs"][0].is_null());
  const std::vector<int32_t> ids = t.tokenizer.EncodePrompt("5+5=10");
  for (size_t i = 1; i < ids.size(); ++i) {
    const std::vector<double> reference =
        ReferenceNextLogprobs(t.model, std::vector<int32_t>(ids.begin(), ids.begin() + static_cast<long>(i)));
    EXPECT_NEAR(logprobs["token_logprobs"][i].get<double>(), reference[ids[i]], 1e-4) << "token " << i;
    // The two most likely tokens, plus the token itself when it is not among them.
    const json& top = logprobs["top_logprobs"][i];
    // (Alternatives whose text is the same, such as two halves of characters, share one key.)
    EXPECT_GE(top.size(), 1u);
    EXPECT_LE(top.size(), 3u);
    const std::string token = logprobs["tokens"][i];
    ASSERT_TRUE(top.contains(token));
    EXPECT_NEAR(top[token].get<double>(), reference[ids[i]], 1e-4);
  }
  EXPECT_EQ(body["usage"]["prompt_tokens"], 7);
  EXPECT_EQ(body["usage"]["completion_tokens"], 0);

  // Echo with a completion: the text continues after the prompt and the offsets continue with it.
  const Reply more = Post(
      t, "/v1/completions",
      {{"model", "teacher"}, {"prompt", "ab"}, {"max_tokens", 2}, {"temperature", 0}, {"echo", true}, {"logprobs", 0}});
  ASSERT_EQ(more.status, 200) << more.body;
  const json& more_choice = more.parsed["choices"][0];
  const std::string more_text = more_choice["text"];
  EXPECT_EQ(more_text.rfind("ab", 0), 0u);
  const json& offsets = more_choice["logprobs"]["text_offset"];
  const int generated = more.parsed["usage"]["completion_tokens"];
  EXPECT_EQ(more_choice["logprobs"]["tokens"].size(),
            3u + (more_choice["finish_reason"] == "stop" ? generated - 1 : generated));
  EXPECT_EQ(offsets[0], 0);
  EXPECT_EQ(offsets[1], 0);
  EXPECT_EQ(offsets[2], 1);
  if (offsets.size() > 3) {
    EXPECT_EQ(offsets[3], 2);
  }
}

TEST(TeacherServer, CompletionsTakeSeveralPromptsAndTokenIds) {
  TinyTeacher t;
  const Reply reply =
      Post(t, "/v1/completions",
           {{"model", "teacher"}, {"prompt", {"1+1=", "2+2="}}, {"max_tokens", 2}, {"temperature", 0}, {"n", 2}});
  ASSERT_EQ(reply.status, 200) << reply.body;
  const json& choices = reply.parsed["choices"];
  ASSERT_EQ(choices.size(), 4u);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(choices[i]["index"], i);
  EXPECT_EQ(choices[0]["text"], choices[1]["text"]);      // greedy: both choices of a prompt agree
  EXPECT_EQ(reply.parsed["usage"]["prompt_tokens"], 10);  // 5 + 5 (prompts counted once, not per choice)

  const std::vector<int32_t> ids = t.tokenizer.EncodePrompt("1+1=");
  const Reply by_ids =
      Post(t, "/v1/completions", {{"model", "teacher"}, {"prompt", ids}, {"max_tokens", 2}, {"temperature", 0}});
  ASSERT_EQ(by_ids.status, 200) << by_ids.body;
  EXPECT_EQ(by_ids.parsed["choices"][0]["text"], choices[0]["text"]);
}

TEST(TeacherServer, ConcurrentHttpRequestsShareOneForwardPass) {
  BatchEngineOptions options;
  options.max_batch = 8;
  options.batch_wait = std::chrono::minutes(10);  // the batch runs when the 8th request arrives, not on a timer
  TinyTeacher t(options);
  std::vector<std::future<Reply>> replies;
  for (int i = 0; i < 8; ++i) {
    replies.push_back(std::async(std::launch::async, [&t, i] {
      return Post(
          t, "/v1/chat/completions",
          {{"model", "teacher"},
           {"messages", {{{"role", "user"}, {"content", std::to_string(i) + "+1=" + std::to_string(i + 1) + "?"}}}},
           {"max_tokens", 1},
           {"temperature", 0},
           {"logprobs", true},
           {"top_logprobs", 2}});
    }));
  }
  for (auto& reply : replies) {
    const Reply r = reply.get();
    EXPECT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(r.parsed["choices"][0]["logprobs"]["content"].size(),
              r.parsed["choices"][0]["finish_reason"] == "stop" ? 0u : 1u);
  }
  const Reply health = Send(t, "GET", "/health");
  EXPECT_EQ(health.parsed["requests"], 8);
  EXPECT_EQ(health.parsed["batches"], 1);
  EXPECT_EQ(health.parsed["forward_passes"], 1);  // eight prompts, one prefill, nothing to decode after it
}

TEST(TeacherServer, StreamedChatCompletion) {
  TinyTeacher t;
  const json request = {{"model", "teacher"}, {"messages", {{{"role", "user"}, {"content", "ab"}}}},
                        {"max_tokens", 4},    {"temperature", 0},
                        {"stream", true},     {"stream_options", {{"include_usage", true}}}};
  const Reply streamed = Post(t, "/v1/chat/completions", request);
  ASSERT_EQ(streamed.status, 200) << streamed.body;
  EXPECT_NE(streamed.content_type.find("text/event-stream"), std::string::npos);
  json unstreamed_request = request;
  unstreamed_request.erase("stream");
  unstreamed_request.erase("stream_options");
  const Reply whole = Post(t, "/v1/chat/completions", unstreamed_request);
  ASSERT_EQ(whole.status, 200);

  std::string content;
  std::string finish;
  bool done = false;
  bool usage = false;
  size_t start = 0;
  while (start < streamed.body.size()) {
    const size_t end = streamed.body.find("\n\n", start);
    ASSERT_NE(end, std::string::npos) << "an event without its blank line";
    const std::string event = streamed.body.substr(start, end - start);
    start = end + 2;
    ASSERT_EQ(event.rfind("data: ", 0), 0u) << event;
    const std::string data = event.substr(6);
    if (data == "[DONE]") {
      done = true;
      continue;
    }
    const json chunk = json::parse(data);
    EXPECT_EQ(chunk["object"], "chat.completion.chunk");
    if (chunk["choices"].empty()) {
      usage = true;
      EXPECT_EQ(chunk["usage"], whole.parsed["usage"]);
      continue;
    }
    const json& delta = chunk["choices"][0]["delta"];
    if (delta.contains("content")) content += delta["content"].get<std::string>();
    if (!chunk["choices"][0]["finish_reason"].is_null()) finish = chunk["choices"][0]["finish_reason"];
  }
  EXPECT_TRUE(done);
  EXPECT_TRUE(usage);
  EXPECT_EQ(content, whole.parsed["choices"][0]["message"]["content"]);
  EXPECT_EQ(finish, whole.parsed["choices"][0]["finish_reason"]);
}

TEST(TeacherServer, BadRequestsGetApiErrors) {
  TeacherServerOptions options;
  options.max_body_bytes = 4096;
  TinyTeacher t({}, /*serve=*/true, options);
  const json user = {{{"role", "user"}, {"content", "x"}}};
  EXPECT_TRUE(IsApiError(Send(t, "POST", "/v1/chat/completions", "{\"model\": "), 400, ""));
  EXPECT_TRUE(IsApiError(Send(t, "POST", "/v1/chat/completions", "[1, 2]"), 400, ""));
  EXPECT_TRUE(IsApiError(Post(t, "/v1/chat/completions", {{"model", "teacher"}}), 400, "messages"));
  EXPECT_TRUE(IsApiError(Post(t, "/v1/chat/completions", {{"messages", user}}), 400, "model"));
  EXPECT_TRUE(
      IsApiError(Post(t, "/v1/chat/completions", {{"model", "teacher"}, {"messages", user}, {"temperature", 5}}), 400,
                 "temperature"));
  EXPECT_TRUE(
      IsApiError(Post(t, "/v1/chat/completions", {{"model", "teacher"}, {"messages", user}, {"temperature", "hot"}}),
                 400, "temperature"));
  EXPECT_TRUE(
      IsApiError(Post(t, "/v1/chat/completions", {{"model", "teacher"}, {"messages", user}, {"top_logprobs", 3}}), 400,
                 "top_logprobs"));
  EXPECT_TRUE(IsApiError(
      Post(t, "/v1/chat/completions", {{"model", "teacher"}, {"messages", {{{"role", "wizard"}, {"content", "x"}}}}}),
      400, "messages[0].role"));
  EXPECT_TRUE(IsApiError(Post(t, "/v1/chat/completions", {{"model", "teacher"}, {"messages", user}, {"max_tokens", 0}}),
                         400, "max_tokens"));
  EXPECT_TRUE(IsApiError(
      Post(t, "/v1/chat/completions", {{"model", "teacher"}, {"messages", user}, {"stop", {"a", "b", "c", "d", "e"}}}),
      400, "stop"));
  EXPECT_TRUE(
      IsApiError(Post(t, "/v1/chat/completions", {{"model", "teacher"}, {"messages", user}, {"frequency_penalty", 1}}),
                 400, "frequency_penalty"));
  // Longer than the context: 400 from the engine.
  const Reply too_long =
      Post(t, "/v1/completions", {{"model", "teacher"}, {"prompt", std::string(60, 'z')}, {"max_tokens", 1}});
  EXPECT_TRUE(IsApiError(too_long, 400, ""));
  EXPECT_NE(too_long.parsed["error"]["message"].get<std::string>().find("maximum context length is 48"),
            std::string::npos);
  // Unknown model: 404 model_not_found.
  const Reply unknown = Post(t, "/v1/chat/completions", {{"model", "gpt-4o"}, {"messages", user}});
  EXPECT_TRUE(IsApiError(unknown, 404, "model"));
  EXPECT_EQ(unknown.parsed["error"]["code"], "model_not_found");
  // Too large a body: 413, before any parsing.
  const Reply huge =
      Post(t, "/v1/chat/completions",
           {{"model", "teacher"}, {"messages", {{{"role", "user"}, {"content", std::string(8000, 'x')}}}}});
  EXPECT_TRUE(IsApiError(huge, 413, ""));
  EXPECT_NE(huge.parsed["error"]["message"].get<std::string>().find("4096"), std::string::npos);
  // No such route.
  EXPECT_TRUE(IsApiError(Send(t, "GET", "/v1/embeddings"), 404, ""));
  // Still serving after all that.
  EXPECT_EQ(Post(t, "/v1/chat/completions", {{"model", "teacher"}, {"messages", user}, {"max_tokens", 1}}).status, 200);
}

// Sends `request` as raw bytes on a fresh connection and returns the status code of the answer (0 if none
// came within a minute).
int RawRequestStatus(const std::string& address, const std::string& request) {
  const size_t colon = address.rfind(':');
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return 0;
  sockaddr_in peer{};
  peer.sin_family = AF_INET;
  peer.sin_port = htons(static_cast<uint16_t>(std::stoi(address.substr(colon + 1))));
  inet_pton(AF_INET, address.substr(0, colon).c_str(), &peer.sin_addr);
  timeval timeout{60, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  int status = 0;
  if (connect(fd, reinterpret_cast<sockaddr*>(&peer), sizeof(peer)) == 0 &&
      send(fd, request.data(), request.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(request.size())) {
    std::string answer;
    char buffer[4096];
    while (answer.find("\r\n") == std::string::npos) {
      const ssize_t n = recv(fd, buffer, sizeof(buffer), 0);
      if (n <= 0) break;
      answer.append(buffer, static_cast<size_t>(n));
    }
    if (answer.rfind("HTTP/1.1 ", 0) == 0 && answer.size() >= 12) status = std::stoi(answer.substr(9, 3));
  }
  close(fd);
  return status;
}

TEST(TeacherServer, OversizedAndUnsizedBodiesAreRefusedFromTheHeadersAndServingGoesOn) {
  TeacherServerOptions options;
  options.max_body_bytes = 4096;
  TinyTeacher t({}, /*serve=*/true, options);
  const std::string& address = t.server->address();
  // A declared length of a terabyte with no body sent: refused from the headers alone (the server neither
  // waits for nor buffers the body).
  EXPECT_EQ(RawRequestStatus(address,
                             "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                             "Content-Length: 1000000000000\r\n\r\n"),
            413);
  // A chunked body (whose size the headers do not tell) and a body that runs until the connection closes:
  // refused before any body byte is read (411), never buffered.
  std::string chunked =
      "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
      "Transfer-Encoding: chunked\r\n\r\n";
  for (int i = 0; i < 3; ++i) chunked += "800\r\n" + std::string(2048, 'x') + "\r\n";  // 3 x 2 KiB
  chunked += "0\r\n\r\n";
  EXPECT_EQ(RawRequestStatus(address, chunked), 411);
  EXPECT_EQ(RawRequestStatus(address,
                             "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\r\n" +
                                 std::string(8192, 'x')),
            411);
  // One byte under the limit is parsed (and refused as a request, not for its size).
  const std::string body = "{\"model\": \"teacher\", \"pad\": \"" + std::string(4096 - 32, ' ') + "\"}";
  ASSERT_EQ(body.size(), 4095u);
  EXPECT_EQ(RawRequestStatus(address,
                             "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                             "Content-Length: 4095\r\nConnection: close\r\n\r\n" +
                                 body),
            400);
  // Still serving.
  const json user = {{{"role", "user"}, {"content", "x"}}};
  EXPECT_EQ(Post(t, "/v1/chat/completions", {{"model", "teacher"}, {"messages", user}, {"max_tokens", 1}}).status, 200);
  EXPECT_EQ(Send(t, "GET", "/health").status, 200);
}

}  // namespace
}  // namespace rlj::teacher
