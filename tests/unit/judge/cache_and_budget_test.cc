// cache_and_budget_test.cc: the persistent judge cache (keys, a real SQLite file reopened, hits marked in
// verdicts and skipping the teacher, only usable answers stored), token and cost accounting per backend and
// per step, and the budget: once spent, new samples fail with kind "budget" and Judge.Status says so.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>

#include "common/grpc_util.h"
#include "common/reward_log.h"
#include "judge/backend_registry.h"
#include "judge/judge_cache.h"
#include "judge/judge_server.h"
#include "judge/judge_service.h"
#include "judge/usage_ledger.h"
#include "teacher_server.h"
#include "test_util.h"

namespace rlj {
namespace {

using ::rlj::testing::ChatReply;
using ::rlj::testing::ScratchDir;
using ::rlj::testing::TeacherReply;
using ::rlj::testing::TeacherServer;

v1::Sample MakeSample(const std::string& id, const std::string& completion, int64_t policy_version = 0) {
  v1::Sample sample;
  sample.set_id(id);
  sample.set_prompt("What is 2+2?");
  sample.set_completion(completion);
  sample.set_reference("4");
  sample.set_policy_version(policy_version);
  return sample;
}

v1::JudgeConfig RubricConfig(const TeacherServer& server) {
  v1::JudgeConfig config;
  config.set_backend("openai");
  v1::OpenAIJudgeConfig* openai = config.mutable_openai();
  openai->set_base_url(server.base_url());
  openai->set_model("grader");
  openai->set_api_key_env("");
  openai->set_rubric("Q: {prompt}\nA: {completion}\nRef: {reference}\nReply {\"score\": 0-10}.");
  openai->set_max_retries(0);
  return config;
}

std::unique_ptr<JudgeBackend> Make(const v1::JudgeConfig& config, JudgeCache* cache, UsageLedger* ledger) {
  JudgeBackendDeps deps;
  deps.cache = cache;
  deps.ledger = ledger;
  auto backend = MakeJudgeBackend(config, deps);
  EXPECT_TRUE(backend.ok()) << backend.status();
  return backend.ok() ? std::move(backend).value() : nullptr;
}

TEST(JudgeCache, KeysAreLengthPrefixedHashes) {
  const std::string key = JudgeCache::Key({"ab", "c"});
  EXPECT_EQ(key.size(), 32u);
  EXPECT_EQ(key, JudgeCache::Key({"ab", "c"}));
  EXPECT_NE(key, JudgeCache::Key({"a", "bc"}));
  EXPECT_NE(key, JudgeCache::Key({"abc"}));
}

TEST(JudgeCache, StoresReplacesAndPersistsAcrossReopening) {
  ScratchDir scratch;
  const std::string path = scratch.file("sub/dir/cache.sqlite");  // the directory is created
  const std::string k1 = JudgeCache::Key({"one"}), k2 = JudgeCache::Key({"two"}), k3 = JudgeCache::Key({"three"});
  {
    RLJ_ASSERT_OK_AND_ASSIGN(std::unique_ptr<JudgeCache> cache, JudgeCache::Open(path));
    RLJ_ASSERT_OK(cache->PutMany({{k1, "answer one"}, {k2, "first"}}, "openai"));
    RLJ_ASSERT_OK(cache->PutMany({{k2, "second"}}, "openai"));
    RLJ_ASSERT_OK_AND_ASSIGN(auto found, cache->GetMany({k1, k2, k3}));
    ASSERT_EQ(found.size(), 3u);
    EXPECT_EQ(found[0], "answer one");
    EXPECT_EQ(found[1], "second");
    EXPECT_EQ(found[2], std::nullopt);
    EXPECT_EQ(cache->hits(), 2);
    EXPECT_EQ(cache->misses(), 1);
  }
  RLJ_ASSERT_OK_AND_ASSIGN(std::unique_ptr<JudgeCache> reopened, JudgeCache::Open(path));
  RLJ_ASSERT_OK_AND_ASSIGN(auto found, reopened->GetMany({k2}));
  EXPECT_EQ(found[0], "second");
}

TEST(JudgeCache, UnopenablePathIsAnError) {
  ScratchDir scratch;
  const std::string file = scratch.file("plain");
  { std::ofstream(file) << "x"; }
  EXPECT_FALSE(JudgeCache::Open(file + "/cache.sqlite").ok());  // a file where a directory must be
}

TEST(JudgeCacheInBackend, HitsSkipTheTeacherAreMarkedAndSurviveARestart) {
  ScratchDir scratch;
  TeacherServer server;
  server.SetDefault(ChatReply(R"({"score": 8})", 100, 10));
  const v1::JudgeConfig config = RubricConfig(server);
  {
    RLJ_ASSERT_OK_AND_ASSIGN(std::unique_ptr<JudgeCache> cache, JudgeCache::Open(scratch.file("cache.sqlite")));
    auto backend = Make(config, cache.get(), nullptr);
    ASSERT_NE(backend, nullptr);
    std::vector<Judgement> first = backend->Score({MakeSample("a", "4")});
    ASSERT_FALSE(first[0].verdict.has_error()) << first[0].verdict.error().message();
    EXPECT_FALSE(first[0].verdict.cache_hit());
    EXPECT_EQ(first[0].verdict.tokens_in(), 100);
    EXPECT_EQ(server.received().size(), 1u);

    // The same sample (another id) is answered from the cache; a different completion is not.
    std::vector<Judgement> second = backend->Score({MakeSample("b", "4"), MakeSample("c", "5")});
    ASSERT_EQ(second.size(), 2u);
    EXPECT_TRUE(second[0].verdict.cache_hit());
    EXPECT_NEAR(second[0].verdict.reward(), 0.8, 1e-12);
    EXPECT_EQ(second[0].verdict.tokens_in(), 0);  // nothing was spent on it
    EXPECT_EQ(second[0].verdict.cost_usd(), 0);
    EXPECT_FALSE(second[1].verdict.cache_hit());
    EXPECT_EQ(server.received().size(), 2u);
  }
  // A new judge on the same file: no teacher call for what is stored.
  RLJ_ASSERT_OK_AND_ASSIGN(std::unique_ptr<JudgeCache> cache, JudgeCache::Open(scratch.file("cache.sqlite")));
  auto backend = Make(config, cache.get(), nullptr);
  std::vector<Judgement> again = backend->Score({MakeSample("d", "4"), MakeSample("e", "5")});
  EXPECT_TRUE(again[0].verdict.cache_hit());
  EXPECT_TRUE(again[1].verdict.cache_hit());
  EXPECT_EQ(server.received().size(), 2u);

  // Another model, another temperature, another rubric: all different requests, all misses.
  for (int change = 0; change < 3; ++change) {
    v1::JudgeConfig other = config;
    if (change == 0) other.mutable_openai()->set_model("grader-2");
    if (change == 1) other.mutable_openai()->set_temperature(0.7);
    if (change == 2) other.mutable_openai()->set_rubric(config.openai().rubric() + " Be strict.");
    auto changed = Make(other, cache.get(), nullptr);
    EXPECT_FALSE(changed->Score({MakeSample("f", "4")})[0].verdict.cache_hit()) << change;
  }
  EXPECT_EQ(server.received().size(), 5u);

  // judge.openai.cache: false bypasses it.
  v1::JudgeConfig uncached = config;
  uncached.mutable_openai()->set_cache(false);
  auto bypass = Make(uncached, cache.get(), nullptr);
  EXPECT_FALSE(bypass->Score({MakeSample("g", "4")})[0].verdict.cache_hit());
  EXPECT_EQ(server.received().size(), 6u);
}

TEST(JudgeCacheInBackend, SecondOpinionsBypassTheLookup) {
  ScratchDir scratch;
  TeacherServer server;
  server.SetDefault(ChatReply(R"({"score": 8})", 100, 10));
  RLJ_ASSERT_OK_AND_ASSIGN(std::unique_ptr<JudgeCache> cache, JudgeCache::Open(scratch.file("cache.sqlite")));
  auto backend = Make(RubricConfig(server), cache.get(), nullptr);
  ASSERT_NE(backend, nullptr);
  ASSERT_FALSE(backend->Score({MakeSample("a", "4")})[0].verdict.has_error());
  EXPECT_TRUE(backend->Score({MakeSample("b", "4")})[0].verdict.cache_hit());
  EXPECT_EQ(server.received().size(), 1u);
  // The same sample asked for a second opinion (self-consistency, rescoring) goes to the teacher again.
  v1::Sample again = MakeSample("c", "4");
  AskForSecondOpinion(&again);
  const std::vector<Judgement> second = backend->Score({again});
  ASSERT_FALSE(second[0].verdict.has_error()) << second[0].verdict.error().message();
  EXPECT_FALSE(second[0].verdict.cache_hit());
  EXPECT_EQ(server.received().size(), 2u);
}

TEST(JudgeCacheInBackend, UnusableAnswersAreNotStored) {
  ScratchDir scratch;
  TeacherServer server;
  server.Push(ChatReply("I think it is fine."));  // no score: parse error
  server.Push(ChatReply(R"({"score": 42})"));     // out of range
  server.Push(ChatReply(R"({"score": 6})"));
  RLJ_ASSERT_OK_AND_ASSIGN(std::unique_ptr<JudgeCache> cache, JudgeCache::Open(scratch.file("cache.sqlite")));
  auto backend = Make(RubricConfig(server), cache.get(), nullptr);
  EXPECT_EQ(backend->Score({MakeSample("a", "4")})[0].verdict.error().kind(), "parse");
  EXPECT_EQ(backend->Score({MakeSample("a", "4")})[0].verdict.error().kind(), "out_of_range");
  const v1::Verdict good = backend->Score({MakeSample("a", "4")})[0].verdict;
  EXPECT_FALSE(good.cache_hit());
  EXPECT_NEAR(good.reward(), 0.6, 1e-12);
  EXPECT_TRUE(backend->Score({MakeSample("a", "4")})[0].verdict.cache_hit());
  EXPECT_EQ(server.received().size(), 3u);
}

TEST(JudgeCacheInBackend, HitsAreMarkedInTheRewardLog) {
  ScratchDir scratch;
  TeacherServer server;
  server.SetDefault(ChatReply(R"({"score": 9})", 40, 4));
  v1::RunConfig run;
  *run.mutable_judge() = RubricConfig(server);
  run.mutable_judge()->mutable_openai()->set_price_input_per_1k(1.0);
  run.mutable_judge()->mutable_cache()->set_path(scratch.file("shared/cache.sqlite"));
  JudgeServerOptions options;
  options.listen = "127.0.0.1:0";
  options.run_dir = scratch.file("run");
  JudgeServer judge(run, options);
  RLJ_ASSERT_OK_AND_ASSIGN(const std::string address, judge.Start());
  auto stub = v1::Judge::NewStub(MakeChannel(address));
  for (const char* id : {"first", "second"}) {
    v1::ScoreRequest request;
    *request.add_samples() = MakeSample(id, "4");
    v1::ScoreResponse response;
    grpc::ClientContext context;
    SetDeadline(&context, std::chrono::seconds(30));
    ASSERT_TRUE(stub->Score(&context, request, &response).ok());
    EXPECT_EQ(response.verdicts(0).cache_hit(), std::string(id) == "second");
  }
  judge.Stop();
  EXPECT_EQ(server.received().size(), 1u);
  RLJ_ASSERT_OK_AND_ASSIGN(std::vector<RewardLogRow> rows, ReadRewardLog(options.run_dir + "/reward_log"));
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].sample_id, "first");
  EXPECT_FALSE(rows[0].cache_hit);
  EXPECT_EQ(rows[0].tokens_in, 40);
  EXPECT_DOUBLE_EQ(rows[0].cost_usd, 0.04);
  EXPECT_EQ(rows[1].sample_id, "second");
  EXPECT_TRUE(rows[1].cache_hit);
  EXPECT_EQ(rows[1].tokens_in, 0);
  EXPECT_DOUBLE_EQ(rows[1].cost_usd, 0);
  EXPECT_NEAR(*rows[1].reward, 0.9, 1e-12);
  EXPECT_TRUE(std::filesystem::exists(scratch.file("shared/cache.sqlite")));  // judge.cache.path honoured
}

