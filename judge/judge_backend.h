// judge_backend.h: the interface every judge backend implements (rule, openai, anthropic, command, remote,
// ensemble), what one verdict carries besides the wire Verdict, and the spelling of error kinds.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "common/wire_bounds.h"
#include "rlj/v1/judge.pb.h"

namespace rlj {

struct Judgement {
  v1::Verdict verdict;       // sent back to the actor; verdict.error set iff the sample failed
  std::string raw_response;  // the teacher's answer as received (reward log only, never sent back)
};

// What the judge knows of the run when it starts, for backends that must check the teacher against it.
struct JudgeStartContext {
  std::string student_tokenizer;              // how the student's tokenizer is named in messages
  std::string student_tokenizer_fingerprint;  // TokenizerFingerprint of it
};

class JudgeBackend {
 public:
  virtual ~JudgeBackend() = default;

  // "rule", "openai", …: stored with every verdict.
  virtual std::string name() const = 0;

  // The model that judges ("gpt-4o-mini"), or a short description of the rule ("numeric"); stored with every
  // verdict whose backend left verdict.model empty.
  virtual std::string model() const { return {}; }

  // Exactly one Judgement per sample, in order. A failure on one sample is an error in its verdict, never
  // a reward of 0 and never a failure of the whole batch. Called concurrently from several threads.
  virtual std::vector<Judgement> Score(const std::vector<v1::Sample>& samples) = 0;

  // Adds this backend's live state (and its parts': ensemble components, failover) to `status`, merging
  // into the entry of the same name when the usage ledger already made one. Thread-safe.
  virtual void CollectStatus(v1::JudgeStatus* /*status*/) const {}

  // Called once before the judge serves: a backend that cannot work with this run (a teacher with another
  // vocabulary, an API without what the mode needs) refuses here, with a message naming the backend and why.
  // Composite backends check their parts. May talk to the teacher.
  virtual absl::Status CheckAtStart(const JudgeStartContext& /*context*/) { return absl::OkStatus(); }
};

// The entry for `name` in status->backends(), added when missing.
v1::JudgeBackendStatus* BackendStatusEntry(v1::JudgeStatus* status, const std::string& name);

// The kinds of SampleError.kind (judge.proto), one spelling for every backend.
namespace error_kind {
inline constexpr char kTimeout[] = "timeout";
inline constexpr char kHttpError[] = "http_error";
inline constexpr char kRateLimited[] = "rate_limited";
inline constexpr char kParse[] = "parse";
inline constexpr char kOutOfRange[] = "out_of_range";
inline constexpr char kRefusal[] = "refusal";
inline constexpr char kBackend[] = "backend";
inline constexpr char kInvalid[] = "invalid";
inline constexpr char kBudget[] = "budget";             // the judge's budget is spent
inline constexpr char kCircuitOpen[] = "circuit_open";  // the backend's circuit breaker is open
inline constexpr char kUnavailable[] = "unavailable";   // a command or remote judge could not be reached

// Kinds that say the backend could not be reached (not that the sample is bad): a failover backend gets
// these samples.
bool IsAvailabilityError(const std::string& kind);
// The same for a verdict's error, which also knows its code: an http_error is an availability error only when
// the server could not be reached or answered 5xx (UNAVAILABLE, DEADLINE_EXCEEDED). A 4xx (a wrong key, a
// refused request) is the request's own failure: masked, never waited out as an outage.
bool IsAvailabilityError(const v1::SampleError& error);
}  // namespace error_kind

// Sample metadata that asks for a second opinion: a caching backend skips its lookup and asks the teacher
// (the answer may still be stored). Self-consistency checks and offline rescoring set it.
inline constexpr char kBypassCacheMetadataKey[] = "rlj.bypass_cache";
void AskForSecondOpinion(v1::Sample* sample);  // sets the mark
inline bool BypassesCache(const v1::Sample& sample) {
  const auto found = sample.metadata().find(kBypassCacheMetadataKey);
  return found != sample.metadata().end() && found->second == "1";
}

// Holds a backend's verdict to the contract: an error has a code and a kind, and its reward is 0 on the wire;
// a success has a finite reward within ±kMaxAbsReward and finite components (anything else becomes an error:
// NaN/inf reward or component → "invalid", a huge reward → "out_of_range"). No NaN or infinity is left in
// any field: non-finite components of a failed verdict are dropped; a non-finite or negative cost_usd and a
// non-finite latency_ms become 0.
void NormalizeVerdict(v1::Verdict* verdict);

// Marks `verdict` as failed: code (never OK), kind (one of error_kind) and a message for people.
inline void SetVerdictError(v1::Verdict* verdict, absl::StatusCode code, std::string kind, std::string message) {
  if (code == absl::StatusCode::kOk) code = absl::StatusCode::kUnknown;
  verdict->set_reward(0);
  v1::SampleError* error = verdict->mutable_error();
  error->set_code(static_cast<int32_t>(code));
  error->set_kind(std::move(kind));
  error->set_message(std::move(message));
}

}  // namespace rlj
