// distill_start_check.cc: the three refusals of distill mode at start: hosted APIs without prompt log-probs,
// a vocabulary that differs from the student's, and a teacher that does not score token ids.
#include "judge/backends/distill_start_check.h"

#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "common/tokenizer/tokenizer.h"
#include "common/tokenizer/tokenizer_fingerprint.h"
#include "judge/backends/token_logprobs.h"
#include "judge/score_parser.h"
#include "nlohmann/json.hpp"

namespace rlj {
namespace {

using nlohmann::json;

std::string Prefix(const DistillTeacher& teacher) {
  return absl::StrCat(teacher.section, " (backend openai, mode distill): ");
}

// Hosted APIs known to give no log-probabilities of tokens they did not generate.
absl::Status RefuseHostedApi(const DistillTeacher& teacher) {
  for (const char* host : {"://api.openai.com", "://api.anthropic.com"}) {
    if (absl::StrContains(teacher.base_url, host)) {
      return absl::FailedPreconditionError(absl::StrCat(
          Prefix(teacher), teacher.base_url,
          " gives no log-probabilities of given tokens (a token-id prompt with echo and logprobs on /completions); "
          "serve the teacher with vLLM or `rlj teacher`, or use another judge.openai.mode"));
    }
  }
  return absl::OkStatus();
}

// One request, retried while the teacher cannot be reached (it may still be starting) until `until`.
absl::StatusOr<HttpResponse> SendPatiently(HttpClient& http, HttpRequest request,
                                           std::chrono::steady_clock::time_point until) {
  request.timeout = std::chrono::milliseconds(10000);
  while (true) {
    absl::StatusOr<HttpResponse> response = http.Send(request);
    if (response.ok() || std::chrono::steady_clock::now() >= until) return response;
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
}

// The teacher's tokenizer fingerprint and its name: from judge.openai.teacher_tokenizer when set, else from
// the rlj_tokenizer field `rlj teacher` adds to its /models entry.
absl::StatusOr<std::pair<std::string, std::string>> TeacherFingerprint(const DistillTeacher& teacher, HttpClient& http,
                                                                       std::chrono::steady_clock::time_point until) {
  if (teacher.config->has_teacher_tokenizer()) {
    absl::StatusOr<std::unique_ptr<Tokenizer>> tokenizer = LoadTokenizer(teacher.config->teacher_tokenizer());
    if (!tokenizer.ok()) return Annotate(tokenizer.status(), absl::StrCat(teacher.section, ".teacher_tokenizer"));
    return std::make_pair(TokenizerFingerprint(**tokenizer), teacher.config->teacher_tokenizer());
  }
  HttpRequest request{"GET", teacher.base_url + "/models", teacher.headers, "", {}};
  RLJ_ASSIGN_OR_RETURN(HttpResponse response, SendPatiently(http, request, until));
  const json body = json::parse(response.body, nullptr, /*allow_exceptions=*/false);
  if (response.status == 200 && body.is_object() && body.contains("data") && body["data"].is_array()) {
    for (const json& model : body["data"]) {
      if (!model.is_object() || model.value("id", "") != teacher.config->model()) continue;
      const json info = model.value("rlj_tokenizer", json::object());
      if (info.is_object() && info.contains("fingerprint") && info["fingerprint"].is_string()) {
        return std::make_pair(info["fingerprint"].get<std::string>(),
                              absl::StrCat(info.value("kind", "?"), " tokenizer of '", teacher.config->model(), "'"));
      }
    }
  }
  return absl::FailedPreconditionError(absl::StrCat(
      Prefix(teacher), "cannot tell which tokenizer the teacher uses: ", teacher.base_url, "/models (HTTP ",
      response.status, ") reports no rlj_tokenizer fingerprint for model '", teacher.config->model(), "'; set ",
      teacher.section, ".teacher_tokenizer to the teacher's tokenizer.json (or byte)"));
}

// A two-token echo request: the teacher must give a log-probability for the second token.
absl::Status ProbeTokenIds(const DistillTeacher& teacher, HttpClient& http,
                           std::chrono::steady_clock::time_point until) {
  v1::Sample probe;
  probe.add_prompt_token_ids(1);
  probe.add_completion_token_ids(2);
  HttpRequest request{"POST",
                      teacher.base_url + "/completions",
                      teacher.headers,
                      DistillRequestBody(teacher.config->model(), {&probe}),
                      {}};
  request.headers.emplace_back("Content-Type", "application/json");
  RLJ_ASSIGN_OR_RETURN(HttpResponse response, SendPatiently(http, request, until));
  int64_t tokens_in = 0, tokens_out = 0;
  absl::StatusOr<std::vector<std::vector<float>>> read =
      response.status == 200 ? ReadEchoedTokenLogprobs(response.body, {&probe}, &tokens_in, &tokens_out)
                             : absl::Status(absl::StatusCode::kFailedPrecondition, "");
  if (read.ok() && !std::isnan((*read)[0][0])) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat(
      Prefix(teacher), teacher.base_url,
      "/completions does not give log-probabilities of a token-id prompt (echo, logprobs): HTTP ", response.status,
      read.ok() ? ", no value for the prompt's token" : "", ": ", TruncateUtf8(response.body, 300)));
}

}  // namespace

absl::Status CheckDistillTeacher(const DistillTeacher& teacher, const JudgeStartContext& context, HttpClient& http,
                                 std::chrono::milliseconds wait) {
  RLJ_RETURN_IF_ERROR(RefuseHostedApi(teacher));
  const auto until = std::chrono::steady_clock::now() + wait;
  RLJ_ASSIGN_OR_RETURN(auto fingerprint, TeacherFingerprint(teacher, http, until));
  if (fingerprint.first != context.student_tokenizer_fingerprint) {
    return absl::FailedPreconditionError(
        absl::StrCat(Prefix(teacher), "the teacher's tokenizer (", fingerprint.second, ", fingerprint ",
                     fingerprint.first.substr(0, 12), ") is not the student's (", context.student_tokenizer,
                     ", fingerprint ", context.student_tokenizer_fingerprint.substr(0, 12),
                     "): per-token log-probabilities would belong to other tokens"));
  }
  return ProbeTokenIds(teacher, http, until);
}

}  // namespace rlj
