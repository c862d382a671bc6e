// sampler_test.cc: SampleCompletions: seeds, greedy against step-by-step full passes, top-k / top-p,
// stop tokens and strings, validation, and behaviour log-probs against the learner's recomputation.
#include "model/sampler.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <set>

#include "common/tokenizer/byte_tokenizer.h"
#include "model/logprobs.h"
#include "model/transformer.h"
#include "model_test_util.h"
#include "test_util.h"

namespace rlj {
namespace {

using ::rlj::testing::FailsWith;
using ::rlj::testing::MakeModel;
using ::rlj::testing::SmallConfig;
using ::rlj::testing::TokensTensor;

// Byte tokenizer semantics with a chosen <eos> id, to make a given token the end of sequence.
class EosTokenizer final : public Tokenizer {
 public:
  explicit EosTokenizer(int32_t eos) : eos_(eos) {}
  std::vector<int32_t> Encode(std::string_view text) const override { return bytes_.Encode(text); }
  absl::StatusOr<std::string> Decode(std::span<const int32_t> ids) const override { return bytes_.Decode(ids); }
  int32_t vocab_size() const override { return bytes_.vocab_size(); }
  int32_t bos_id() const override { return bytes_.bos_id(); }
  int32_t eos_id() const override { return eos_; }
  int32_t pad_id() const override { return bytes_.pad_id(); }

