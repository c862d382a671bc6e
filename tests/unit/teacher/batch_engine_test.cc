// batch_engine_test.cc: the teacher's batch engine on a tiny real model: log-probs equal the model's own
// log-softmax, greedy decoding follows the argmax, echo scores every prompt token, concurrent requests share
// forward passes (counted), identical greedy requests are computed once, seeds reproduce, stop strings cut.
#include "teacher/batch_engine.h"

#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <vector>

#include "teacher_test_util.h"
#include "test_util.h"

namespace rlj::teacher {
namespace {

using rlj::testing::RankedIds;
using rlj::testing::ReferenceNextLogprobs;
using rlj::testing::TinyTeacher;

GenerationRequest Greedy(const std::vector<int32_t>& prompt, int max_tokens) {
  GenerationRequest request;
  request.prompt = prompt;
  request.params.max_tokens = max_tokens;
  request.params.temperature = 0;
  return request;
}

std::vector<int32_t> Prompt(const TinyTeacher& t, const std::string& text) { return t.tokenizer.EncodePrompt(text); }

TEST(BatchEngine, GreedyTokensAndLogprobsMatchTheModelsLogSoftmax) {
  TinyTeacher t({}, /*serve=*/false);
  GenerationRequest request = Greedy(Prompt(t, "12+34="), 4);
  request.params.logprobs = true;
  request.params.top_logprobs = 5;
  RLJ_ASSERT_OK_AND_ASSIGN(GenerationResult result, t.engine->Generate(request));
  ASSERT_EQ(result.choices.size(), 1u);
  const GeneratedChoice& choice = result.choices[0];
  ASSERT_FALSE(choice.tokens.empty());
  ASSERT_EQ(choice.logprobs.size(), choice.tokens.size());

  // Every generated token is the argmax of a full forward pass over the sequence so far, and its log-prob and
  // alternatives are that pass's log-softmax.
  std::vector<int32_t> sequence = request.prompt;
  for (size_t i = 0; i < choice.tokens.size(); ++i) {
    const std::vector<double> reference = ReferenceNextLogprobs(t.model, sequence);
    const std::vector<int32_t> ranked = RankedIds(reference, 5);
    EXPECT_EQ(choice.tokens[i], ranked[0]) << "position " << i;
    EXPECT_NEAR(choice.logprobs[i].logprob, reference[choice.tokens[i]], 1e-4);
    ASSERT_EQ(choice.logprobs[i].top.size(), 5u);
    for (size_t k = 0; k < 5; ++k) {
      EXPECT_EQ(choice.logprobs[i].top[k].id, ranked[k]) << "position " << i << " rank " << k;
      EXPECT_NEAR(choice.logprobs[i].top[k].logprob, reference[ranked[k]], 1e-4);
    }
    sequence.push_back(choice.tokens[i]);
  }
  if (choice.finish == FinishReason::kLength) {
    EXPECT_EQ(choice.generated_tokens, 4);
  }
  RLJ_ASSERT_OK_AND_ASSIGN(std::string decoded, t.tokenizer.Decode(choice.tokens));
  EXPECT_EQ(choice.text, decoded);
}

TEST(BatchEngine, EchoScoresEveryPromptTokenAfterTheFirst) {
  TinyTeacher t({}, /*serve=*/false);
  GenerationRequest request = Greedy(Prompt(t, "7+8=15"), 0);
  request.params.prompt_logprobs = true;
  request.params.prompt_top_logprobs = 2;
  RLJ_ASSERT_OK_AND_ASSIGN(GenerationResult result, t.engine->Generate(request));
  ASSERT_EQ(result.prompt_logprobs.size(), request.prompt.size() - 1);
  for (size_t i = 1; i < request.prompt.size(); ++i) {
    const std::vector<double> reference =
        ReferenceNextLogprobs(t.model, std::vector<int32_t>(request.prompt.begin(), request.prompt.begin() + i));
    const PositionLogprobs& scored = result.prompt_logprobs[i - 1];
    EXPECT_EQ(scored.id, request.prompt[i]);
    EXPECT_NEAR(scored.logprob, reference[request.prompt[i]], 1e-4) << "prompt position " << i;
    ASSERT_EQ(scored.top.size(), 2u);
    EXPECT_EQ(scored.top[0].id, RankedIds(reference, 1)[0]);
  }
  // max_tokens 0: nothing generated.
  ASSERT_EQ(result.choices.size(), 1u);
  EXPECT_TRUE(result.choices[0].tokens.empty());
  EXPECT_EQ(result.choices[0].generated_tokens, 0);
}

TEST(BatchEngine, ConcurrentRequestsShareForwardPasses) {
  // A batch of 8 runs as soon as 8 requests are queued; the wait is long enough that it never closes early.
  BatchEngineOptions options;
  options.max_batch = 8;
  options.batch_wait = std::chrono::minutes(10);
  TinyTeacher t(options, /*serve=*/false);
  constexpr int kMaxTokens = 5;
  std::vector<std::future<absl::StatusOr<GenerationResult>>> futures;
  std::vector<GenerationRequest> requests;
  for (int i = 0; i < 8; ++i) {
    // Different prompts (and lengths), so nothing is merged; seeded sampling, so rows run their full length
    // unless they sample <eos>.
    GenerationRequest request;
    request.prompt = Prompt(t, std::string(static_cast<size_t>(1 + i), static_cast<char>('a' + i)));
    request.params.max_tokens = kMaxTokens;
    request.params.temperature = 1.0;
    request.params.seed = 100 + static_cast<uint64_t>(i);
    requests.push_back(request);
    futures.push_back(t.engine->Submit(request));
  }
  int longest = 0;
  std::vector<GenerationResult> batched;
  for (auto& future : futures) {
    RLJ_ASSERT_OK_AND_ASSIGN(GenerationResult result, future.get());
    longest = std::max(longest, result.choices.at(0).generated_tokens);
    batched.push_back(std::move(result));
  }
  const BatchEngineStats stats = t.engine->stats();
  EXPECT_EQ(stats.batches, 1);
  EXPECT_EQ(stats.requests, 8);
  EXPECT_EQ(stats.computed_rows, 8);
  // One prefill for all eight, then one pass per further token of the longest completion: at most 5 passes
  // where eight separate requests would have taken up to 40.
  EXPECT_EQ(stats.forward_passes, longest);
  EXPECT_LE(stats.forward_passes, kMaxTokens);

  // Each result equals what the same request gets when it runs alone (batching changes nothing).
  BatchEngineOptions alone_options;
  alone_options.max_batch = 1;
  alone_options.batch_wait = std::chrono::milliseconds(0);
  TinyTeacher alone(alone_options, /*serve=*/false);
  for (size_t i = 0; i < requests.size(); ++i) {
    RLJ_ASSERT_OK_AND_ASSIGN(GenerationResult single, alone.engine->Generate(requests[i]));
    EXPECT_EQ(batched[i].choices[0].tokens, single.choices[0].tokens) << "request " << i;
  }
}

TEST(BatchEngine, IdenticalGreedyRequestsAreComputedOnce) {
  BatchEngineOptions options;
  options.max_batch = 6;
  options.batch_wait = std::chrono::minutes(10);
  TinyTeacher t(options, /*serve=*/false);
  std::vector<std::future<absl::StatusOr<GenerationResult>>> futures;
  for (int i = 0; i < 6; ++i) {
    // Three distinct grading prompts, each asked twice (as the judge does for identical completions of a group).
    GenerationRequest request = Greedy(Prompt(t, "1+1=" + std::to_string(2 + i % 3) + "?"), 1);
    request.params.logprobs = true;
    request.params.top_logprobs = 3;
    futures.push_back(t.engine->Submit(request));
  }
  std::vector<GenerationResult> results;
  for (auto& future : futures) {
    RLJ_ASSERT_OK_AND_ASSIGN(GenerationResult result, future.get());
    results.push_back(result);
  }
  const BatchEngineStats stats = t.engine->stats();
  EXPECT_EQ(stats.batches, 1);
  EXPECT_EQ(stats.rows, 6);
  EXPECT_EQ(stats.computed_rows, 3);
  EXPECT_EQ(stats.forward_passes, 1);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(results[i].choices[0].tokens, results[i + 3].choices[0].tokens);
    EXPECT_EQ(results[i].choices[0].logprobs[0].logprob, results[i + 3].choices[0].logprobs[0].logprob);
  }
}

TEST(BatchEngine, SeedsReproduceAndChoicesDiffer) {
  TinyTeacher t({}, /*serve=*/false);
  GenerationRequest request;
  request.prompt = Prompt(t, "hello");
  request.params.max_tokens = 8;
  request.params.temperature = 1.5;
  request.params.seed = 42;
  request.params.n = 3;
  RLJ_ASSERT_OK_AND_ASSIGN(GenerationResult first, t.engine->Generate(request));
  RLJ_ASSERT_OK_AND_ASSIGN(GenerationResult second, t.engine->Generate(request));
  ASSERT_EQ(first.choices.size(), 3u);
  for (size_t c = 0; c < 3; ++c) EXPECT_EQ(first.choices[c].tokens, second.choices[c].tokens) << "choice " << c;
  // Choice i draws with seed + i: at temperature 1.5 over 8 tokens the three differ.
  EXPECT_FALSE(first.choices[0].tokens == first.choices[1].tokens &&
               first.choices[1].tokens == first.choices[2].tokens);
  // Choice 1 of seed 42 is choice 0 of seed 43.
  request.params.seed = 43;
  request.params.n = 1;
  RLJ_ASSERT_OK_AND_ASSIGN(GenerationResult shifted, t.engine->Generate(request));
  EXPECT_EQ(shifted.choices[0].tokens, first.choices[1].tokens);
}

TEST(BatchEngine, StopStringCutsTheTextAndItsTokens) {
  TinyTeacher t({}, /*serve=*/false);
  // Find what the model says greedily, then stop on a piece of it.
  RLJ_ASSERT_OK_AND_ASSIGN(GenerationResult free_run, t.engine->Generate(Greedy(Prompt(t, "ab"), 12)));
  const std::string text = free_run.choices[0].text;
  ASSERT_GE(text.size(), 3u) << "the tiny model should write a few bytes greedily; got '" << text << "'";
  const std::string stop = text.substr(2, 1);
  const size_t cut = text.find(stop);
  GenerationRequest request = Greedy(Prompt(t, "ab"), 12);
  request.params.stop = {stop};
  request.params.logprobs = true;
  RLJ_ASSERT_OK_AND_ASSIGN(GenerationResult result, t.engine->Generate(request));
  const GeneratedChoice& choice = result.choices[0];
  EXPECT_EQ(choice.finish, FinishReason::kStopString);
  EXPECT_EQ(choice.text, text.substr(0, cut));
  EXPECT_EQ(choice.tokens.size(), cut);  // byte tokens: one per byte before the cut
  EXPECT_EQ(choice.logprobs.size(), choice.tokens.size());
  EXPECT_EQ(choice.generated_tokens, static_cast<int>(cut) + 1);
}

TEST(BatchEngine, RejectsRequestsThatCannotRun) {
  TinyTeacher t({}, /*serve=*/false);
  EXPECT_TRUE(rlj::testing::FailsWith(t.engine->Generate(Greedy({}, 1)), absl::StatusCode::kInvalidArgument, "empty"));
  EXPECT_TRUE(rlj::testing::FailsWith(t.engine->Generate(Greedy({256, 999}, 1)), absl::StatusCode::kInvalidArgument,
                                      "outside the vocabulary"));
  EXPECT_TRUE(rlj::testing::FailsWith(t.engine->Generate(Greedy(Prompt(t, "0123456789"), 40)),
                                      absl::StatusCode::kInvalidArgument, "maximum context length is 48"));
  GenerationRequest hot = Greedy(Prompt(t, "x"), 1);
  hot.params.temperature = 3;
  EXPECT_TRUE(rlj::testing::FailsWith(t.engine->Generate(hot), absl::StatusCode::kInvalidArgument, "temperature"));
  GenerationRequest many = Greedy(Prompt(t, "x"), 1);
  many.params.top_logprobs = 21;
  EXPECT_TRUE(rlj::testing::FailsWith(t.engine->Generate(many), absl::StatusCode::kInvalidArgument, "top_logprobs"));
}

TEST(BatchEngine, MixedLengthsThatDoNotFitOneCacheRunInParts) {
  // 40 prompt tokens + 2 and 3 prompt tokens + 40 fit the context of 48 alone but not in one left-padded cache.
  BatchEngineOptions options;
  options.max_batch = 2;
  options.batch_wait = std::chrono::minutes(10);
  TinyTeacher t(options, /*serve=*/false);
  auto long_prompt = t.engine->Submit(Greedy(Prompt(t, std::string(39, 'x')), 2));
  auto long_answer = t.engine->Submit(Greedy(Prompt(t, "yz"), 40));
  RLJ_ASSERT_OK_AND_ASSIGN(GenerationResult a, long_prompt.get());
  RLJ_ASSERT_OK_AND_ASSIGN(GenerationResult b, long_answer.get());
  EXPECT_EQ(t.engine->stats().batches, 1);
  EXPECT_GE(t.engine->stats().forward_passes, 2);  // two prefills
  EXPECT_GE(a.choices[0].generated_tokens, 1);
  EXPECT_GE(b.choices[0].generated_tokens, 1);
}

TEST(BatchEngine, StopAnswersQueuedRequestsUnavailable) {
  BatchEngineOptions options;
  options.max_batch = 4;
  options.batch_wait = std::chrono::minutes(10);  // never closes on its own with one request
  TinyTeacher t(options, /*serve=*/false);
  auto waiting = t.engine->Submit(Greedy(Prompt(t, "q"), 1));
  t.engine->Stop();
  EXPECT_TRUE(rlj::testing::FailsWith(waiting.get(), absl::StatusCode::kUnavailable, "shutting down"));
  EXPECT_TRUE(rlj::testing::FailsWith(t.engine->Generate(Greedy(Prompt(t, "q"), 1)), absl::StatusCode::kUnavailable,
                                      "shutting down"));
}

}  // namespace
}  // namespace rlj::teacher
