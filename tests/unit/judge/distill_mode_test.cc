// distill_mode_test.cc: the openai judge's distill mode: the token-id request, reading echoed per-token
// log-probs (out-of-order choices, null values, short or bad answers), the verdict's components (hand-computed),
// a backend scoring against a real HTTP server, and the start checks that refuse a hosted API, another
// vocabulary, or a server that does not score token ids.
#include <gtest/gtest.h>

#include <cmath>

#include "common/tokenizer/byte_tokenizer.h"
#include "common/tokenizer/tokenizer_fingerprint.h"
#include "judge/backend_registry.h"
#include "judge/backends/distill_start_check.h"
#include "judge/backends/token_logprobs.h"
#include "judge/http/http_client.h"
#include "nlohmann/json.hpp"
#include "teacher_server.h"
#include "test_util.h"

namespace rlj {
namespace {

using nlohmann::json;
using ::rlj::testing::FailsWith;
using ::rlj::testing::TeacherReply;
using ::rlj::testing::TeacherRequest;
using ::rlj::testing::TeacherServer;

v1::Sample TokenSample(const std::string& id, std::vector<int> prompt, std::vector<int> completion,
                       std::vector<float> behaviour = {}) {
  v1::Sample sample;
  sample.set_id(id);
  sample.set_prompt("p");
  sample.set_completion("c");
  sample.mutable_prompt_token_ids()->Assign(prompt.begin(), prompt.end());
  sample.mutable_completion_token_ids()->Assign(completion.begin(), completion.end());
  sample.mutable_behaviour_logprobs()->Assign(behaviour.begin(), behaviour.end());
  return sample;
}

// A /completions answer with one choice per entry: its index and echoed token_logprobs.
std::string EchoBody(const std::vector<std::pair<int, std::vector<json>>>& choices) {
  json array = json::array();
  for (const auto& [index, logprobs] : choices) {
    array.push_back({{"index", index}, {"text", "x"}, {"logprobs", {{"token_logprobs", logprobs}}}});
  }
  return json{{"object", "text_completion"}, {"choices", array}, {"usage", {{"prompt_tokens", 9}}}}.dump();
}

TEST(DistillRequest, SendsPromptAndCompletionIdsOfEverySample) {
  const v1::Sample a = TokenSample("a", {256, 50}, {51, 257});
  const v1::Sample b = TokenSample("b", {256}, {52});
  const json body = json::parse(DistillRequestBody("teacher", {&a, &b}));
  EXPECT_EQ(body["model"], "teacher");
  EXPECT_EQ(body["prompt"], json::parse("[[256, 50, 51, 257], [256, 52]]"));
  EXPECT_EQ(body["echo"], true);
  EXPECT_EQ(body["max_tokens"], 1);
  EXPECT_TRUE(body.contains("logprobs"));
}

TEST(DistillRequest, ReadsEachChoiceByIndexWithNullsAsMasked) {
  const v1::Sample a = TokenSample("a", {256, 50}, {51, 257});
  const v1::Sample b = TokenSample("b", {256}, {52});
  int64_t in = 0, out = 0;
  // Choice 1 comes first; choice 0's second completion token has no value; each has one generated token more.
  RLJ_ASSERT_OK_AND_ASSIGN(
      auto logprobs,
      ReadEchoedTokenLogprobs(EchoBody({{1, {nullptr, -0.5, -9.0}}, {0, {nullptr, -1.0, -0.25, nullptr, -3.0}}}),
                              {&a, &b}, &in, &out));
  ASSERT_EQ(logprobs.size(), 2u);
  ASSERT_EQ(logprobs[0].size(), 2u);
  EXPECT_FLOAT_EQ(logprobs[0][0], -0.25f);
  EXPECT_TRUE(std::isnan(logprobs[0][1]));
  ASSERT_EQ(logprobs[1].size(), 1u);
  EXPECT_FLOAT_EQ(logprobs[1][0], -0.5f);
  EXPECT_EQ(in, 9);
}

TEST(DistillRequest, ShortMissingOrImpossibleAnswersAreErrors) {
  const v1::Sample a = TokenSample("a", {256, 50}, {51, 257});
  int64_t in = 0, out = 0;
  EXPECT_TRUE(FailsWith(ReadEchoedTokenLogprobs(EchoBody({{0, {nullptr, -1.0, -0.5}}}), {&a}, &in, &out),
                        absl::StatusCode::kInternal, "3 log-probs for the 4 tokens sent"));
  EXPECT_TRUE(FailsWith(ReadEchoedTokenLogprobs(EchoBody({{1, {nullptr, -1.0, -0.5, -0.1}}}), {&a}, &in, &out),
                        absl::StatusCode::kInternal, "choice 0 has no logprobs.token_logprobs"));
  EXPECT_TRUE(FailsWith(ReadEchoedTokenLogprobs(EchoBody({{0, {nullptr, -1.0, 0.5, -0.1}}}), {&a}, &in, &out),
                        absl::StatusCode::kInternal, "is not a log-probability"));
  EXPECT_TRUE(FailsWith(ReadEchoedTokenLogprobs("<html>busy</html>", {&a}, &in, &out), absl::StatusCode::kInternal,
                        "not a JSON object"));
}

TEST(DistillVerdict, ComponentsByHand) {
  // Teacher -1, NaN (masked), -3; behaviour -0.5, -2, -1. Valid tokens 0 and 2:
  //   sum = -4, mean = -2, reverse KL = ((-0.5 - -1) + (-1 - -3)) / 2 = (0.5 + 2) / 2 = 1.25.
  const v1::Sample sample = TokenSample("s", {1}, {5, 6, 7}, {-0.5f, -2.0f, -1.0f});
  v1::Verdict verdict;
  FillDistillVerdict(sample, {-1.0f, std::nanf(""), -3.0f}, &verdict);
  ASSERT_FALSE(verdict.has_error());
  ASSERT_EQ(verdict.token_logprobs_size(), 3);
  EXPECT_TRUE(std::isnan(verdict.token_logprobs(1)));
  EXPECT_DOUBLE_EQ(verdict.reward(), -2.0);
  EXPECT_DOUBLE_EQ(verdict.components().at("teacher_logprob_sum"), -4.0);
  EXPECT_DOUBLE_EQ(verdict.components().at("teacher_logprob_mean"), -2.0);
  EXPECT_DOUBLE_EQ(verdict.components().at("reverse_kl"), 1.25);

  v1::Verdict none;
  FillDistillVerdict(sample, {std::nanf(""), std::nanf(""), std::nanf("")}, &none);
  EXPECT_TRUE(none.has_error());  // never a reward made of nothing
  EXPECT_TRUE(none.token_logprobs().empty());
}

class DistillBackendTest : public ::testing::Test {
 protected:
  DistillBackendTest() {
    config_.set_backend("openai");
    v1::OpenAIJudgeConfig* openai = config_.mutable_openai();
    openai->set_base_url(server_.base_url());
    openai->set_model("teacher");
    openai->set_mode(v1::OpenAIMode::distill);
    openai->set_max_retries(0);
  }
  TeacherServer server_;
  v1::JudgeConfig config_;
};

TEST_F(DistillBackendTest, ScoresManySequencesPerRequestAndMasksSamplesWithoutTokens) {
  // 20 samples: 16 in the first request, 4 in the second; one sample without token ids is refused alone.
  server_.SetHandler([](const TeacherRequest& request) {
    const json body = json::parse(request.body);
    std::vector<std::pair<int, std::vector<json>>> choices;
    for (size_t i = 0; i < body["prompt"].size(); ++i) {
      std::vector<json> values = {nullptr};
      for (size_t k = 1; k <= body["prompt"][i].size(); ++k) values.push_back(-0.5 * static_cast<double>(k));
      choices.push_back({static_cast<int>(i), values});
    }
    return TeacherReply{200, EchoBody(choices), {}, false};
  });
  RLJ_ASSERT_OK_AND_ASSIGN(std::unique_ptr<JudgeBackend> backend, MakeJudgeBackend(config_));
  std::vector<v1::Sample> samples;
  for (int i = 0; i < 20; ++i) samples.push_back(TokenSample(absl::StrCat("s", i), {256, 40}, {41, 42}, {-1, -1}));
  samples[7].clear_completion_token_ids();
  const std::vector<Judgement> judgements = backend->Score(samples);
  ASSERT_EQ(judgements.size(), 20u);
  EXPECT_EQ(server_.received().size(), 2u);
  EXPECT_TRUE(judgements[7].verdict.has_error());
  EXPECT_EQ(judgements[7].verdict.error().kind(), "invalid");
  const v1::Verdict& v = judgements[0].verdict;
  ASSERT_FALSE(v.has_error()) << v.error().message();
  // Echo values -0.5·k at position k: completion tokens are positions 2 and 3 → -1.0, -1.5.
  ASSERT_EQ(v.token_logprobs_size(), 2);
  EXPECT_FLOAT_EQ(v.token_logprobs(0), -1.0f);
  EXPECT_FLOAT_EQ(v.token_logprobs(1), -1.5f);
  EXPECT_DOUBLE_EQ(v.reward(), -1.25);
  EXPECT_DOUBLE_EQ(v.components().at("reverse_kl"), (0.0 + 0.5) / 2);
}

TEST_F(DistillBackendTest, AFailedRequestMasksItsSamplesNeverZero) {
  server_.SetDefault(TeacherReply{400, R"({"error":{"message":"echo is not supported"}})", {}, false});
  RLJ_ASSERT_OK_AND_ASSIGN(std::unique_ptr<JudgeBackend> backend, MakeJudgeBackend(config_));
  const std::vector<Judgement> judgements = backend->Score({TokenSample("a", {1}, {2}), TokenSample("b", {1}, {3})});
  for (const Judgement& j : judgements) {
    EXPECT_TRUE(j.verdict.has_error());
    EXPECT_TRUE(j.verdict.token_logprobs().empty());
  }
}

// The start checks, against an HTTP stand-in behind the HttpClient interface.
class FakeHttp : public HttpClient {
 public:
  std::function<HttpResponse(const HttpRequest&)> answer;
  absl::StatusOr<HttpResponse> Send(const HttpRequest& request) override { return answer(request); }
};

HttpResponse Json(int status, const json& body) { return HttpResponse{status, {}, body.dump()}; }

class DistillStartCheckTest : public ::testing::Test {
 protected:
  DistillStartCheckTest() {
    config_.set_model("teacher");
    context_.student_tokenizer = "tokenizer.kind byte";
    context_.student_tokenizer_fingerprint = TokenizerFingerprint(ByteTokenizer());
    http_.answer = [this](const HttpRequest& request) {
      if (request.method == "GET") {
        return Json(
            200,
            {{"data", {{{"id", "teacher"}, {"rlj_tokenizer", {{"kind", "byte"}, {"fingerprint", fingerprint_}}}}}}});
      }
      return probe_;
    };
    fingerprint_ = context_.student_tokenizer_fingerprint;
    probe_ = HttpResponse{200, {}, EchoBody({{0, {nullptr, -2.0, -1.0}}})};
  }
  absl::Status Check(const std::string& base_url = "http://127.0.0.1:9/v1") {
    return CheckDistillTeacher(DistillTeacher{&config_, "judge.openai", base_url, {}}, context_, http_,
                               std::chrono::milliseconds(0));
  }
  v1::OpenAIJudgeConfig config_;
  JudgeStartContext context_;
  FakeHttp http_;
  std::string fingerprint_;
  HttpResponse probe_;
};

TEST_F(DistillStartCheckTest, AMatchingTeacherThatScoresTokenIdsPasses) { RLJ_EXPECT_OK(Check()); }

TEST_F(DistillStartCheckTest, AHostedApiWithoutPromptLogprobsIsRefusedNamingBackendAndMode) {
  EXPECT_TRUE(FailsWith(Check("https://api.openai.com/v1"), absl::StatusCode::kFailedPrecondition,
                        "judge.openai (backend openai, mode distill): https://api.openai.com/v1 gives no "
                        "log-probabilities of given tokens"));
}

TEST_F(DistillStartCheckTest, AnotherVocabularyIsRefusedNamingBoth) {
  fingerprint_ = std::string(64, 'a');
  const absl::Status status = Check();
  EXPECT_TRUE(FailsWith(status, absl::StatusCode::kFailedPrecondition, "byte tokenizer of 'teacher'"));
  EXPECT_TRUE(FailsWith(status, absl::StatusCode::kFailedPrecondition, "is not the student's (tokenizer.kind byte"));
}

TEST_F(DistillStartCheckTest, AnUnknownTokenizerIsRefusedUnlessConfigured) {
  http_.answer = [this](const HttpRequest& request) {
    return request.method == "GET" ? Json(200, {{"data", {{{"id", "teacher"}}}}}) : probe_;
  };
  EXPECT_TRUE(FailsWith(Check(), absl::StatusCode::kFailedPrecondition, "set judge.openai.teacher_tokenizer"));
  config_.set_teacher_tokenizer("byte");  // vLLM: the user names the teacher's tokenizer
  RLJ_EXPECT_OK(Check());
}

TEST_F(DistillStartCheckTest, AServerThatDoesNotScoreTokenIdsIsRefused) {
  probe_ = Json(400, {{"error", {{"message", "echo is not supported with this model"}}}});
  EXPECT_TRUE(FailsWith(Check(), absl::StatusCode::kFailedPrecondition,
                        "does not give log-probabilities of a token-id prompt (echo, logprobs): HTTP 400"));
}

}  // namespace
}  // namespace rlj