TEST(UsageLedger, CostArithmeticAndBudgetFlag) {
  EXPECT_DOUBLE_EQ(CostUsd(1000, 250, 0.5, 2.0), 0.5 + 0.5);
  EXPECT_DOUBLE_EQ(CostUsd(0, 0, 9, 9), 0);
  UsageLedger ledger(/*budget_usd=*/1.0);
  ledger.RecordCall("openai", "openai", "m", {1000, 0, 0.6, false, false});
  EXPECT_FALSE(ledger.BudgetExhausted());
  ledger.RecordCall("openai", "openai", "m", {0, 0, 0, true, false});  // a cache hit
  ledger.RecordCall("other", "anthropic", "c", {0, 200, 0.4, false, true});
  EXPECT_TRUE(ledger.BudgetExhausted());  // 1.0 >= 1.0
  EXPECT_DOUBLE_EQ(ledger.spent_usd(), 1.0);
  v1::JudgeStatus status;
  ledger.Fill(&status);
  EXPECT_TRUE(status.budget_exhausted());
  EXPECT_DOUBLE_EQ(status.budget_usd(), 1.0);
  EXPECT_EQ(status.tokens_in(), 1000);
  EXPECT_EQ(status.tokens_out(), 200);
  EXPECT_EQ(status.cache_hits(), 1);
  ASSERT_EQ(status.backends_size(), 2);
  EXPECT_EQ(status.backends(0).name(), "openai");
  EXPECT_EQ(status.backends(0).calls(), 1);
  EXPECT_EQ(status.backends(0).cache_hits(), 1);
  EXPECT_EQ(status.backends(1).kind(), "anthropic");
  EXPECT_EQ(status.backends(1).failures(), 1);

  UsageLedger unlimited(0);
  unlimited.RecordCall("x", "openai", "m", {0, 0, 1e9, false, false});
  EXPECT_FALSE(unlimited.BudgetExhausted());
}

