// remote_backend.cc: Judge.Score calls to another judge service, with deadlines and per-sample errors.
#include "judge/backends/remote_backend.h"

#include <grpcpp/client_context.h>

#include <thread>

#include "absl/strings/str_cat.h"
#include "common/grpc_util.h"
#include "common/status.h"
#include "judge/usage_ledger.h"

namespace rlj {

absl::Status RemoteBackend::Validate(const v1::RemoteJudgeConfig& config, const std::string& section) {
  if (config.address().empty()) {
    return absl::InvalidArgumentError(absl::StrCat(section, ".address is required with backend remote"));
  }
  RLJ_RETURN_IF_ERROR(Annotate(CheckListenAddress(config.address()), absl::StrCat(section, ".address")));
  if (config.timeout_ms() <= 0) return absl::InvalidArgumentError(absl::StrCat(section, ".timeout_ms must be > 0"));
  if (config.max_batch() < 1) return absl::InvalidArgumentError(absl::StrCat(section, ".max_batch must be >= 1"));
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<RemoteBackend>> RemoteBackend::Create(const v1::RemoteJudgeConfig& config,
                                                                     const JudgeBackendDeps& deps) {
  const std::string section = deps.section.empty() ? "judge.remote" : deps.section;
  RLJ_RETURN_IF_ERROR(Validate(config, section));
  return std::unique_ptr<RemoteBackend>(
      new RemoteBackend(config, deps.label.empty() ? "remote" : deps.label, deps.ledger));
}

RemoteBackend::RemoteBackend(const v1::RemoteJudgeConfig& config, std::string label, UsageLedger* ledger)
    : config_(config),
      label_(std::move(label)),
      ledger_(ledger),
      stub_(v1::Judge::NewStub(MakeChannel(config.address()))) {}

RemoteBackend::~RemoteBackend() = default;

std::vector<Judgement> RemoteBackend::Score(const std::vector<v1::Sample>& samples) {
  std::vector<Judgement> judgements(samples.size());
  const size_t batch = static_cast<size_t>(config_.max_batch());
  std::vector<std::thread> threads;
  for (size_t begin = batch; begin < samples.size(); begin += batch) {
    threads.emplace_back(
        [&, begin] { ScoreBatch(samples, begin, std::min(samples.size(), begin + batch), &judgements); });
  }
  ScoreBatch(samples, 0, std::min(samples.size(), batch), &judgements);
  for (std::thread& thread : threads) thread.join();
  return judgements;
}

void RemoteBackend::ScoreBatch(const std::vector<v1::Sample>& samples, size_t begin, size_t end,
                               std::vector<Judgement>* out) {
  const auto start = std::chrono::steady_clock::now();
  v1::ScoreRequest request;
  for (size_t i = begin; i < end; ++i) *request.add_samples() = samples[i];
  v1::ScoreResponse response;
  grpc::ClientContext context;
  SetDeadline(&context, std::chrono::milliseconds(config_.timeout_ms()));
  const grpc::Status status = stub_->Score(&context, request, &response);
  const double latency_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  std::string failure;
  absl::StatusCode code = absl::StatusCode::kOk;
  const char* kind = error_kind::kBackend;
  if (!status.ok()) {
    code = static_cast<absl::StatusCode>(status.error_code());
    kind = code == absl::StatusCode::kDeadlineExceeded ? error_kind::kTimeout
           : code == absl::StatusCode::kUnavailable    ? error_kind::kUnavailable
                                                       : error_kind::kBackend;
    failure = absl::StrCat("remote judge ", config_.address(), ": ", status.error_message());
  } else if (response.verdicts_size() != static_cast<int>(end - begin)) {
    code = absl::StatusCode::kInternal;
    failure = absl::StrCat("remote judge ", config_.address(), " returned ", response.verdicts_size(), " verdicts for ",
                           end - begin, " samples");
  }
  for (size_t i = begin; i < end; ++i) {
    Judgement& judgement = (*out)[i];
    v1::Verdict& verdict = judgement.verdict;
    if (failure.empty()) {
      verdict = std::move(*response.mutable_verdicts(static_cast<int>(i - begin)));
      if (verdict.sample_id() != samples[i].id()) {
        const std::string got = verdict.sample_id();
        verdict.Clear();
        SetVerdictError(&verdict, absl::StatusCode::kInternal, error_kind::kBackend,
                        absl::StrCat("remote judge ", config_.address(), " answered sample '", got,
                                     "' in the place of '", samples[i].id(), "'"));
      } else if (verdict.has_error() && verdict.error().code() == 0) {
        verdict.mutable_error()->set_code(static_cast<int32_t>(absl::StatusCode::kUnknown));
      }
      verdict.clear_backend();  // this judge's name is stamped on it
      if (verdict.latency_ms() <= 0) verdict.set_latency_ms(latency_ms);
    } else {
      SetVerdictError(&verdict, code, kind, failure);
      verdict.set_latency_ms(latency_ms);
    }
    verdict.set_sample_id(samples[i].id());
    if (ledger_ != nullptr) {
      ledger_->RecordCall(
          label_, "remote", config_.address(),
          {verdict.tokens_in(), verdict.tokens_out(), verdict.cost_usd(), verdict.cache_hit(), verdict.has_error()});
    }
  }
}

}  // namespace rlj