 private:
  ByteTokenizer bytes_;
  int32_t eos_;
};

std::vector<std::vector<int32_t>> Prompts() {
  return {{256, 'a', 'b'}, {256, 'h', 'e', 'l', 'l', 'o', ' ', 'w'}, {256}, {256, '1', '+', '2', '='}};
}

SamplingOptions Greedy(int max_new_tokens) {
  SamplingOptions options;
  options.temperature = 0;
  options.max_new_tokens = max_new_tokens;
  return options;
}

// Greedy decoding by repeated full forward passes over one growing sequence, stopping at <eos>.
std::vector<int32_t> ChainedArgmax(Transformer& model, std::vector<int32_t> sequence, int steps, int32_t eos) {
  torch::NoGradGuard no_grad;
  std::vector<int32_t> generated;
  for (int s = 0; s < steps; ++s) {
    const torch::Tensor tokens = torch::tensor(std::vector<int64_t>(sequence.begin(), sequence.end())).view({1, -1});
    const auto next = static_cast<int32_t>(model->forward(tokens)[0][-1].argmax().item<int64_t>());
    generated.push_back(next);
    sequence.push_back(next);
    if (next == eos) break;
  }
  return generated;
}

// The learner's computation: prompt + completion right-padded into one batch, one full pass with a key
// mask, TokenLogProbs at the completion positions.
std::vector<std::vector<float>> RecomputeLogProbs(Transformer& model, const std::vector<std::vector<int32_t>>& prompts,
                                                  const std::vector<SampledCompletion>& completions,
                                                  double temperature) {
  torch::NoGradGuard no_grad;
  const auto batch = static_cast<int64_t>(prompts.size());
  int64_t width = 0;
  for (int64_t b = 0; b < batch; ++b)
    width = std::max<int64_t>(width, prompts[b].size() + completions[b].tokens.size());
  torch::Tensor tokens = torch::full({batch, width}, ByteTokenizer::kPad, torch::kLong);
  torch::Tensor mask = torch::zeros({batch, width}, torch::kBool);
  for (int64_t b = 0; b < batch; ++b) {
    std::vector<int32_t> row = prompts[b];
    row.insert(row.end(), completions[b].tokens.begin(), completions[b].tokens.end());
    for (size_t i = 0; i < row.size(); ++i) {
      tokens[b][i] = row[i];
      mask[b][i] = true;
    }
  }
  const torch::Tensor logits = model->forward(tokens, {}, mask);
  const torch::Tensor logprobs =
      TokenLogProbs(logits.narrow(1, 0, width - 1), tokens.narrow(1, 1, width - 1), temperature);
  std::vector<std::vector<float>> result(batch);
  for (int64_t b = 0; b < batch; ++b) {
    const auto start = static_cast<int64_t>(prompts[b].size()) - 1;
    for (size_t j = 0; j < completions[b].tokens.size(); ++j) result[b].push_back(logprobs[b][start + j].item<float>());
  }
  return result;
}

void ExpectLogProbsMatchRecompute(Transformer& model, const std::vector<std::vector<int32_t>>& prompts,
                                  const std::vector<SampledCompletion>& completions, double temperature) {
  const auto recomputed = RecomputeLogProbs(model, prompts, completions, temperature > 0 ? temperature : 1.0);
  for (size_t b = 0; b < prompts.size(); ++b) {
    ASSERT_EQ(completions[b].logprobs.size(), completions[b].tokens.size());
    for (size_t j = 0; j < recomputed[b].size(); ++j) {
      EXPECT_NEAR(completions[b].logprobs[j], recomputed[b][j], 1e-4) << "row " << b << " token " << j;
      EXPECT_LE(completions[b].logprobs[j], 0.0f);
    }
  }
}

TEST(Sampler, SameSeedSameCompletionsDifferentSeedDiffers) {
  Transformer model = MakeModel(SmallConfig(), 1);
  ByteTokenizer tokenizer;
  SamplingOptions options;
  options.max_new_tokens = 20;
  options.seed = 42;
  RLJ_ASSERT_OK_AND_ASSIGN(const auto first, SampleCompletions(model, tokenizer, Prompts(), options));
  RLJ_ASSERT_OK_AND_ASSIGN(const auto second, SampleCompletions(model, tokenizer, Prompts(), options));
  options.seed = 43;
  RLJ_ASSERT_OK_AND_ASSIGN(const auto other, SampleCompletions(model, tokenizer, Prompts(), options));
  ASSERT_EQ(first.size(), 4u);
  bool any_difference = false;
  for (size_t b = 0; b < first.size(); ++b) {
    EXPECT_EQ(first[b].tokens, second[b].tokens);
    EXPECT_EQ(first[b].logprobs, second[b].logprobs);
    EXPECT_EQ(first[b].text, second[b].text);
    any_difference |= first[b].tokens != other[b].tokens;
  }
  EXPECT_TRUE(any_difference);
}

TEST(Sampler, LeavesTheGlobalGeneratorAlone) {
  Transformer model = MakeModel(SmallConfig(), 2);
  ByteTokenizer tokenizer;
  SamplingOptions options;
  options.max_new_tokens = 8;
  torch::manual_seed(5);
  const torch::Tensor expected = torch::rand({4});
  torch::manual_seed(5);
  RLJ_ASSERT_OK(SampleCompletions(model, tokenizer, Prompts(), options));
  EXPECT_TRUE(torch::equal(torch::rand({4}), expected));
}

TEST(Sampler, GreedyEqualsChainedArgmaxOfFullForward) {
  Transformer model = MakeModel(SmallConfig(2), 3, 0.3);
  ByteTokenizer tokenizer;
  const auto prompts = Prompts();
  RLJ_ASSERT_OK_AND_ASSIGN(const auto completions, SampleCompletions(model, tokenizer, prompts, Greedy(24)));
  for (size_t b = 0; b < prompts.size(); ++b) {
    EXPECT_EQ(completions[b].tokens, ChainedArgmax(model, prompts[b], 24, ByteTokenizer::kEos)) << "prompt " << b;
  }
  ExpectLogProbsMatchRecompute(model, prompts, completions, 1.0);
}

TEST(Sampler, TopKOneAndTinyTopPEqualGreedy) {
  Transformer model = MakeModel(SmallConfig(4, false), 4, 0.3);
  ByteTokenizer tokenizer;
  RLJ_ASSERT_OK_AND_ASSIGN(const auto greedy, SampleCompletions(model, tokenizer, Prompts(), Greedy(16)));
  SamplingOptions top_k;
  top_k.top_k = 1;
  top_k.max_new_tokens = 16;
  top_k.seed = 9;
  RLJ_ASSERT_OK_AND_ASSIGN(const auto by_top_k, SampleCompletions(model, tokenizer, Prompts(), top_k));
  SamplingOptions top_p;
  top_p.top_p = 1e-6;
  top_p.max_new_tokens = 16;
  top_p.seed = 10;
  RLJ_ASSERT_OK_AND_ASSIGN(const auto by_top_p, SampleCompletions(model, tokenizer, Prompts(), top_p));
  for (size_t b = 0; b < greedy.size(); ++b) {
    EXPECT_EQ(by_top_k[b].tokens, greedy[b].tokens) << b;
    EXPECT_EQ(by_top_p[b].tokens, greedy[b].tokens) << b;
    // Temperature 1 in all three: the recorded log-probs are of the full softmax, not the truncated one.
    EXPECT_EQ(by_top_k[b].logprobs, greedy[b].logprobs) << b;
  }
}

TEST(Sampler, TopKSamplesOnlyAmongTheKMostLikely) {
  Transformer model = MakeModel(SmallConfig(2), 5, 0.1);
  ByteTokenizer tokenizer;
  const auto prompts = Prompts();
  SamplingOptions options;
  options.top_k = 3;
  options.temperature = 2.0;  // flat, so without the filter other ids would show up
  options.max_new_tokens = 20;
  options.seed = 11;
  RLJ_ASSERT_OK_AND_ASSIGN(const auto completions, SampleCompletions(model, tokenizer, prompts, options));
  torch::NoGradGuard no_grad;
  for (size_t b = 0; b < prompts.size(); ++b) {
    std::vector<int64_t> sequence(prompts[b].begin(), prompts[b].end());
    for (const int32_t id : completions[b].tokens) {
      const torch::Tensor logits = model->forward(torch::tensor(sequence).view({1, -1}))[0][-1];
      const int64_t better = (logits > logits[id]).sum().item<int64_t>();
      EXPECT_LT(better, 3) << "prompt " << b << " sampled id " << id;
      sequence.push_back(id);
    }
  }
}

TEST(Sampler, TopPKeepsTheSmallestSetReachingTheMass) {
  Transformer model = MakeModel(SmallConfig(2), 6, 0.1);
  ByteTokenizer tokenizer;
  const auto prompts = Prompts();
  SamplingOptions options;
  options.top_p = 0.5;
  options.max_new_tokens = 20;
  options.seed = 12;
  RLJ_ASSERT_OK_AND_ASSIGN(const auto completions, SampleCompletions(model, tokenizer, prompts, options));
  torch::NoGradGuard no_grad;
  for (size_t b = 0; b < prompts.size(); ++b) {
    std::vector<int64_t> sequence(prompts[b].begin(), prompts[b].end());
    for (const int32_t id : completions[b].tokens) {
      const torch::Tensor probs = model->forward(torch::tensor(sequence).view({1, -1}))[0][-1].softmax(-1);
      // The mass of the ids more likely than the sampled one must be below top_p.
      const double mass_before = probs.masked_select(probs > probs[id]).sum().item<double>();
      EXPECT_LT(mass_before, 0.5 + 1e-5) << "prompt " << b << " sampled id " << id;
      sequence.push_back(id);
    }
  }
}

TEST(Sampler, BehaviourLogProbsMatchLearnerRecompute) {
  Transformer model = MakeModel(SmallConfig(2), 7);
  ByteTokenizer tokenizer;
  const std::vector<std::vector<int32_t>> prompts = {{256},
                                                     {256, 'x', 'y'},
                                                     {256, 'a', 'b', 'c', 'd', 'e'},
                                                     {256, '9', '8', '7', '6', '5', '4', '3', '2'},
                                                     {256, 'q', 'r', 's'},
                                                     {256, 'm'}};
  for (const double temperature : {1.0, 0.7, 0.0}) {
    SamplingOptions options;
    options.temperature = temperature;
    options.top_p = temperature == 0.7 ? 0.9 : 1.0;
    options.max_new_tokens = 24;
    options.seed = 100;
    for (int32_t id = 0; id < 30; ++id) options.stop_token_ids.push_back(id);  // rows stop at different steps
    RLJ_ASSERT_OK_AND_ASSIGN(const auto completions, SampleCompletions(model, tokenizer, prompts, options));
    ExpectLogProbsMatchRecompute(model, prompts, completions, temperature);
    // Sampled rows finished at different steps, so finished rows were dropped from the batch on the way.
    std::set<size_t> lengths;
    for (const auto& completion : completions) lengths.insert(completion.tokens.size());
    if (temperature > 0) {
      EXPECT_GE(lengths.size(), 3u) << "temperature " << temperature;
    }
  }
}

TEST(Sampler, StopTokenEndsTheCompletion) {
  Transformer model = MakeModel(SmallConfig(2), 8, 0.3);
  ByteTokenizer tokenizer;
  const std::vector<std::vector<int32_t>> prompt = {{256, 'k'}};
  RLJ_ASSERT_OK_AND_ASSIGN(const auto reference, SampleCompletions(model, tokenizer, prompt, Greedy(12)));
  const std::vector<int32_t>& tokens = reference[0].tokens;
  ASSERT_EQ(tokens.size(), 12u);
  ASSERT_EQ(reference[0].finish, FinishReason::kLength);
  EXPECT_TRUE(reference[0].truncated());

  SamplingOptions options = Greedy(12);
  options.stop_token_ids = {tokens[4]};
  RLJ_ASSERT_OK_AND_ASSIGN(const auto stopped, SampleCompletions(model, tokenizer, prompt, options));
  const size_t end = std::find(tokens.begin(), tokens.end(), tokens[4]) - tokens.begin() + 1;
  EXPECT_EQ(stopped[0].tokens, std::vector<int32_t>(tokens.begin(), tokens.begin() + end));
  EXPECT_EQ(stopped[0].logprobs,
            std::vector<float>(reference[0].logprobs.begin(), reference[0].logprobs.begin() + end));
  EXPECT_EQ(stopped[0].finish, FinishReason::kStopToken);
  EXPECT_FALSE(stopped[0].truncated());
  RLJ_ASSERT_OK_AND_ASSIGN(const std::string before_stop,
                           tokenizer.Decode(std::span<const int32_t>(tokens).first(end - 1)));
  EXPECT_EQ(stopped[0].text, before_stop);

  // The tokenizer's <eos> stops without being listed.
  EosTokenizer eos_tokenizer(tokens[2]);
  RLJ_ASSERT_OK_AND_ASSIGN(const auto by_eos, SampleCompletions(model, eos_tokenizer, prompt, Greedy(12)));
  const size_t eos_end = std::find(tokens.begin(), tokens.end(), tokens[2]) - tokens.begin() + 1;
  EXPECT_EQ(by_eos[0].tokens, std::vector<int32_t>(tokens.begin(), tokens.begin() + eos_end));
  EXPECT_EQ(by_eos[0].finish, FinishReason::kStopToken);
}

TEST(Sampler, StopStringEndsTheCompletion) {
  Transformer model = MakeModel(SmallConfig(2), 9, 0.3);
  ByteTokenizer tokenizer;
  const std::vector<std::vector<int32_t>> prompt = {{256, 'z'}};
  RLJ_ASSERT_OK_AND_ASSIGN(const auto reference, SampleCompletions(model, tokenizer, prompt, Greedy(16)));
  const std::string& text = reference[0].text;
  ASSERT_GE(text.size(), 8u) << "the greedy completion should be mostly bytes";
  const std::string stop = text.substr(4, 2);
  const std::string later = text.substr(6, 2);  // a second stop string that occurs later never wins

  SamplingOptions options = Greedy(16);
  options.stop_strings = {later, stop};
  RLJ_ASSERT_OK_AND_ASSIGN(const auto stopped, SampleCompletions(model, tokenizer, prompt, options));
  const size_t cut = std::min(text.find(stop), text.find(later));
  // The completion ends with the token that completed the first occurrence.
  size_t end = 0;
  while (true) {
    ++end;
    ASSERT_LE(end, reference[0].tokens.size());
    RLJ_ASSERT_OK_AND_ASSIGN(const std::string prefix,
                             tokenizer.Decode(std::span<const int32_t>(reference[0].tokens).first(end)));
    if (prefix.find(stop) != std::string::npos || prefix.find(later) != std::string::npos) break;
  }
  EXPECT_EQ(stopped[0].finish, FinishReason::kStopString);
  EXPECT_EQ(stopped[0].tokens, std::vector<int32_t>(reference[0].tokens.begin(), reference[0].tokens.begin() + end));
  EXPECT_EQ(stopped[0].text, text.substr(0, cut));
}

TEST(Sampler, LengthLimitAndBatchEqualsEachPromptAlone) {
  Transformer model = MakeModel(SmallConfig(2), 10, 0.3);
  ByteTokenizer tokenizer;
  const auto prompts = Prompts();
  SamplingOptions options = Greedy(10);
  // Stop on a few frequent ids so that rows finish at different steps and leave the batch.
  RLJ_ASSERT_OK_AND_ASSIGN(const auto free_run, SampleCompletions(model, tokenizer, prompts, options));
  for (const auto& completion : free_run) {
    if (completion.finish == FinishReason::kLength) {
      EXPECT_EQ(completion.tokens.size(), 10u);
    }
    options.stop_token_ids.push_back(completion.tokens[1]);
  }
  RLJ_ASSERT_OK_AND_ASSIGN(const auto batched, SampleCompletions(model, tokenizer, prompts, options));
  for (size_t b = 0; b < prompts.size(); ++b) {
    RLJ_ASSERT_OK_AND_ASSIGN(const auto alone, SampleCompletions(model, tokenizer, {prompts[b]}, options));
    EXPECT_EQ(batched[b].tokens, alone[0].tokens) << b;
    EXPECT_EQ(batched[b].text, alone[0].text) << b;
    EXPECT_EQ(batched[b].finish, alone[0].finish) << b;
    ASSERT_EQ(batched[b].logprobs.size(), alone[0].logprobs.size());
    for (size_t j = 0; j < alone[0].logprobs.size(); ++j)
      EXPECT_NEAR(batched[b].logprobs[j], alone[0].logprobs[j], 1e-4);
    EXPECT_LE(batched[b].tokens.size(), 2u);
  }
}

TEST(Sampler, RejectsBadRequests) {
  Transformer model = MakeModel(SmallConfig(), 11);  // vocab 259, max_seq_len 64
  ByteTokenizer tokenizer;
  const auto code = absl::StatusCode::kInvalidArgument;
  SamplingOptions options;
  options.max_new_tokens = 4;
  EXPECT_TRUE(FailsWith(SampleCompletions(model, tokenizer, {{256}, {}}, options), code, "prompt 1 is empty"));
  EXPECT_TRUE(
      FailsWith(SampleCompletions(model, tokenizer, {{256, 259}}, options), code, "token id 259 at position 1"));
  EXPECT_TRUE(FailsWith(SampleCompletions(model, tokenizer, {{-1}}, options), code, "outside the vocabulary"));
  EXPECT_TRUE(
      FailsWith(SampleCompletions(model, tokenizer, {std::vector<int32_t>(61, 'a')}, options), code, "max_seq_len"));
  RLJ_EXPECT_OK(SampleCompletions(model, tokenizer, {std::vector<int32_t>(60, 'a')}, options));
  auto with = [&](auto change) {
    SamplingOptions changed = options;
    change(changed);
    return SampleCompletions(model, tokenizer, {{256}}, changed);
  };
  EXPECT_TRUE(FailsWith(with([](auto& o) { o.temperature = -1; }), code, "temperature"));
  EXPECT_TRUE(FailsWith(with([](auto& o) { o.top_k = -1; }), code, "top_k"));
  EXPECT_TRUE(FailsWith(with([](auto& o) { o.top_p = 0; }), code, "top_p"));
  EXPECT_TRUE(FailsWith(with([](auto& o) { o.top_p = 1.5; }), code, "top_p"));
  EXPECT_TRUE(FailsWith(with([](auto& o) { o.max_new_tokens = 0; }), code, "max_new_tokens"));
  EXPECT_TRUE(FailsWith(with([](auto& o) { o.stop_strings = {""}; }), code, "stop strings"));
  EXPECT_TRUE(FailsWith(with([](auto& o) { o.stop_token_ids = {300}; }), code, "stop token id 300"));
  EXPECT_TRUE(FailsWith(SampleCompletions(model, EosTokenizer(300), {{256}}, options), code,
                        "the tokenizer's stop id 300 is outside the model's vocabulary (0..258)"));
  RLJ_ASSERT_OK_AND_ASSIGN(const auto none, SampleCompletions(model, tokenizer, {}, options));
  EXPECT_TRUE(none.empty());
}

}  // namespace
}  // namespace rlj