TEST(UsageLedger, StepsKeepTheMostRecent) {
  UsageLedger ledger;
  for (int version = 0; version < 5; ++version) {
    v1::Verdict verdict;
    verdict.set_tokens_in(10 * version);
    verdict.set_cost_usd(0.5);
    ledger.RecordVerdict(version, verdict);
    ledger.RecordVerdict(version, verdict);
  }
  v1::JudgeStatus status;
  ledger.Fill(&status, /*max_steps=*/3);
  ASSERT_EQ(status.steps_size(), 3);
  EXPECT_EQ(status.steps(0).policy_version(), 2);
  EXPECT_EQ(status.steps(2).policy_version(), 4);
  EXPECT_EQ(status.steps(2).samples(), 2);
  EXPECT_EQ(status.steps(2).tokens_in(), 80);
  EXPECT_DOUBLE_EQ(status.steps(2).cost_usd(), 1.0);
}

// $0.5 per 1000 prompt tokens, $2 per 1000 completion tokens; each answer uses 1000 in and 250 out: $1.
class BudgetTest : public ::testing::Test {
 protected:
  BudgetTest() {
    server_.SetDefault(ChatReply(R"({"score": 10})", 1000, 250));
    config_ = RubricConfig(server_);
    config_.mutable_openai()->set_price_input_per_1k(0.5);
    config_.mutable_openai()->set_price_output_per_1k(2.0);
    config_.set_budget_usd(2.5);
  }
  TeacherServer server_;
  v1::JudgeConfig config_;
};

