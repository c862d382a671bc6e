// openai_modes_test.cc: the openai judge's label mode (expected reward under the teacher's top_logprobs)
// and likelihood mode (mean log-probability of the completion's tokens from /completions with echo),
// against a real HTTP server on 127.0.0.1 answering to the OpenAI spec, with hand-computed rewards.
#include <gtest/gtest.h>

#include <cmath>

#include "judge/backend_registry.h"
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

v1::Sample MakeSample(const std::string& id, const std::string& prompt, const std::string& completion) {
  v1::Sample sample;
  sample.set_id(id);
  sample.set_prompt(prompt);
  sample.set_completion(completion);
  sample.set_reference("4");
  return sample;
}

// One logprobs.content entry: the token chosen and its alternatives (token, probability).
json TokenEntry(const std::string& token, const std::vector<std::pair<std::string, double>>& top) {
  json alternatives = json::array();
  for (const auto& [text, p] : top)
    alternatives.push_back({{"token", text}, {"logprob", std::log(p)}, {"bytes", nullptr}});
  return {{"token", token}, {"logprob", top.empty() ? -0.1 : std::log(top[0].second)}, {"top_logprobs", alternatives}};
}

// A chat completion answering `content` with logprobs.content = `tokens`.
TeacherReply LabelReply(const std::string& content, json tokens) {
  json body = {{"object", "chat.completion"},
               {"choices",
                {{{"index", 0},
                  {"message", {{"role", "assistant"}, {"content", content}}},
                  {"logprobs", {{"content", std::move(tokens)}}},
                  {"finish_reason", "stop"}}}},
               {"usage", {{"prompt_tokens", 50}, {"completion_tokens", 1}, {"total_tokens", 51}}}};
  return TeacherReply{200, body.dump(), {}, false};
}

// A legacy completion with echo: logprobs {tokens, token_logprobs, text_offset}.
TeacherReply EchoReply(const std::vector<std::string>& tokens, const std::vector<json>& logprobs,
                       const std::vector<int>& offsets) {
  std::string text;
  for (const std::string& token : tokens) text += token;
  json body = {
      {"object", "text_completion"},
      {"choices",
       {{{"index", 0},
         {"text", text},
         {"logprobs",
          {{"tokens", tokens}, {"token_logprobs", logprobs}, {"text_offset", offsets}, {"top_logprobs", nullptr}}},
         {"finish_reason", "length"}}}},
      {"usage", {{"prompt_tokens", static_cast<int>(tokens.size()) - 1}, {"completion_tokens", 1}}}};
  return TeacherReply{200, body.dump(), {}, false};
}

class OpenAIModesTest : public ::testing::Test {
 protected:
  std::unique_ptr<JudgeBackend> Make() {
    auto backend = MakeJudgeBackend(config_, JudgeBackendDeps{});
    EXPECT_TRUE(backend.ok()) << backend.status();
    return backend.ok() ? std::move(backend).value() : nullptr;
  }
  v1::Verdict ScoreOne(const v1::Sample& sample) {
    auto backend = Make();
    if (backend == nullptr) return {};
    std::vector<Judgement> judgements = backend->Score({sample});
    EXPECT_EQ(judgements.size(), 1u);
    return judgements.empty() ? v1::Verdict{} : judgements[0].verdict;
  }

  void UseLabelMode() {
    config_.set_backend("openai");
    v1::OpenAIJudgeConfig* openai = config_.mutable_openai();
    openai->set_base_url(server_.base_url());
    openai->set_model("grader");
    openai->set_api_key_env("");
    openai->set_mode(v1::OpenAIMode::label);
    openai->set_rubric("Is {completion} the answer to {prompt}? Reply yes or no.");
    (*openai->mutable_labels())["yes"] = 1.0;
    (*openai->mutable_labels())["no"] = 0.0;
    openai->set_top_logprobs(5);
    openai->set_max_retries(0);
  }
  void UseLikelihoodMode(const std::string& tmpl) {
    config_.set_backend("openai");
    v1::OpenAIJudgeConfig* openai = config_.mutable_openai();
    openai->set_base_url(server_.base_url());
    openai->set_model("teacher-lm");
    openai->set_api_key_env("");
    openai->set_mode(v1::OpenAIMode::likelihood);
    openai->set_likelihood_template(tmpl);
    openai->set_max_retries(0);
  }

  TeacherServer server_;
  v1::JudgeConfig config_;
};

