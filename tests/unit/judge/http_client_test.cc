// http_client_test.cc: CurlHttpClient against a real HTTP server on 127.0.0.1: status, body and
// lower-cased headers, request headers and methods, connection reuse, concurrent use, and transport errors
// (timeout, refused connection) whose messages name the URL but never a header.
#include "judge/http/http_client.h"

#include <gtest/gtest.h>

#include <thread>

#include "teacher_server.h"
#include "test_util.h"

namespace rlj {
namespace {

using ::rlj::testing::TeacherReply;
using ::rlj::testing::TeacherRequest;
using ::rlj::testing::TeacherServer;

constexpr char kSecret[] = "secret-header-value-5521";

HttpRequest Post(const std::string& url, const std::string& body) {
  HttpRequest request;
  request.url = url;
  request.body = body;
  request.headers = {{"X-Test", kSecret}, {"Content-Type", "application/json"}};
  request.timeout = std::chrono::seconds(10);
  return request;
}

TEST(CurlHttpClient, StatusBodyAndLowerCasedHeaders) {
  TeacherServer server;
  server.Push(TeacherReply{201, R"({"ok":true})", {{"X-Request-ID", "abc-1"}, {"Retry-After", "3"}}, false});
  CurlHttpClient client;
  RLJ_ASSERT_OK_AND_ASSIGN(HttpResponse response, client.Send(Post(server.base_url() + "/things", "{\"a\":1}")));
  EXPECT_EQ(response.status, 201);
  EXPECT_EQ(response.body, R"({"ok":true})");
  EXPECT_EQ(response.Header("x-request-id"), "abc-1");
  EXPECT_EQ(response.Header("retry-after"), "3");
  EXPECT_EQ(response.Header("content-type"), "application/json");
  EXPECT_EQ(response.Header("X-Request-ID"), "");  // lookups are by the lower-cased name
  const std::vector<TeacherRequest> received = server.received();
  ASSERT_EQ(received.size(), 1u);
  EXPECT_EQ(received[0].method, "POST");
  EXPECT_EQ(received[0].path, "/v1/things");
  EXPECT_EQ(received[0].body, "{\"a\":1}");
  EXPECT_EQ(received[0].header_x_test, kSecret);
}

TEST(CurlHttpClient, GetAndErrorStatusesAreResponses) {
  TeacherServer server;
  server.Push(TeacherReply{404, "no such thing", {}, false});
  CurlHttpClient client;
  HttpRequest request;
  request.method = "GET";
  request.url = server.base_url() + "/models";
  RLJ_ASSERT_OK_AND_ASSIGN(HttpResponse response, client.Send(request));
  EXPECT_EQ(response.status, 404);
  EXPECT_EQ(response.body, "no such thing");
  EXPECT_EQ(server.received().at(0).method, "GET");
}

TEST(CurlHttpClient, SequentialRequestsReuseTheConnection) {
  TeacherServer server;
  server.SetDefault(TeacherReply{200, "{}", {}, false});
  CurlHttpClient client;
  for (int i = 0; i < 3; ++i) RLJ_ASSERT_OK(client.Send(Post(server.base_url() + "/x", "{}")));
  const std::vector<TeacherRequest> received = server.received();
  ASSERT_EQ(received.size(), 3u);
  EXPECT_EQ(received[1].remote_port, received[0].remote_port);  // same client socket: one connection
  EXPECT_EQ(received[2].remote_port, received[0].remote_port);
}

TEST(CurlHttpClient, ConcurrentSendsFromManyThreads) {
  TeacherServer server;
  server.SetDefault(TeacherReply{200, "pong", {}, false});
  CurlHttpClient client;
  std::atomic<int> good{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 6; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 5; ++i) {
        auto response = client.Send(Post(server.base_url() + "/ping", "ping"));
        if (response.ok() && response->status == 200 && response->body == "pong") ++good;
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(good.load(), 30);
  EXPECT_EQ(server.received().size(), 30u);
}

TEST(CurlHttpClient, TimeoutIsDeadlineExceededNamingTheUrlNotTheHeaders) {
  TeacherServer server;
  server.SetDefault(TeacherReply{200, "late", {}, /*hang=*/true});
  CurlHttpClient client;
  HttpRequest request = Post(server.base_url() + "/slow", "{}");
  request.timeout = std::chrono::milliseconds(200);
  auto response = client.Send(request);
  ASSERT_FALSE(response.ok());
  EXPECT_EQ(response.status().code(), absl::StatusCode::kDeadlineExceeded) << response.status();
  const std::string message(response.status().message());
  EXPECT_NE(message.find(server.base_url() + "/slow"), std::string::npos) << message;
  EXPECT_EQ(message.find(kSecret), std::string::npos) << message;
}

TEST(CurlHttpClient, RefusedConnectionIsUnavailable) {
  std::string url;
  {
    TeacherServer gone;
    url = gone.base_url() + "/x";
  }
  CurlHttpClient client;
  auto response = client.Send(Post(url, "{}"));
  ASSERT_FALSE(response.ok());
  EXPECT_EQ(response.status().code(), absl::StatusCode::kUnavailable) << response.status();
  EXPECT_NE(std::string(response.status().message()).find(url), std::string::npos);
  EXPECT_EQ(std::string(response.status().message()).find(kSecret), std::string::npos);
}

TEST(CurlHttpClient, MalformedUrlIsInvalidArgument) {
  CurlHttpClient client;
  auto response = client.Send(Post("ftp://127.0.0.1/x", "{}"));
  ASSERT_FALSE(response.ok());
  EXPECT_EQ(response.status().code(), absl::StatusCode::kInvalidArgument) << response.status();
}

}  // namespace
}  // namespace rlj
