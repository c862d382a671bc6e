// openai_backend_test.cc: the openai judge against a real HTTP server on 127.0.0.1: the request it sends,
// scores from JSON and from the pattern, the API key header, retries (5xx, 429 + Retry-After, transport),
// timeouts, parse / out-of-range / refusal errors, concurrency, and that the key never leaks.
#include "judge/backends/openai_backend.h"

#include <gtest/gtest.h>

#include <chrono>
#include <map>

#include "judge/backend_registry.h"
#include "nlohmann/json.hpp"
#include "teacher_server.h"
#include "test_util.h"

namespace rlj {
namespace {

using ::rlj::testing::ChatCompletionBody;
using ::rlj::testing::ChatReply;
using ::rlj::testing::FailsWith;
using ::rlj::testing::TeacherReply;
using ::rlj::testing::TeacherRequest;
using ::rlj::testing::TeacherServer;

constexpr char kKeyVariable[] = "RLJ_TEST_TEACHER_KEY";
constexpr char kKey[] = "sk-test-8f3a9c21d7e4b6";

v1::Sample MakeSample(const std::string& id, const std::string& completion) {
  v1::Sample sample;
  sample.set_id(id);
  sample.set_prompt("What is 23+23?");
  sample.set_completion(completion);
  sample.set_reference("46");
  return sample;
}

class OpenAIBackendTest : public ::testing::Test {
 protected:
  OpenAIBackendTest() {
    config_.set_backend("openai");
    v1::OpenAIJudgeConfig* openai = config_.mutable_openai();
    openai->set_base_url(server_.base_url() + "/");  // a trailing slash is tolerated
    openai->set_model("teacher-test");
    openai->set_rubric("Question: {prompt}\nAnswer: {completion}\nReference: {reference}\nReply {\"score\": 0-10}.");
    openai->set_system_prompt("You grade answers.");
    openai->set_timeout_ms(10000);
    openai->set_max_retries(3);
    openai->set_api_key_env(kKeyVariable);
  }

  // The backend under test; `env` is the environment it sees.
  std::unique_ptr<JudgeBackend> Make(std::map<std::string, std::string> env = {{kKeyVariable, kKey}}) {
    JudgeBackendDeps deps;
    deps.env = [env](const std::string& name) -> std::optional<std::string> {
      auto it = env.find(name);
      if (it == env.end()) return std::nullopt;
      return it->second;
    };
    auto backend = MakeJudgeBackend(config_, deps);
    EXPECT_TRUE(backend.ok()) << backend.status();
    return backend.ok() ? std::move(backend).value() : nullptr;
  }

  Judgement ScoreOne(JudgeBackend& backend, const std::string& completion = "46") {
    std::vector<Judgement> judgements = backend.Score({MakeSample("s-1", completion)});
    EXPECT_EQ(judgements.size(), 1u);
    return judgements.empty() ? Judgement{} : judgements[0];
  }