TEST_F(OpenAIModesTest, LabelRewardIsTheExpectationUnderTopLogprobs) {
  UseLabelMode();
  server_.Push(LabelReply("yes", json::array({TokenEntry("yes", {{"yes", 0.6}, {" no", 0.3}, {"maybe", 0.1}})})));
  const v1::Verdict verdict = ScoreOne(MakeSample("s", "2+2?", "4"));
  ASSERT_FALSE(verdict.has_error()) << verdict.error().message();
  // Mass on labels 0.9; p(yes) = 0.6 / 0.9; reward = 1·p(yes) + 0·p(no).
  EXPECT_NEAR(verdict.reward(), 0.6 / 0.9, 1e-9);
  EXPECT_NEAR(verdict.components().at("p(yes)"), 0.6 / 0.9, 1e-9);
  EXPECT_NEAR(verdict.components().at("p(no)"), 0.3 / 0.9, 1e-9);
  EXPECT_NEAR(verdict.components().at("label_mass"), 0.9, 1e-9);
  EXPECT_EQ(verdict.tokens_in(), 50);
  EXPECT_EQ(verdict.model(), "grader");

  ASSERT_EQ(server_.received().size(), 1u);
  const TeacherRequest request = server_.received()[0];
  EXPECT_EQ(request.path, "/v1/chat/completions");
  EXPECT_FALSE(request.has_authorization);  // no api_key_env: a local server
  const json body = json::parse(request.body);
  EXPECT_EQ(body["logprobs"], true);
  EXPECT_EQ(body["top_logprobs"], 5);
  EXPECT_EQ(body["max_tokens"], 1);
  EXPECT_EQ(body["model"], "grader");
  EXPECT_EQ(body["messages"].back()["content"], "Is 4 the answer to 2+2?? Reply yes or no.");
}

TEST_F(OpenAIModesTest, LabelsWithWeightsPrefixesAndLeadingWhitespaceTokens) {
  UseLabelMode();
  v1::OpenAIJudgeConfig* openai = config_.mutable_openai();
  openai->clear_labels();
  (*openai->mutable_labels())["correct"] = 10;
  (*openai->mutable_labels())["partial"] = 4;
  (*openai->mutable_labels())["wrong"] = -2;
  // The first token is a line break; the label comes next, as "corr" (a unique prefix of "correct").
  server_.Push(
      LabelReply("\ncorrect", json::array({TokenEntry("\n", {{"\n", 0.99}}),
                                           TokenEntry("corr", {{"corr", 0.5}, {"partial", 0.2}, {" wrong", 0.3}})})));
  const v1::Verdict verdict = ScoreOne(MakeSample("s", "2+2?", "4"));
  ASSERT_FALSE(verdict.has_error()) << verdict.error().message();
  EXPECT_NEAR(verdict.reward(), 0.5 * 10 + 0.2 * 4 + 0.3 * -2, 1e-9);  // mass 1.0
  EXPECT_NEAR(verdict.components().at("p(correct)"), 0.5, 1e-9);
}

TEST_F(OpenAIModesTest, LabelAnswersThatCannotBeReadAreParseErrorsNeverZero) {
  UseLabelMode();
  // No logprobs in the answer (a server that ignores the parameter).
  server_.Push(TeacherReply{200, R"({"choices":[{"message":{"content":"yes"},"finish_reason":"stop"}]})", {}, false});
  // Too little probability on the labels (0.1 < label_min_mass 0.5).
  server_.Push(LabelReply("hmm", json::array({TokenEntry("hmm", {{"hmm", 0.8}, {"yes", 0.1}})})));
  // No label among the alternatives.
  server_.Push(LabelReply("perhaps", json::array({TokenEntry("perhaps", {{"perhaps", 0.9}})})));
  // Malformed JSON.
  server_.Push(TeacherReply{200, R"({"choices":[{"message":)", {}, false});
  // A refusal.
  server_.Push(TeacherReply{
      200,
      R"({"choices":[{"message":{"content":null,"refusal":"I can't grade that."},"finish_reason":"stop"}]})",
      {},
      false});
  auto backend = Make();
  ASSERT_NE(backend, nullptr);
  const char* expected_kinds[] = {"parse", "parse", "parse", "parse", "refusal"};
  const char* expected_text[] = {"logprobs", "label_min_mass", "none of the teacher's top tokens", "not JSON",
                                 "can't grade"};
  for (int i = 0; i < 5; ++i) {
    const std::vector<Judgement> judgements = backend->Score({MakeSample("s", "2+2?", "4")});
    ASSERT_EQ(judgements.size(), 1u);
    const v1::Verdict& verdict = judgements[0].verdict;
    ASSERT_TRUE(verdict.has_error()) << i;
    EXPECT_EQ(verdict.error().kind(), expected_kinds[i]) << i;
    EXPECT_NE(verdict.error().message().find(expected_text[i]), std::string::npos)
        << i << ": " << verdict.error().message();
    EXPECT_EQ(verdict.reward(), 0);
  }
}

TEST_F(OpenAIModesTest, LabelModeConfigurationErrors) {
  UseLabelMode();
  config_.mutable_openai()->clear_labels();
  EXPECT_TRUE(FailsWith(MakeJudgeBackend(config_), absl::StatusCode::kInvalidArgument, "labels is required"));
  UseLabelMode();
  config_.mutable_openai()->set_top_logprobs(21);
  EXPECT_TRUE(FailsWith(MakeJudgeBackend(config_), absl::StatusCode::kInvalidArgument, "top_logprobs"));
}

