// judge_bench_test.cc: the teacher stand-in of `rlj bench judge` (answers after its latency, keeps
// connections alive, holds many requests at once) and a small run of the bench itself (every request
// answered, no errors, the cap respected, cache hits counted). Throughput figures are not asserted here:
// the machine is shared; they are measured with `rlj bench judge`.
#include "bench/judge_load/judge_bench.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "bench/judge_load/fixed_latency_server.h"
#include "judge/http/http_client.h"
#include "test_util.h"

namespace rlj {
namespace {

TEST(FixedLatencyServer, AnswersAfterItsLatencyOnKeptAliveConnections) {
  FixedLatencyServer::Options options;
  options.latency = std::chrono::milliseconds(100);
  options.body = R"({"hello":"world"})";
  RLJ_ASSERT_OK_AND_ASSIGN(std::unique_ptr<FixedLatencyServer> server, FixedLatencyServer::Start(options));
  CurlHttpClient client;
  HttpRequest request;
  request.url = server->base_url() + "/chat/completions";
  request.body = std::string(100000, 'x');  // a body larger than one read
  for (int i = 0; i < 3; ++i) {
    const auto start = std::chrono::steady_clock::now();
    RLJ_ASSERT_OK_AND_ASSIGN(HttpResponse response, client.Send(request));
    EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(100));
    EXPECT_EQ(response.status, 200);
    EXPECT_EQ(response.body, R"({"hello":"world"})");
    EXPECT_EQ(response.Header("content-type"), "application/json");
  }
  EXPECT_EQ(server->requests(), 3);
  EXPECT_EQ(server->connections(), 1);  // one connection, reused
}

TEST(FixedLatencyServer, HoldsManyRequestsAtOnce) {
  FixedLatencyServer::Options options;
  options.latency = std::chrono::milliseconds(300);
  RLJ_ASSERT_OK_AND_ASSIGN(std::unique_ptr<FixedLatencyServer> server, FixedLatencyServer::Start(options));
  CurlHttpClient client;
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int i = 0; i < 64; ++i) {
    threads.emplace_back([&] {
      HttpRequest request;
      request.url = server->base_url() + "/x";
      request.body = "{}";
      auto response = client.Send(request);
      if (response.ok() && response->status == 200) ok.fetch_add(1);
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(ok.load(), 64);
  EXPECT_EQ(server->requests(), 64);
  // With one thread per request a 300 ms latency overlaps: far more than one is held at a time.
  EXPECT_GT(server->max_pending(), 1);
}

TEST(JudgeBench, SmallRunScoresEverythingUnderTheCap) {
  JudgeBenchOptions options;
  options.latency_ms = 5;
  options.concurrency = 16;
  options.requests = 400;
  options.batch = 16;
  options.cache_hits = true;
  options.repeats = 2;
  RLJ_ASSERT_OK_AND_ASSIGN(nlohmann::json result, RunJudgeBench(options));
  EXPECT_EQ(result["bench"], "judge");
  EXPECT_EQ(result["errors"], 0) << result.dump();
  EXPECT_EQ(result["server_requests"], 800);  // two timed passes on different samples
  ASSERT_EQ(result["efficiencies"].size(), 2u);
  EXPECT_LE(result["server_max_pending"].get<int64_t>(), 16);
  EXPECT_LE(result["server_connections"].get<int64_t>(), 32);
  EXPECT_GT(result["requests_per_s"].get<double>(), 0);
  EXPECT_DOUBLE_EQ(result["ideal_requests_per_s"].get<double>(), 16 / 0.005);
  EXPECT_NEAR(result["efficiency"].get<double>(),
              result["requests_per_s"].get<double>() / result["ideal_requests_per_s"].get<double>(), 1e-9);
  EXPECT_EQ(result["cache_hit_requests"], 400);
  EXPECT_EQ(result["cache_errors"], 0);
  EXPECT_EQ(result["cache_teacher_requests"], 0);  // hits never reach the teacher
  EXPECT_GT(result["cache_hits_per_s"].get<double>(), 0);
  EXPECT_EQ(result["callers"], 2);  // 2 x 16 queued in batches of 16
  // The untimed warm-up (concurrency requests by default) is not counted in the timed passes.
  EXPECT_EQ(result["warmup_requests"], 16);
  EXPECT_GT(result["cpu_seconds"].get<double>(), 0);
  // Every hit came from the in-memory layer: the timed pass stored the answers in both layers.
  EXPECT_EQ(result["cache_memory_hits"], 400);
}

TEST(JudgeBench, CacheHitsWithoutTheMemoryLayerReadTheFile) {
  JudgeBenchOptions options;
  options.latency_ms = 2;
  options.concurrency = 8;
  options.requests = 100;
  options.batch = 10;
  options.cache_hits = true;
  options.memory_cache_entries = 0;
  options.warmup_requests = 0;
  RLJ_ASSERT_OK_AND_ASSIGN(nlohmann::json result, RunJudgeBench(options));
  EXPECT_EQ(result["errors"], 0) << result.dump();
  EXPECT_EQ(result["server_requests"], 100);
  EXPECT_EQ(result["warmup_requests"], 0);
  EXPECT_EQ(result["cache_hit_requests"], 100);
  EXPECT_EQ(result["cache_memory_hits"], 0);
  EXPECT_EQ(result["cache_teacher_requests"], 0);
}

TEST(JudgeBench, BadOptionsAreErrors) {
  JudgeBenchOptions options;
  options.concurrency = 0;
  EXPECT_FALSE(RunJudgeBench(options).ok());
  options = JudgeBenchOptions();
  options.requests = 0;
  EXPECT_FALSE(RunJudgeBench(options).ok());
  options = JudgeBenchOptions();
  options.repeats = 0;
  EXPECT_FALSE(RunJudgeBench(options).ok());
  options = JudgeBenchOptions();
  options.warmup_requests = -2;
  EXPECT_FALSE(RunJudgeBench(options).ok());
}

}  // namespace
}  // namespace rlj
