// judge_response_fuzzer.cc: libFuzzer target for what a teacher sends back: OpenAI chat completions (rubric
// and label modes), legacy completions with echoed log-probs (likelihood mode), Anthropic messages, and the
// score parser on free text. Any body gives a verdict or a verdict error, never a crash; a verdict that
// succeeded has a finite reward (inside the reward range when a scale applies), and every verdict crosses
// the wire (its strings are valid UTF-8).
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <string_view>

#include "common/log.h"
#include "judge/backends/anthropic_backend.h"
#include "judge/backends/openai_response.h"
#include "judge/rubric_scorer.h"
#include "judge/score_parser.h"

namespace {

const rlj::ScoreScale kScale{0, 10, -1, 1};

[[noreturn]] void Fail(const std::string& what, std::string_view input) {
  std::fprintf(stderr, "judge_response_fuzzer: %s\ninput: %.*s\n", what.c_str(), static_cast<int>(input.size()),
               input.data());
  std::abort();
}

const rlj::RubricScorer& Rubric() {
  static const rlj::RubricScorer* rubric = [] {
    auto created = rlj::RubricScorer::Create("judge.openai", "Grade {completion}", "", "score",
                                             R"(([-+]?[0-9]*\.?[0-9]+)\s*/\s*10)", kScale);
    if (!created.ok()) std::abort();
    return new rlj::RubricScorer(std::move(created).value());
  }();
  return *rubric;
}

void CheckVerdict(const rlj::Judgement& judgement, bool ok, bool scaled, std::string_view input) {
  const rlj::v1::Verdict& verdict = judgement.verdict;
  if (ok == verdict.has_error()) Fail("the reader's result and the verdict's error disagree", input);
  if (ok && !std::isfinite(verdict.reward())) Fail("a successful verdict with a non-finite reward", input);
  if (ok && scaled && (verdict.reward() < kScale.reward_min || verdict.reward() > kScale.reward_max)) {
    Fail("a successful verdict outside the reward range", input);
  }
  if (!ok && verdict.error().message().empty()) Fail("a verdict error without a message", input);
  std::string wire;
  rlj::v1::Verdict received;
  if (!verdict.SerializeToString(&wire) || !received.ParseFromString(wire)) {
    Fail("the verdict does not cross the wire (ill-formed UTF-8 in a string field?)", input);
  }
}

void CheckChatAnswer(const rlj::ChatAnswer& answer, std::string_view input) {
  if (answer.ok && answer.content.empty()) Fail("an ok answer without content", input);
  if (!answer.ok && answer.message.empty()) Fail("a failed answer without a message", input);
  rlj::Judgement judgement;
  const bool ok = Rubric().Read(answer, &judgement);
  CheckVerdict(judgement, ok, /*scaled=*/true, input);
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  (void)rlj::log::Init("fuzz", "off");
  return 0;
}

// The first byte picks the reader of the rest: 0 OpenAI chat completion, 1 Anthropic message, 2 label
// distribution, 3 echoed completion log-probs (the next four bytes give the completion's span), 4 free text
// for the score parser.
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  std::string body(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 5) {
    case 0:
      CheckChatAnswer(rlj::ReadChatCompletion(body), body);
      break;
    case 1:
      CheckChatAnswer(rlj::ReadAnthropicMessage(body), body);
      break;
    case 2: {
      static const std::map<std::string, double> kLabels{{"yes", 1.0}, {"no", 0.0}, {"partly", 0.5}};
      rlj::Judgement judgement;
      int64_t tokens_in = 0, tokens_out = 0;
      const bool ok = rlj::ReadLabelDistribution(body, kLabels, 0.5, &judgement, &tokens_in, &tokens_out);
      CheckVerdict(judgement, ok, /*scaled=*/false, body);
      if (ok && (judgement.verdict.reward() < -1e-9 || judgement.verdict.reward() > 1 + 1e-9)) {
        Fail("a label reward outside the labels' rewards", body);
      }
      break;
    }
    case 3: {
      if (body.size() < 4) return 0;
      rlj::CompletionSpan span;
      span.begin_bytes = static_cast<uint8_t>(body[0]);
      span.end_bytes = span.begin_bytes + static_cast<uint8_t>(body[1]);
      span.begin_chars = static_cast<uint8_t>(body[2]);
      span.end_chars = span.begin_chars + static_cast<uint8_t>(body[3]);
      body.erase(0, 4);
      rlj::Judgement judgement;
      int64_t tokens_in = 0, tokens_out = 0;
      const bool ok = rlj::ReadCompletionLikelihood(body, span, &judgement, &tokens_in, &tokens_out);
      CheckVerdict(judgement, ok, /*scaled=*/false, body);
      if (ok && judgement.verdict.reward() > 0) Fail("a mean log-probability above 0", body);
      break;
    }
    default: {
      static const rlj::ScoreParser* parser = [] {
        auto created = rlj::ScoreParser::Create("score", R"(Score:\s*(\S+))");
        if (!created.ok()) std::abort();
        return new rlj::ScoreParser(std::move(created).value());
      }();
      const rlj::ParsedScore parsed = parser->Parse(body);
      if (parsed.rationale.size() > rlj::kMaxRationaleBytes) Fail("a rationale over the limit", body);
      if (parsed.score.has_value() != !parsed.found_by.empty()) Fail("found_by disagrees with the score", body);
      if (parsed.score) {
        const absl::StatusOr<double> reward = rlj::ScaleScore(*parsed.score, kScale);
        if (reward.ok() && (!std::isfinite(*reward) || *reward < kScale.reward_min || *reward > kScale.reward_max)) {
          Fail("a scaled score outside the reward range", body);
        }
      }
      break;
    }
  }
  return 0;
}