TEST_F(OpenAIModesTest, LikelihoodIsTheMeanLogprobOfTheCompletionTokens) {
  UseLikelihoodMode("Q: {prompt}\nA: {completion}");
  // Scored text "Q: 2+2?\nA: 4 ok": the completion is characters [11, 15). The last token ("!") is the one
  // generated after the echo; it is not part of the completion.
  server_.Push(EchoReply({"Q:", " 2+2?", "\nA:", " ", "4", " ok", "!"}, {nullptr, -1.0, -2.0, -0.5, -0.25, -0.75, -3.0},
                         {0, 2, 7, 10, 11, 12, 15}));
  const v1::Verdict verdict = ScoreOne(MakeSample("s", "2+2?", "4 ok"));
  ASSERT_FALSE(verdict.has_error()) << verdict.error().message();
  EXPECT_NEAR(verdict.reward(), (-0.25 - 0.75) / 2, 1e-12);
  EXPECT_NEAR(verdict.components().at("sum_logprob"), -1.0, 1e-12);
  EXPECT_EQ(verdict.components().at("completion_tokens"), 2);

  ASSERT_EQ(server_.received().size(), 1u);
  EXPECT_EQ(server_.received()[0].path, "/v1/completions");
  const json body = json::parse(server_.received()[0].body);
  EXPECT_EQ(body["prompt"], "Q: 2+2?\nA: 4 ok");
  EXPECT_EQ(body["echo"], true);
  EXPECT_EQ(body["logprobs"], 1);
  EXPECT_EQ(body["model"], "teacher-lm");
}

// likelihood_score_after: the end marker after the completion is scored too. A teacher that expects more
// digits after "1" gives the marker a low log-probability, so "1" no longer scores as well as "13".
TEST_F(OpenAIModesTest, LikelihoodScoreAfterAveragesTheEndMarkerToo) {
  UseLikelihoodMode("{prompt}={completion}.");
  config_.mutable_openai()->set_likelihood_score_after(true);
  // Text "6+7=1.": the completion "1" is characters [4, 5), the marker "." [5, 6).
  server_.Push(EchoReply({"6+7", "=", "1", ".", "X"}, {nullptr, -0.5, -0.1, -4.0, -9.0}, {0, 3, 4, 5, 6}));
  const v1::Verdict verdict = ScoreOne(MakeSample("s", "6+7", "1"));
  ASSERT_FALSE(verdict.has_error()) << verdict.error().message();
  EXPECT_NEAR(verdict.reward(), (-0.1 - 4.0) / 2, 1e-12);
  EXPECT_EQ(verdict.components().at("completion_tokens"), 2);
  EXPECT_EQ(json::parse(server_.received()[0].body)["prompt"], "6+7=1.");
}

TEST_F(OpenAIModesTest, LikelihoodOffsetsInCharactersOrInBytes) {
  UseLikelihoodMode("{prompt}{completion}");
  // Text "pé4": the completion "é4" is characters [1, 3) and bytes [1, 4).
  server_.Push(EchoReply({"p", "é", "4", "X"}, {nullptr, -1.0, -3.0, -9.0}, {0, 1, 2, 3}));  // characters (the spec)
  server_.Push(EchoReply({"p", "é", "4", "X"}, {nullptr, -1.0, -3.0, -9.0}, {0, 1, 3, 4}));  // bytes
  auto backend = Make();
  ASSERT_NE(backend, nullptr);
  for (int i = 0; i < 2; ++i) {
    const std::vector<Judgement> judgements = backend->Score({MakeSample("s", "p", "é4")});
    ASSERT_FALSE(judgements[0].verdict.has_error()) << i << ": " << judgements[0].verdict.error().message();
    EXPECT_NEAR(judgements[0].verdict.reward(), -2.0, 1e-12) << i;
  }
}

TEST_F(OpenAIModesTest, LikelihoodFailuresAreErrors) {
  UseLikelihoodMode("{prompt}{completion}");
  server_.Push(TeacherReply{200, R"({"choices":[{"text":"x"}]})", {}, false});  // no logprobs
  server_.Push(EchoReply({"a", "b"}, {nullptr, -1.0}, {0}));                    // inconsistent arrays
  auto backend = Make();
  ASSERT_NE(backend, nullptr);
  const std::vector<Judgement> judgements =
      backend->Score({MakeSample("a", "p", "q"), MakeSample("b", "p", "q2"), MakeSample("empty", "p", "")});
  ASSERT_EQ(judgements.size(), 3u);
  for (const Judgement& judgement : judgements) ASSERT_TRUE(judgement.verdict.has_error());
  // Both asks go out concurrently: which gets which answer is not fixed, both are parse errors.
  EXPECT_EQ(judgements[0].verdict.error().kind(), "parse");
  EXPECT_EQ(judgements[1].verdict.error().kind(), "parse");
  EXPECT_EQ(judgements[2].verdict.error().kind(), "invalid");  // never sent
  EXPECT_EQ(server_.received().size(), 2u);
  UseLikelihoodMode("{prompt} only");
  EXPECT_TRUE(FailsWith(MakeJudgeBackend(config_), absl::StatusCode::kInvalidArgument, "{completion}"));
}

}  // namespace
}  // namespace rlj