  TeacherServer server_;  // declared first: outlives the backends the tests make
  v1::JudgeConfig config_;
};

TEST_F(OpenAIBackendTest, GoodJsonAnswer) {
  const std::string content = "```json\n{\"score\": 8, \"rationale\": \"correct, terse\"}\n```";
  server_.Push(ChatReply(content, 120, 15));
  auto backend = Make();
  ASSERT_NE(backend, nullptr);
  EXPECT_EQ(backend->name(), "openai");
  const Judgement judgement = ScoreOne(*backend);
  const v1::Verdict& verdict = judgement.verdict;
  ASSERT_FALSE(verdict.has_error()) << verdict.error().message();
  EXPECT_EQ(verdict.sample_id(), "s-1");
  EXPECT_DOUBLE_EQ(verdict.reward(), 0.8);  // 8 on [0, 10] → [0, 1]
  EXPECT_EQ(verdict.components().at("score"), 8.0);
  EXPECT_EQ(verdict.rationale(), "correct, terse");
  EXPECT_EQ(verdict.tokens_in(), 120);
  EXPECT_EQ(verdict.tokens_out(), 15);
  EXPECT_EQ(verdict.model(), "teacher-test");
  EXPECT_GT(verdict.latency_ms(), 0);
  EXPECT_EQ(judgement.raw_response, content);

  // What the teacher received.
  const std::vector<TeacherRequest> received = server_.received();
  ASSERT_EQ(received.size(), 1u);
  EXPECT_EQ(received[0].method, "POST");
  EXPECT_EQ(received[0].path, "/v1/chat/completions");
  const nlohmann::json body = nlohmann::json::parse(received[0].body);
  EXPECT_EQ(body["model"], "teacher-test");
  EXPECT_EQ(body["temperature"], 0.0);
  EXPECT_EQ(body["max_tokens"], 256);
  ASSERT_EQ(body["messages"].size(), 2u);
  EXPECT_EQ(body["messages"][0]["role"], "system");
  EXPECT_EQ(body["messages"][0]["content"], "You grade answers.");
  EXPECT_EQ(body["messages"][1]["role"], "user");
  EXPECT_EQ(body["messages"][1]["content"],
            "Question: What is 23+23?\nAnswer: 46\nReference: 46\nReply {\"score\": 0-10}.");
}

TEST_F(OpenAIBackendTest, PatternAnswerScaledOntoRewardRange) {
  config_.mutable_openai()->set_reward_min(-1);
  config_.mutable_openai()->set_reward_max(1);
  config_.mutable_openai()->clear_system_prompt();
  const std::string content = "The arithmetic is right but the answer is padded.\nScore: 7.5";
  server_.Push(ChatReply(content));
  auto backend = Make();
  ASSERT_NE(backend, nullptr);
  const Judgement judgement = ScoreOne(*backend);
  ASSERT_FALSE(judgement.verdict.has_error()) << judgement.verdict.error().message();
  EXPECT_DOUBLE_EQ(judgement.verdict.reward(), 0.5);  // -1 + 0.75 · 2
  EXPECT_EQ(judgement.verdict.rationale(), content);
  const nlohmann::json body = nlohmann::json::parse(server_.received().at(0).body);
  ASSERT_EQ(body["messages"].size(), 1u);  // no system prompt configured: only the user message
  EXPECT_EQ(body["messages"][0]["role"], "user");
}

TEST_F(OpenAIBackendTest, AuthorizationHeaderCarriesTheKeyFromTheEnvironment) {
  server_.SetDefault(ChatReply("{\"score\": 5}"));
  {
    auto backend = Make();
    ASSERT_NE(backend, nullptr);
    EXPECT_FALSE(ScoreOne(*backend).verdict.has_error());
  }
  config_.mutable_openai()->clear_api_key_env();  // a local server: no key, no header
  {
    auto backend = Make({});
    ASSERT_NE(backend, nullptr);
    EXPECT_FALSE(ScoreOne(*backend).verdict.has_error());
  }
  const std::vector<TeacherRequest> received = server_.received();
  ASSERT_EQ(received.size(), 2u);
  EXPECT_TRUE(received[0].has_authorization);
  EXPECT_EQ(received[0].authorization, std::string("Bearer ") + kKey);
  EXPECT_FALSE(received[1].has_authorization);
}

TEST_F(OpenAIBackendTest, MissingOrEmptyKeyVariableFailsConstructionNamingIt) {
  JudgeBackendDeps deps;
  deps.env = [](const std::string&) -> std::optional<std::string> { return std::nullopt; };
  EXPECT_TRUE(FailsWith(MakeJudgeBackend(config_, deps), absl::StatusCode::kFailedPrecondition, kKeyVariable));
  deps.env = [](const std::string&) -> std::optional<std::string> { return std::string(" \n"); };
  EXPECT_TRUE(FailsWith(MakeJudgeBackend(config_, deps), absl::StatusCode::kFailedPrecondition, kKeyVariable));
  EXPECT_TRUE(server_.received().empty());
}

TEST_F(OpenAIBackendTest, ServerErrorIsRetried) {
  server_.Push(TeacherReply{500, R"({"error": "overloaded"})", {}, false});
  server_.Push(ChatReply("{\"score\": 10}"));
  auto backend = Make();
  ASSERT_NE(backend, nullptr);
  const Judgement judgement = ScoreOne(*backend);
  ASSERT_FALSE(judgement.verdict.has_error()) << judgement.verdict.error().message();
  EXPECT_DOUBLE_EQ(judgement.verdict.reward(), 1.0);
  EXPECT_EQ(server_.received().size(), 2u);
}

TEST_F(OpenAIBackendTest, RateLimitHonoursRetryAfter) {
  server_.Push(TeacherReply{429, R"({"error": "slow down"})", {{"Retry-After", "1"}}, false});
  server_.Push(ChatReply("{\"score\": 2}"));
  auto backend = Make();
  ASSERT_NE(backend, nullptr);
  const auto start = std::chrono::steady_clock::now();
  const Judgement judgement = ScoreOne(*backend);
  const auto waited = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(judgement.verdict.has_error()) << judgement.verdict.error().message();
  EXPECT_DOUBLE_EQ(judgement.verdict.reward(), 0.2);
  EXPECT_GE(waited, std::chrono::milliseconds(950));  // the server asked for 1 s
  EXPECT_EQ(server_.received().size(), 2u);
}

TEST_F(OpenAIBackendTest, PersistentServerErrorGivesUpAfterMaxRetries) {
  config_.mutable_openai()->set_max_retries(2);
  server_.SetDefault(TeacherReply{503, "upstream unavailable", {}, false});
  auto backend = Make();
  ASSERT_NE(backend, nullptr);
  const Judgement judgement = ScoreOne(*backend);
  ASSERT_TRUE(judgement.verdict.has_error());
  EXPECT_EQ(judgement.verdict.error().kind(), "http_error");
  EXPECT_EQ(judgement.verdict.error().code(), static_cast<int>(absl::StatusCode::kUnavailable));
  EXPECT_NE(judgement.verdict.error().message().find("HTTP 503"), std::string::npos);
  EXPECT_NE(judgement.verdict.error().message().find("3 attempts"), std::string::npos);
  EXPECT_EQ(server_.received().size(), 3u);  // the first try and 2 retries
}

TEST_F(OpenAIBackendTest, PersistentRateLimitIsRateLimited) {
  config_.mutable_openai()->set_max_retries(1);
  server_.SetDefault(TeacherReply{429, "", {}, false});
  auto backend = Make();
  ASSERT_NE(backend, nullptr);
  const Judgement judgement = ScoreOne(*backend);
  ASSERT_TRUE(judgement.verdict.has_error());
  EXPECT_EQ(judgement.verdict.error().kind(), "rate_limited");
  EXPECT_EQ(judgement.verdict.error().code(), static_cast<int>(absl::StatusCode::kResourceExhausted));
  EXPECT_EQ(server_.received().size(), 2u);
}

TEST_F(OpenAIBackendTest, ClientErrorIsNotRetried) {
  server_.SetDefault(TeacherReply{400, R"({"error": "bad model"})", {}, false});
  auto backend = Make();
  ASSERT_NE(backend, nullptr);
  const Judgement judgement = ScoreOne(*backend);
  ASSERT_TRUE(judgement.verdict.has_error());
  EXPECT_EQ(judgement.verdict.error().kind(), "http_error");
  EXPECT_EQ(judgement.verdict.error().code(), static_cast<int>(absl::StatusCode::kInvalidArgument));
  EXPECT_NE(judgement.verdict.error().message().find("bad model"), std::string::npos);
  EXPECT_EQ(server_.received().size(), 1u);
}

TEST_F(OpenAIBackendTest, SlowServerTimesOut) {
  config_.mutable_openai()->set_timeout_ms(300);
  config_.mutable_openai()->set_max_retries(0);
  server_.SetDefault(TeacherReply{200, ChatCompletionBody("{\"score\": 5}"), {}, /*hang=*/true});
  auto backend = Make();
  ASSERT_NE(backend, nullptr);
  const Judgement judgement = ScoreOne(*backend);
  ASSERT_TRUE(judgement.verdict.has_error());
  EXPECT_EQ(judgement.verdict.error().kind(), "timeout");
  EXPECT_EQ(judgement.verdict.error().code(), static_cast<int>(absl::StatusCode::kDeadlineExceeded));
  EXPECT_GE(judgement.verdict.latency_ms(), 290);
}

TEST_F(OpenAIBackendTest, UnreachableServerIsAnHttpErrorAfterRetries) {
  std::string url;
  {
    TeacherServer gone;  // a port that was just free and is closed again
    url = gone.base_url();
  }
  config_.mutable_openai()->set_base_url(url);
  config_.mutable_openai()->set_max_retries(1);
  auto backend = Make();
  ASSERT_NE(backend, nullptr);
  const Judgement judgement = ScoreOne(*backend);
  ASSERT_TRUE(judgement.verdict.has_error());
  EXPECT_EQ(judgement.verdict.error().kind(), "http_error");
  EXPECT_EQ(judgement.verdict.error().code(), static_cast<int>(absl::StatusCode::kUnavailable));
  EXPECT_NE(judgement.verdict.error().message().find(url), std::string::npos);
  EXPECT_NE(judgement.verdict.error().message().find("2 attempts"), std::string::npos);
}

TEST_F(OpenAIBackendTest, UnparsableAnswerIsAParseError) {
  const std::string content = "It's a pretty good answer overall.";
  server_.Push(ChatReply(content));
  for (int attempt = 0; attempt < 4; ++attempt) server_.Push(TeacherReply{200, "<html>gateway page</html>", {}, false});
  auto backend = Make();
  ASSERT_NE(backend, nullptr);

  // A JSON answer without a score is the teacher's answer: a parse error at once, not retried.
  const Judgement no_score = ScoreOne(*backend);
  ASSERT_TRUE(no_score.verdict.has_error());
  EXPECT_EQ(no_score.verdict.error().kind(), "parse");
  EXPECT_EQ(no_score.raw_response, content);
  EXPECT_EQ(no_score.verdict.rationale(), content);
  EXPECT_EQ(server_.received().size(), 1u);

  // A 200 whose body is not JSON (a proxy's page, a cut-off body) is retried like a 5xx (max_retries 3), then
  // a parse error whose message quotes the body.
  const Judgement not_json = ScoreOne(*backend);
  ASSERT_TRUE(not_json.verdict.has_error());
  EXPECT_EQ(not_json.verdict.error().kind(), "parse");
  EXPECT_NE(not_json.verdict.error().message().find("<html>gateway page</html>"), std::string::npos)
      << not_json.verdict.error().message();
  EXPECT_EQ(server_.received().size(), 5u);
}

TEST_F(OpenAIBackendTest, OutOfRangeScoreIsAnError) {
  server_.Push(ChatReply("{\"score\": 11, \"reason\": \"excellent!\"}"));
  auto backend = Make();
  ASSERT_NE(backend, nullptr);
  const Judgement judgement = ScoreOne(*backend);
  ASSERT_TRUE(judgement.verdict.has_error());
  EXPECT_EQ(judgement.verdict.error().kind(), "out_of_range");
  EXPECT_EQ(judgement.verdict.error().code(), static_cast<int>(absl::StatusCode::kOutOfRange));
  EXPECT_NE(judgement.verdict.error().message().find("11"), std::string::npos);
  EXPECT_EQ(judgement.verdict.reward(), 0.0);
}

TEST_F(OpenAIBackendTest, RefusalsAreErrors) {
  nlohmann::json refused = nlohmann::json::parse(ChatCompletionBody(""));
  refused["choices"][0]["message"]["content"] = nullptr;
  refused["choices"][0]["message"]["refusal"] = "I can't help with grading this.";
  server_.Push(TeacherReply{200, refused.dump(), {}, false});
  server_.Push(TeacherReply{200, ChatCompletionBody("", 10, 0, "content_filter"), {}, false});
  auto backend = Make();
  ASSERT_NE(backend, nullptr);
  const Judgement by_field = ScoreOne(*backend);
  ASSERT_TRUE(by_field.verdict.has_error());
  EXPECT_EQ(by_field.verdict.error().kind(), "refusal");
  EXPECT_NE(by_field.verdict.error().message().find("can't help"), std::string::npos);
  EXPECT_EQ(by_field.raw_response, "I can't help with grading this.");
  const Judgement by_filter = ScoreOne(*backend);
  ASSERT_TRUE(by_filter.verdict.has_error());
  EXPECT_EQ(by_filter.verdict.error().kind(), "refusal");
  EXPECT_EQ(by_filter.verdict.tokens_in(), 10);
}

TEST_F(OpenAIBackendTest, ConcurrentSamplesKeepTheirOrderAndTheConcurrencyCap) {
  config_.mutable_openai()->set_max_concurrency(3);
  // The teacher scores each completion with the number it contains.
  server_.SetHandler([](const TeacherRequest& request) {
    const nlohmann::json body = nlohmann::json::parse(request.body);
    const std::string user = body["messages"][1]["content"];
    const size_t at = user.find("Answer: ");
    const int number = std::stoi(user.substr(at + 8));
    return ChatReply("{\"score\": " + std::to_string(number) + "}");
  });
  auto backend = Make();
  ASSERT_NE(backend, nullptr);
  std::vector<v1::Sample> samples;
  for (int i = 0; i <= 10; ++i) samples.push_back(MakeSample("s-" + std::to_string(i), std::to_string(i)));
  const std::vector<Judgement> judgements = backend->Score(samples);
  ASSERT_EQ(judgements.size(), samples.size());
  for (int i = 0; i <= 10; ++i) {
    EXPECT_EQ(judgements[i].verdict.sample_id(), "s-" + std::to_string(i));
    ASSERT_FALSE(judgements[i].verdict.has_error()) << judgements[i].verdict.error().message();
    EXPECT_DOUBLE_EQ(judgements[i].verdict.reward(), i / 10.0);
  }
  EXPECT_EQ(server_.received().size(), 11u);
  EXPECT_LE(server_.max_in_flight(), 3);
}

TEST_F(OpenAIBackendTest, TheKeyNeverLeaks) {
  // A hostile or buggy teacher echoes the Authorization header everywhere it can.
  server_.SetHandler([](const TeacherRequest& request) {
    const std::string echo = "you sent '" + request.authorization + "'";
    const std::string body = request.body;
    if (body.find("echo-content") != std::string::npos) {
      return ChatReply("{\"score\": 5, \"rationale\": \"" + echo + "\"}");
    }
    if (body.find("echo-no-score") != std::string::npos) return ChatReply(echo);
    if (body.find("echo-refusal") != std::string::npos) {
      nlohmann::json refused = nlohmann::json::parse(ChatCompletionBody(echo));
      refused["choices"][0]["message"]["refusal"] = echo;
      return TeacherReply{200, refused.dump(), {}, false};
    }
    if (body.find("echo-401") != std::string::npos) return TeacherReply{401, echo, {}, false};
    if (body.find("echo-500") != std::string::npos) return TeacherReply{500, echo, {}, false};
    return TeacherReply{200, "not json " + echo, {}, false};
  });
  config_.mutable_openai()->set_max_retries(1);
  auto backend = Make();
  ASSERT_NE(backend, nullptr);
  const std::vector<Judgement> judgements = backend->Score(
      {MakeSample("a", "echo-content"), MakeSample("b", "echo-no-score"), MakeSample("c", "echo-refusal"),
       MakeSample("d", "echo-401"), MakeSample("e", "echo-500"), MakeSample("f", "echo-body")});
  ASSERT_EQ(judgements.size(), 6u);
  ASSERT_FALSE(judgements[0].verdict.has_error());
  EXPECT_NE(judgements[0].verdict.rationale().find("[redacted]"), std::string::npos);
  for (const Judgement& judgement : judgements) {
    std::string everything;
    judgement.verdict.SerializeToString(&everything);
    everything += judgement.raw_response;
    EXPECT_EQ(everything.find(kKey), std::string::npos) << judgement.verdict.DebugString() << judgement.raw_response;
  }
  // The key was sent, so the server had it to echo.
  for (const TeacherRequest& request : server_.received())
    EXPECT_EQ(request.authorization, std::string("Bearer ") + kKey);
}

TEST(JudgeBackendRegistry, UnknownNameListsTheKnownOnes) {
  v1::JudgeConfig config;
  config.set_backend("oracle");
  EXPECT_TRUE(FailsWith(MakeJudgeBackend(config), absl::StatusCode::kInvalidArgument, "known backends: rule, openai"));
  EXPECT_TRUE(FailsWith(MakeJudgeBackend(config), absl::StatusCode::kInvalidArgument, "'oracle'"));
  config.set_backend("rule");
  RLJ_ASSERT_OK_AND_ASSIGN(auto rule, MakeJudgeBackend(config));
  EXPECT_EQ(rule->name(), "rule");
  config.set_backend("openai");  // without model and rubric
  EXPECT_TRUE(FailsWith(MakeJudgeBackend(config), absl::StatusCode::kInvalidArgument, "judge.openai.model"));
  config.mutable_openai()->set_model("m");
  config.mutable_openai()->set_rubric("{completion}");
  config.mutable_openai()->set_score_pattern("no group");
  EXPECT_TRUE(FailsWith(MakeJudgeBackend(config), absl::StatusCode::kInvalidArgument, "judge.openai: score_pattern"));
}

}  // namespace
}  // namespace rlj
