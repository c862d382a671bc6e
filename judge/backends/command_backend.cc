// command_backend.cc: JSON-line exchanges with a pool of kept-alive judge programs.
#include "judge/backends/command_backend.h"

#include <atomic>
#include <cmath>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/log.h"
#include "common/status.h"
#include "judge/score_parser.h"
#include "judge/usage_ledger.h"
#include "nlohmann/json.hpp"

namespace rlj {
namespace {

using nlohmann::json;

double MillisecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
}

std::string RequestLine(const v1::Sample& sample) {
  json metadata = json::object();
  for (const auto& [key, value] : sample.metadata()) metadata[key] = value;
  json request = {{"id", sample.id()},
                  {"prompt", sample.prompt()},
                  {"completion", sample.completion()},
                  {"reference", sample.reference()},
                  {"prompt_id", sample.prompt_id()},
                  {"group_id", sample.group_id()},
                  {"index_in_group", sample.index_in_group()},
                  {"policy_version", sample.policy_version()},
                  {"metadata", std::move(metadata)}};
  return request.dump(-1, ' ', false, json::error_handler_t::replace);
}

// An answer object whose "id" (optional) is not `sample_id`'s: the program is out of step.
bool AnswersAnotherSample(const json& reply, const std::string& sample_id) {
  if (!reply.is_object()) return false;
  auto id = reply.find("id");
  return id != reply.end() && !(id->is_string() && id->get<std::string>() == sample_id);
}

double NumberOrZero(const json& reply, const char* key) {
  auto it = reply.find(key);
  return it != reply.end() && it->is_number() ? it->get<double>() : 0.0;
}

// A failed exchange (the program could not be started, died, timed out or overflowed its line) as the
// sample's error.
void SetExchangeError(const absl::Status& failure, v1::Verdict* verdict) {
  const absl::StatusCode code = failure.code();
  const char* kind = code == absl::StatusCode::kDeadlineExceeded    ? error_kind::kTimeout
                     : code == absl::StatusCode::kResourceExhausted ? error_kind::kParse
                                                                    : error_kind::kUnavailable;
  SetVerdictError(verdict, code, kind, absl::StrCat("command judge: ", failure.message()));
}

// An answer object's spend and rationale, then its reward and components, or its error; true when it has a
// usable reward.
bool ReadReply(const json& reply, CallUsage* usage, v1::Verdict* verdict) {
  usage->tokens_in = static_cast<int64_t>(NumberOrZero(reply, "tokens_in"));
  usage->tokens_out = static_cast<int64_t>(NumberOrZero(reply, "tokens_out"));
  usage->cost_usd = NumberOrZero(reply, "cost_usd");
  verdict->set_tokens_in(usage->tokens_in);
  verdict->set_tokens_out(usage->tokens_out);
  verdict->set_cost_usd(usage->cost_usd);
  if (auto rationale = reply.find("rationale"); rationale != reply.end() && rationale->is_string()) {
    verdict->set_rationale(TruncateUtf8(rationale->get<std::string>(), kMaxRationaleBytes));
  }
  if (auto error = reply.find("error"); error != reply.end() && !error->is_null()) {
    std::string kind = error_kind::kBackend;
    if (auto k = reply.find("kind"); k != reply.end() && k->is_string() && !k->get<std::string>().empty()) {
      kind = k->get<std::string>();
    }
    SetVerdictError(verdict, absl::StatusCode::kFailedPrecondition, kind,
                    absl::StrCat("command judge: ", error->is_string() ? error->get<std::string>() : error->dump()));
    return false;
  }
  auto reward = reply.find("reward");
  if (reward == reply.end() || !reward->is_number() || !std::isfinite(reward->get<double>())) {
    SetVerdictError(verdict, absl::StatusCode::kInternal, error_kind::kParse,
                    "command judge: the answer has no finite number \"reward\" (and no \"error\")");
    return false;
  }
  verdict->set_reward(reward->get<double>());
  if (auto components = reply.find("components"); components != reply.end() && components->is_object()) {
    for (const auto& [name, value] : components->items()) {
      if (value.is_number()) (*verdict->mutable_components())[name] = value.get<double>();
    }
  }
  return true;
}

// The judgement of `sample` from `answer` (the program's answer line, or why there is none), `reply` (the
// line parsed) and `out_of_step` (its id is another sample's). Returns the call's usage for the ledger.
CallUsage ReadAnswer(const absl::StatusOr<std::string>& answer, const json& reply, bool out_of_step,
                     const v1::Sample& sample, Judgement* judgement) {
  v1::Verdict& verdict = judgement->verdict;
  CallUsage usage;
  usage.failed = true;
  if (!answer.ok()) {
    SetExchangeError(answer.status(), &verdict);
    return usage;
  }
  judgement->raw_response = TruncateUtf8(*answer, 4000);
  if (!reply.is_object()) {
    SetVerdictError(&verdict, absl::StatusCode::kInternal, error_kind::kParse,
                    absl::StrCat("command judge: the answer is not a JSON object: ", TruncateUtf8(*answer, 200)));
    return usage;
  }
  if (out_of_step) {
    const json& id = reply["id"];
    SetVerdictError(
        &verdict, absl::StatusCode::kInternal, error_kind::kParse,
        absl::StrCat("command judge: the answer's id ", id.dump(), " is not the sample's (", sample.id(), ")"));
    return usage;
  }
  usage.failed = !ReadReply(reply, &usage, &verdict);
  return usage;
}

}  // namespace

