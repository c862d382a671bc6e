// judge_client_test.cc: the actor's Judge.Score retry policy against real in-process gRPC servers on
// 127.0.0.1:0. Under 12x the server's thread quota every call gets its verdicts exactly once and the clients
// see backpressure (RESOURCE_EXHAUSTED) instead of losing groups; a judge paused by a teacher outage is
// waited out (on_outage pause) or given up on after the retry budget (mask); other errors are not retried.
#include "actor/judge_client.h"

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <map>
#include <mutex>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/grpc_util.h"
#include "rlj/v1/judge.grpc.pb.h"
#include "test_util.h"

namespace rlj {
namespace {

using ::rlj::testing::FailsWith;

v1::ScoreRequest MakeRequest(const std::string& group, int n) {
  v1::ScoreRequest request;
  for (int i = 0; i < n; ++i) {
    v1::Sample* sample = request.add_samples();
    sample->set_id(absl::StrCat(group, "/", i));
    sample->set_completion(std::to_string(i));
  }
  return request;
}

// A judge whose handlers hold their thread until the gate opens (a slow teacher), counting every sample it
// scores and the most handlers running at once.
class GatedJudge final : public v1::Judge::Service {
 public:
  grpc::Status Score(grpc::ServerContext* /*context*/, const v1::ScoreRequest* request,
                     v1::ScoreResponse* response) override {
    std::unique_lock<std::mutex> lock(mutex_);
    max_running_ = std::max(max_running_, ++running_);
    open_cv_.wait(lock, [this] { return open_; });
    for (const v1::Sample& sample : request->samples()) {
      ++scored_[sample.id()];
      v1::Verdict* verdict = response->add_verdicts();
      verdict->set_sample_id(sample.id());
      verdict->set_reward(static_cast<double>(sample.completion().size()));
    }
    --running_;
    return grpc::Status::OK;
  }
  void Open() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      open_ = true;
    }
    open_cv_.notify_all();
  }
  std::map<std::string, int> scored() {
    std::lock_guard<std::mutex> lock(mutex_);
    return scored_;
  }
  int max_running() {
    std::lock_guard<std::mutex> lock(mutex_);
    return max_running_;
  }

 private:
  std::mutex mutex_;
  std::condition_variable open_cv_;
  bool open_ = false;
  int running_ = 0;
  int max_running_ = 0;
  std::map<std::string, int> scored_;
};

struct Served {
  std::unique_ptr<grpc::Server> server;
  std::shared_ptr<v1::Judge::StubInterface> stub;
};

Served Serve(grpc::Service* service, int threads) {
  ServerOptions options;
  options.listen = "127.0.0.1:0";
  options.max_concurrent_rpcs = threads;
  auto running = StartServer(options, {service});
  EXPECT_TRUE(running.ok()) << running.status();
  if (!running.ok()) return {};
  return Served{std::move(running->server), v1::Judge::NewStub(MakeChannel(running->address))};
}

JudgeClientOptions FastRetries() {
  JudgeClientOptions options;
  options.call_timeout = std::chrono::seconds(120);
  options.backoff = BackoffPolicy{std::chrono::milliseconds(5), std::chrono::milliseconds(50)};
  return options;
}

