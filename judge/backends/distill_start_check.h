// distill_start_check.h: before the judge serves in distill mode, refuses a teacher whose per-token signal
// would be wrong or missing: a hosted API that gives no log-probabilities of given tokens, a teacher with
// another vocabulary than the student's (both named), or a server that does not answer a token-id echo request.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "judge/http/http_client.h"
#include "judge/judge_backend.h"
#include "rlj/v1/config.pb.h"

namespace rlj {

struct DistillTeacher {
  const v1::OpenAIJudgeConfig* config = nullptr;
  std::string section;   // "judge.openai", for messages
  std::string base_url;  // without a trailing '/'
  std::vector<std::pair<std::string, std::string>> headers;
};

// FailedPrecondition naming the section, the backend and the mode when the teacher cannot serve distill mode
// for this student; Unavailable when the teacher could not be reached for `wait` (it may still be starting).
absl::Status CheckDistillTeacher(const DistillTeacher& teacher, const JudgeStartContext& context, HttpClient& http,
                                 std::chrono::milliseconds wait = std::chrono::seconds(60));

}  // namespace rlj