absl::Status CommandBackend::Validate(const v1::CommandJudgeConfig& config, const std::string& section) {
  if (config.argv().empty() || config.argv(0).empty()) {
    return absl::InvalidArgumentError(absl::StrCat(section, ".argv is required with backend command"));
  }
  if (config.timeout_ms() <= 0) return absl::InvalidArgumentError(absl::StrCat(section, ".timeout_ms must be > 0"));
  if (config.max_line_bytes() < 16)
    return absl::InvalidArgumentError(absl::StrCat(section, ".max_line_bytes must be >= 16"));
  if (config.processes() < 1) return absl::InvalidArgumentError(absl::StrCat(section, ".processes must be >= 1"));
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<CommandBackend>> CommandBackend::Create(const v1::CommandJudgeConfig& config,
                                                                       const JudgeBackendDeps& deps) {
  const std::string section = deps.section.empty() ? "judge.command" : deps.section;
  RLJ_RETURN_IF_ERROR(Validate(config, section));
  std::unique_ptr<CommandBackend> backend(
      new CommandBackend(config, deps.label.empty() ? "command" : deps.label, deps.ledger));
  const std::vector<std::string> argv(config.argv().begin(), config.argv().end());
  absl::MutexLock lock(&backend->mutex_);
  for (auto& process : backend->processes_) {
    auto started = LineProcess::Start(argv);
    if (!started.ok())
      return absl::Status(started.status().code(), absl::StrCat(section, ".argv: ", started.status().message()));
    process = std::move(started).value();
  }
  return backend;
}

CommandBackend::CommandBackend(const v1::CommandJudgeConfig& config, std::string label, UsageLedger* ledger)
    : config_(config), label_(std::move(label)), ledger_(ledger) {
  model_ = absl::StrJoin(config_.argv(), " ");
  processes_.resize(static_cast<size_t>(config_.processes()));
  busy_.assign(processes_.size(), false);
}

CommandBackend::~CommandBackend() = default;

int64_t CommandBackend::restarts() const {
  absl::MutexLock lock(&mutex_);
  return restarts_;
}

void CommandBackend::CollectStatus(v1::JudgeStatus* status) const {
  v1::JudgeBackendStatus* entry = BackendStatusEntry(status, label_);
  entry->set_kind("command");
  entry->set_model(model_);
  absl::MutexLock lock(&mutex_);
  entry->set_in_flight(static_cast<int32_t>(in_flight_));
  entry->set_concurrency_limit(static_cast<int32_t>(processes_.size()));
  entry->set_retries(restarts_);
}

size_t CommandBackend::AcquireSlot() {
  absl::MutexLock lock(&mutex_);
  auto any_free = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) {
    for (bool busy : busy_) {
      if (!busy) return true;
    }
    return false;
  };
  mutex_.Await(absl::Condition(&any_free));
  for (size_t slot = 0; slot < busy_.size(); ++slot) {
    if (!busy_[slot]) {
      busy_[slot] = true;
      ++in_flight_;
      return slot;
    }
  }
  return 0;  // unreachable: Await returned with a free slot
}