TEST_F(BudgetTest, SpendIsBookedPerBackendAndStepAndTheBudgetStopsScoring) {
  auto ledger = std::make_shared<UsageLedger>(config_.budget_usd());
  auto backend = Make(config_, nullptr, ledger.get());
  ASSERT_NE(backend, nullptr);
  JudgeService service(std::move(backend), nullptr, ledger);

  v1::ScoreRequest request;
  *request.add_samples() = MakeSample("v1-a", "4", /*policy_version=*/1);
  RLJ_ASSERT_OK_AND_ASSIGN(v1::ScoreResponse first, service.ScoreSamples(request));
  ASSERT_FALSE(first.verdicts(0).has_error()) << first.verdicts(0).error().message();
  EXPECT_DOUBLE_EQ(first.verdicts(0).cost_usd(), 1.0);
  EXPECT_EQ(first.verdicts(0).tokens_in(), 1000);
  EXPECT_EQ(first.verdicts(0).tokens_out(), 250);
  EXPECT_FALSE(service.StatusNow().budget_exhausted());

  request.Clear();
  *request.add_samples() = MakeSample("v2-a", "4", 2);
  *request.add_samples() = MakeSample("v2-b", "four", 2);
  RLJ_ASSERT_OK_AND_ASSIGN(v1::ScoreResponse second, service.ScoreSamples(request));
  EXPECT_FALSE(second.verdicts(0).has_error());  // the budget is checked before a call: these were sent
  EXPECT_FALSE(second.verdicts(1).has_error());
  EXPECT_EQ(server_.received().size(), 3u);

  // $3 >= $2.5: new samples fail with kind "budget", and nothing more is sent.
  request.Clear();
  *request.add_samples() = MakeSample("v3-a", "4", 3);
  RLJ_ASSERT_OK_AND_ASSIGN(v1::ScoreResponse third, service.ScoreSamples(request));
  ASSERT_TRUE(third.verdicts(0).has_error());
  EXPECT_EQ(third.verdicts(0).error().kind(), "budget");
  EXPECT_EQ(third.verdicts(0).error().code(), static_cast<int>(absl::StatusCode::kResourceExhausted));
  EXPECT_NE(third.verdicts(0).error().message().find("budget_usd"), std::string::npos);
  EXPECT_EQ(server_.received().size(), 3u);

  const v1::JudgeStatus status = service.StatusNow();
  EXPECT_TRUE(status.budget_exhausted());
  EXPECT_DOUBLE_EQ(status.cost_usd(), 3.0);
  EXPECT_DOUBLE_EQ(status.budget_usd(), 2.5);
  EXPECT_EQ(status.tokens_in(), 3000);
  EXPECT_EQ(status.tokens_out(), 750);
  EXPECT_EQ(status.errors_by_kind().at("budget"), 1);
  const v1::JudgeBackendStatus* openai = nullptr;
  for (const auto& entry : status.backends()) {
    if (entry.name() == "openai") openai = &entry;
  }
  ASSERT_NE(openai, nullptr);
  EXPECT_EQ(openai->calls(), 3);
  EXPECT_DOUBLE_EQ(openai->cost_usd(), 3.0);
  EXPECT_EQ(openai->http_requests(), 3);
  EXPECT_EQ(openai->circuit(), "closed");
  // Per step (policy version).
  std::map<int64_t, v1::JudgeStepUsage> steps;
  for (const auto& step : status.steps()) steps[step.policy_version()] = step;
  EXPECT_DOUBLE_EQ(steps.at(1).cost_usd(), 1.0);
  EXPECT_EQ(steps.at(2).samples(), 2);
  EXPECT_DOUBLE_EQ(steps.at(2).cost_usd(), 2.0);
  EXPECT_EQ(steps.at(2).tokens_out(), 500);
}