TEST(JudgeClient, TwelveTimesTheThreadQuotaLosesNothingAndFeelsBackpressure) {
  constexpr int kThreads = 2;   // judge.threads
  constexpr int kClients = 24;  // 12x
  constexpr int kCallsPerClient = 4;
  constexpr int kSamplesPerCall = 3;
  GatedJudge judge;
  Served served = Serve(&judge, kThreads);
  ASSERT_NE(served.stub, nullptr);
  JudgeClientOptions options = FastRetries();
  options.retry_budget = std::chrono::milliseconds(1);  // backpressure must not count against it
  JudgeClient client(served.stub, options);

  std::atomic<int> answered{0};
  std::atomic<int> wrong{0};
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&, c] {
      for (int k = 0; k < kCallsPerClient; ++k) {
        const v1::ScoreRequest request = MakeRequest(absl::StrCat("c", c, "-k", k), kSamplesPerCall);
        absl::StatusOr<v1::ScoreResponse> response = client.Score(request);
        if (!response.ok() || response->verdicts_size() != kSamplesPerCall ||
            response->verdicts(2).sample_id() != request.samples(2).id() || response->verdicts(2).reward() != 1) {
          ++wrong;
        }
        ++answered;
      }
    });
  }
  // The gate stays shut until the clients have been turned away at least once: the server is saturated.
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::minutes(5);
  while (client.stats().backpressure.load() == 0 && std::chrono::steady_clock::now() < give_up) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));  // polling interval
  }
  EXPECT_GT(client.stats().backpressure.load(), 0) << "no RESOURCE_EXHAUSTED seen";
  judge.Open();
  for (std::thread& thread : clients) thread.join();

  EXPECT_EQ(answered.load(), kClients * kCallsPerClient);
  EXPECT_EQ(wrong.load(), 0);
  const std::map<std::string, int> scored = judge.scored();
  EXPECT_EQ(scored.size(), static_cast<size_t>(kClients * kCallsPerClient * kSamplesPerCall));
  for (const auto& [id, times] : scored) EXPECT_EQ(times, 1) << id << " scored " << times << " times";
  const JudgeClientStats& stats = client.stats();
  EXPECT_EQ(stats.calls.load(), kClients * kCallsPerClient);
  EXPECT_EQ(stats.failed.load(), 0);
  EXPECT_EQ(stats.attempts.load(), stats.calls.load() + stats.retries.load());
  EXPECT_EQ(stats.retries.load(), stats.backpressure.load());
  // The quota bounds the handlers running at once (judge.threads plus gRPC's two pollers), whatever the load.
  EXPECT_GE(judge.max_running(), 1);
  EXPECT_LE(judge.max_running(), kThreads + 2);
  served.server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
}

// A judge waiting out a teacher outage for its first `paused_calls` answers, then scoring.
class PausingJudge final : public v1::Judge::Service {
 public:
  explicit PausingJudge(int paused_calls) : paused_calls_(paused_calls) {}
  grpc::Status Score(grpc::ServerContext* /*context*/, const v1::ScoreRequest* request,
                     v1::ScoreResponse* response) override {
    const int call = calls_++;
    if (client != nullptr) saw_paused_flag_ += client->judge_paused() ? 1 : 0;
    if (call < paused_calls_) {
      v1::ScoreDeferred deferred;  // the typed signal; the text is for people only
      deferred.set_backend("openai");
      deferred.set_outage_seconds(3);
      deferred.set_last_error("refused");
      return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                          "Judge.Score paused (judge.on_outage: pause): the openai backend's teacher is unreachable "
                          "since 2026-11-22T15:00:00Z (3 s); keep the samples and retry. Last error: refused",
                          deferred.SerializeAsString());
    }
    for (const v1::Sample& sample : request->samples()) response->add_verdicts()->set_sample_id(sample.id());
    return grpc::Status::OK;
  }
  int calls() const { return calls_.load(); }
  int saw_paused_flag() const { return saw_paused_flag_.load(); }
  JudgeClient* client = nullptr;

 private:
  const int paused_calls_;
  std::atomic<int> calls_{0};
  std::atomic<int> saw_paused_flag_{0};
};

TEST(JudgeClient, WaitsOutAPausedJudgeWithOnOutagePause) {
  PausingJudge judge(5);
  Served served = Serve(&judge, 2);
  JudgeClientOptions options = FastRetries();
  options.retry_budget = std::chrono::milliseconds(1);  // would give up at once without wait_out_outages
  options.wait_out_outages = true;
  JudgeClient client(served.stub, options);
  judge.client = &client;
  RLJ_ASSERT_OK_AND_ASSIGN(v1::ScoreResponse response, client.Score(MakeRequest("g", 2)));
  EXPECT_EQ(response.verdicts_size(), 2);
  EXPECT_EQ(judge.calls(), 6);
  EXPECT_EQ(client.stats().paused.load(), 5);
  EXPECT_EQ(client.stats().retries.load(), 5);
  EXPECT_EQ(client.stats().failed.load(), 0);
  // From the second call on, the actor knew the judge was paused (it leases no prompts meanwhile).
  EXPECT_EQ(judge.saw_paused_flag(), 5);
  EXPECT_FALSE(client.judge_paused()) << "cleared once the judge answers";
  served.server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
}