void CommandBackend::ReleaseSlot(size_t slot) {
  absl::MutexLock lock(&mutex_);
  busy_[slot] = false;
  --in_flight_;
}

std::vector<Judgement> CommandBackend::Score(const std::vector<v1::Sample>& samples) {
  std::vector<Judgement> judgements(samples.size());
  std::atomic<size_t> next{0};
  auto work = [&] {
    for (size_t i = next.fetch_add(1); i < samples.size(); i = next.fetch_add(1)) judgements[i] = ScoreOne(samples[i]);
  };
  const size_t workers = std::min<size_t>(samples.size(), processes_.size());
  std::vector<std::thread> threads;
  for (size_t k = 1; k < workers; ++k) threads.emplace_back(work);
  work();
  for (std::thread& thread : threads) thread.join();
  return judgements;
}

Judgement CommandBackend::ScoreOne(const v1::Sample& sample) {
  const auto start = std::chrono::steady_clock::now();
  Judgement judgement;
  v1::Verdict& verdict = judgement.verdict;
  verdict.set_sample_id(sample.id());
  const std::string request = RequestLine(sample);
  const std::vector<std::string> argv(config_.argv().begin(), config_.argv().end());
  absl::StatusOr<std::string> answer = absl::UnavailableError("not asked");
  const size_t slot = AcquireSlot();
  // A program that dies before answering gets one more try on a fresh copy (it may have died of something
  // else than this sample); everything else is this sample's error.
  for (int attempt = 0; attempt < 2; ++attempt) {
    LineProcess* process = nullptr;
    {
      absl::MutexLock lock(&mutex_);
      process = processes_[slot].get();
    }
    if (process == nullptr) {
      auto started = LineProcess::Start(argv);
      if (!started.ok()) {
        answer = absl::UnavailableError(std::string(started.status().message()));
        break;
      }
      absl::MutexLock lock(&mutex_);
      processes_[slot] = std::move(started).value();
      process = processes_[slot].get();
      ++restarts_;
    }
    answer = process->Exchange(request, std::chrono::milliseconds(config_.timeout_ms()),
                               static_cast<size_t>(config_.max_line_bytes()));
    if (answer.ok()) break;
    // Out of step or dead: replace it before anyone else uses the slot.
    RLJ_EVERY(5, log::Warn("command judge '{}': {}; restarting it", model_, std::string(answer.status().message())));
    {
      absl::MutexLock lock(&mutex_);
      processes_[slot].reset();
    }
    if (answer.status().code() != absl::StatusCode::kUnavailable) break;
  }
  json reply;
  bool out_of_step = false;
  if (answer.ok()) {
    reply = json::parse(*answer, nullptr, /*allow_exceptions=*/false);
    out_of_step = AnswersAnotherSample(reply, sample.id());
    if (out_of_step) {
      absl::MutexLock lock(&mutex_);
      processes_[slot].reset();  // answering for another sample: replace it before the slot is reused
    }
  }
  ReleaseSlot(slot);
  verdict.set_latency_ms(MillisecondsSince(start));
  const CallUsage usage = ReadAnswer(answer, reply, out_of_step, sample, &judgement);
  if (ledger_ != nullptr) ledger_->RecordCall(label_, "command", model_, usage);
  return judgement;
}

}  // namespace rlj