TEST_F(BudgetTest, JudgeStatusRpcReportsTheSpentBudget) {
  ScratchDir scratch;
  v1::RunConfig run;
  *run.mutable_judge() = config_;
  run.mutable_judge()->set_budget_usd(0.5);
  JudgeServerOptions options;
  options.listen = "127.0.0.1:0";
  options.run_dir = scratch.file("run");
  JudgeServer server(run, options);
  RLJ_ASSERT_OK_AND_ASSIGN(const std::string address, server.Start());
  auto stub = v1::Judge::NewStub(MakeChannel(address));

  v1::ScoreRequest request;
  *request.add_samples() = MakeSample("a", "4");
  *request.add_samples() = MakeSample("b", "5");
  for (int call = 0; call < 2; ++call) {
    v1::ScoreResponse response;
    grpc::ClientContext context;
    SetDeadline(&context, std::chrono::seconds(30));
    ASSERT_TRUE(stub->Score(&context, request, &response).ok());
    for (const v1::Verdict& verdict : response.verdicts()) {
      if (call == 0) {
        EXPECT_FALSE(verdict.has_error()) << verdict.error().message();
      } else {
        EXPECT_EQ(verdict.error().kind(), "budget");
      }
    }
  }
  v1::JudgeStatus status;
  grpc::ClientContext context;
  SetDeadline(&context, std::chrono::seconds(30));
  ASSERT_TRUE(stub->Status(&context, v1::JudgeStatusRequest(), &status).ok());
  EXPECT_TRUE(status.budget_exhausted());
  EXPECT_DOUBLE_EQ(status.cost_usd(), 2.0);
  EXPECT_EQ(status.samples(), 4);
  EXPECT_EQ(status.errors(), 2);
  EXPECT_EQ(status.backend(), "openai");
  server.Stop();
}

}  // namespace
}  // namespace rlj