// What decides is the typed detail, not the text: an UNAVAILABLE that says "Judge.Score paused" without a
// v1::ScoreDeferred is an unreachable judge (retried within the budget), not a pause.
class TextOnlyPausedJudge final : public v1::Judge::Service {
 public:
  grpc::Status Score(grpc::ServerContext* /*context*/, const v1::ScoreRequest* /*request*/,
                     v1::ScoreResponse* /*response*/) override {
    return grpc::Status(grpc::StatusCode::UNAVAILABLE, "Judge.Score paused (judge.on_outage: pause)");
  }
};

TEST(JudgeClient, APauseIsTheTypedDetailNotTheText) {
  TextOnlyPausedJudge judge;
  Served served = Serve(&judge, 2);
  JudgeClientOptions options = FastRetries();
  options.retry_budget = std::chrono::milliseconds(200);
  JudgeClient client(served.stub, options);
  absl::StatusOr<v1::ScoreResponse> response = client.Score(MakeRequest("g", 2));
  EXPECT_FALSE(response.ok());
  EXPECT_EQ(client.stats().paused.load(), 0) << "counted as a pause from its text";
  EXPECT_FALSE(client.judge_paused());
  EXPECT_GT(client.stats().unavailable.load(), 0);
  served.server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
}

TEST(JudgeClient, GivesUpOnAnUnavailableJudgeAfterTheRetryBudgetInMaskMode) {
  PausingJudge judge(1000000);
  Served served = Serve(&judge, 2);
  JudgeClientOptions options = FastRetries();
  options.retry_budget = std::chrono::milliseconds(200);
  JudgeClient client(served.stub, options);
  absl::StatusOr<v1::ScoreResponse> response = client.Score(MakeRequest("g", 2));
  EXPECT_TRUE(FailsWith(response, absl::StatusCode::kUnavailable, "Judge.Score paused"));
  EXPECT_GE(judge.calls(), 2);
  EXPECT_EQ(client.stats().failed.load(), 1);
  EXPECT_FALSE(client.judge_paused());
  served.server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
}

TEST(JudgeClient, GivesUpOnAJudgeThatIsNotThereAfterTheRetryBudget) {
  // Nothing listens on this address (a server started and shut down).
  GatedJudge judge;
  Served served = Serve(&judge, 1);
  served.server->Shutdown(std::chrono::system_clock::now());
  JudgeClientOptions options = FastRetries();
  options.call_timeout = std::chrono::milliseconds(500);
  options.retry_budget = std::chrono::milliseconds(300);
  JudgeClient client(served.stub, options);
  absl::StatusOr<v1::ScoreResponse> response = client.Score(MakeRequest("g", 1));
  ASSERT_FALSE(response.ok());
  EXPECT_TRUE(response.status().code() == absl::StatusCode::kUnavailable ||
              response.status().code() == absl::StatusCode::kDeadlineExceeded)
      << response.status();
  EXPECT_GE(client.stats().unavailable.load(), 1);
  EXPECT_EQ(client.stats().backpressure.load(), 0);
}

// A judge answering with a code no retry can fix, or with the wrong number of verdicts.
class BrokenJudge final : public v1::Judge::Service {
 public:
  grpc::Status Score(grpc::ServerContext* /*context*/, const v1::ScoreRequest* request,
                     v1::ScoreResponse* response) override {
    ++calls;
    if (request->samples(0).id() == "bad/0") return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "no samples");
    response->add_verdicts()->set_sample_id(request->samples(0).id());  // one verdict, whatever the count
    return grpc::Status::OK;
  }
  std::atomic<int> calls{0};
};

TEST(JudgeClient, NonRetryableErrorsAndShortAnswersFailAtOnce) {
  BrokenJudge judge;
  Served served = Serve(&judge, 2);
  JudgeClient client(served.stub, FastRetries());
  EXPECT_TRUE(FailsWith(client.Score(MakeRequest("bad", 1)), absl::StatusCode::kInvalidArgument, "no samples"));
  EXPECT_EQ(judge.calls.load(), 1);
  EXPECT_TRUE(FailsWith(client.Score(MakeRequest("short", 3)), absl::StatusCode::kDataLoss,
                        "returned 1 verdicts for 3 samples"));
  EXPECT_EQ(judge.calls.load(), 2);
  EXPECT_EQ(client.stats().retries.load(), 0);
  EXPECT_EQ(client.stats().failed.load(), 2);
  served.server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
}

}  // namespace
}  // namespace rlj
