// judge_quality.cc: canary mixing, second scorings, the reward/length correlation, and the judge's metrics
// and per-version TensorBoard scalars.
#include "judge/quality/judge_quality.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "common/status.h"
#include "common/utf8.h"
#include "logs/statistics.h"

namespace rlj {
namespace {

// teacher/<backend>/... scalars of the backends' machinery: the limit and what is out now, the breaker
// (1 = open or half-open) and the running totals of retries by cause and Retry-After waits.
void AppendBackendScalars(const std::vector<v1::JudgeBackendStatus>& backends,
                          std::vector<std::pair<std::string, double>>* scalars) {
  for (const v1::JudgeBackendStatus& b : backends) {
    if (b.http_requests() == 0 && b.concurrency_limit() == 0) continue;  // no HTTP machinery (rule, command)
    const std::string prefix = absl::StrCat("teacher/", b.name(), "/");
    const std::pair<const char*, double> values[] = {
        {"concurrency_limit", b.concurrency_limit()},
        {"in_flight", b.in_flight()},
        {"circuit_open", b.circuit() == "closed" ? 0.0 : 1.0},
        {"circuit_opened", static_cast<double>(b.circuit_opened())},
        {"http_requests", static_cast<double>(b.http_requests())},
        {"retries_rate_limited", static_cast<double>(b.retries_rate_limited())},
        {"retries_server_error", static_cast<double>(b.retries_server_error())},
        {"retries_timeout", static_cast<double>(b.retries_timeout())},
        {"retries_transport", static_cast<double>(b.retries_transport())},
        {"retries_malformed", static_cast<double>(b.retries_malformed())},
        {"retry_after_waits", static_cast<double>(b.retry_after_waits())},
        {"retry_after_seconds", b.retry_after_seconds()},
    };
    for (const auto& [name, value] : values) scalars->emplace_back(prefix + name, value);
  }
}

}  // namespace

namespace {

constexpr char kCanaryIdPrefix[] = "canary/";

}  // namespace

struct JudgeQuality::VersionStats {
  int64_t samples = 0, errors = 0, cache_hits = 0;
  std::vector<double> rewards;
  double latency_ms_sum = 0, cost_usd = 0;
  int64_t canaries = 0, canaries_passed = 0, pairs = 0, agreeing = 0;
};

absl::StatusOr<std::unique_ptr<JudgeQuality>> JudgeQuality::Create(
    const v1::RunConfig& config, std::shared_ptr<telemetry::ProcessTelemetry> telemetry) {
  std::vector<Canary> canaries;
  if (config.quality().has_canary_path() && !config.quality().canary_path().empty()) {
    RLJ_ASSIGN_OR_RETURN(canaries, LoadCanaries(config.quality().canary_path()));
    log::Info("judge quality: {} canaries from {} at rate {}", canaries.size(), config.quality().canary_path(),
              config.quality().canary_rate());
  }
  return std::unique_ptr<JudgeQuality>(new JudgeQuality(config, std::move(canaries), std::move(telemetry)));
}

JudgeQuality::JudgeQuality(const v1::RunConfig& config, std::vector<Canary> canaries,
                           std::shared_ptr<telemetry::ProcessTelemetry> telemetry)
    : config_(config.quality()), canaries_(std::move(canaries)), telemetry_(std::move(telemetry)) {
  absl::MutexLock lock(&mutex_);
  rng_.seed(config.seed() ^ 0x6a75646765ULL);
  canary_order_.resize(canaries_.size());
  std::iota(canary_order_.begin(), canary_order_.end(), 0);
  std::shuffle(canary_order_.begin(), canary_order_.end(), rng_);
  totals_.length_spearman = NAN;
}

JudgeQuality::~JudgeQuality() {
  absl::MutexLock lock(&mutex_);
  FlushVersionsBefore(INT64_MAX);
}

void JudgeQuality::AddExtraSamples(std::vector<v1::Sample>* to_score) {
  const size_t requested = to_score->size();
  if (requested == 0) return;
  int64_t version = 0;
  for (const v1::Sample& sample : *to_score) version = std::max(version, sample.policy_version());
  std::vector<v1::Sample> extras;
  absl::MutexLock lock(&mutex_);
  std::uniform_real_distribution<double> uniform(0.0, 1.0);
  if (!canaries_.empty() && config_.canary_rate() > 0) {
    const double expected = config_.canary_rate() * static_cast<double>(requested);
    int count = static_cast<int>(std::floor(expected));
    if (uniform(rng_) < expected - std::floor(expected)) ++count;
    for (int k = 0; k < count; ++k) {
      if (canary_cursor_ >= canary_order_.size()) {
        std::shuffle(canary_order_.begin(), canary_order_.end(), rng_);
        canary_cursor_ = 0;
      }
      const size_t index = canary_order_[canary_cursor_++];
      const Canary& canary = canaries_[index];
      const int64_t n = ++extra_counter_;
      v1::Sample sample;
      sample.set_id(absl::StrCat(kCanaryIdPrefix, canary.id, "/", n));
      sample.set_prompt_id(canary.id);
      sample.set_prompt(canary.prompt);
      sample.set_completion(canary.completion);
      sample.set_reference(canary.reference);
      sample.set_group_id(absl::StrCat(kCanaryIdPrefix, n));
      sample.set_run((*to_score)[0].run());
      sample.set_actor("canary");
      sample.set_policy_version(version);
      canary_in_flight_[sample.id()] = index;
      extras.push_back(std::move(sample));
    }
  }
  if (config_.self_consistency_rate() > 0) {
    for (size_t i = 0; i < requested; ++i) {
      if (uniform(rng_) >= config_.self_consistency_rate()) continue;
      v1::Sample again = (*to_score)[i];
      again.set_id(again.id() + kConsistencyIdSuffix);
      again.set_group_id(again.group_id() + kConsistencyIdSuffix);
      AskForSecondOpinion(&again);
      extras.push_back(std::move(again));
    }
  }
  for (v1::Sample& sample : extras) to_score->push_back(std::move(sample));
}

std::vector<RewardLogRow> JudgeQuality::TakeExtraVerdicts(size_t requested, const std::string& backend_failure,
                                                          std::chrono::steady_clock::time_point call_start,
                                                          const JudgeBackend& backend,
                                                          std::vector<v1::Sample>* to_score,
                                                          std::vector<Judgement>* judgements) {
  std::vector<RewardLogRow> rows;
  if (to_score->size() <= requested) return rows;
  const bool usable = backend_failure.empty() && judgements->size() == to_score->size();
  const double call_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - call_start).count();
  const std::string backend_name = backend.name(), backend_model = backend.model();
  absl::MutexLock lock(&mutex_);
  for (size_t k = requested; k < to_score->size(); ++k) {
    const v1::Sample& sample = (*to_score)[k];
    const auto canary = canary_in_flight_.find(sample.id());
    const bool is_canary = canary != canary_in_flight_.end();
    if (usable) {
      Judgement& judgement = (*judgements)[k];
      v1::Verdict& verdict = judgement.verdict;
      verdict.set_sample_id(sample.id());
      NormalizeVerdict(&verdict);
      verdict.set_backend(backend_name);
      if (verdict.model().empty()) verdict.set_model(backend_model);
      if (verdict.latency_ms() <= 0) verdict.set_latency_ms(call_ms);
      RewardLogRow row = MakeRewardLogRow(sample, verdict, judgement.raw_response);
      if (is_canary) {
        const Canary& known = canaries_[canary->second];
        row.kind = row_kind::kCanary;
        row.expected_reward = known.expected_reward;
        row.canary_pass =
            row.reward.has_value() && std::abs(*row.reward - known.expected_reward) <= config_.canary_tolerance();
      } else {
        row.kind = row_kind::kConsistency;
        if (absl::EndsWith(row.sample_id, kConsistencyIdSuffix)) {
          row.sample_id.resize(row.sample_id.size() - std::string(kConsistencyIdSuffix).size());
        }
        if (absl::EndsWith(row.group_id, kConsistencyIdSuffix)) {
          row.group_id.resize(row.group_id.size() - std::string(kConsistencyIdSuffix).size());
        }
      }
      rows.push_back(std::move(row));
    }
    if (is_canary) canary_in_flight_.erase(canary);
  }
  to_score->resize(requested);
  if (judgements->size() > requested) judgements->resize(requested);
  return rows;
}

void JudgeQuality::Observe(const v1::ScoreRequest& request, const v1::ScoreResponse& response,
                           const std::vector<RewardLogRow>& extra_rows) {
  telemetry::MetricsRegistry* metrics = telemetry_ != nullptr ? &telemetry_->metrics() : nullptr;
  const auto latency = [&](double ms) {
    if (metrics == nullptr) return;
    metrics
        ->GetHistogram("rlj_judge_latency_seconds", "Latency of one verdict (teacher call or cache)",
                       telemetry::LatencySecondsBuckets())
        .Observe(ms / 1000);
  };
  const auto count = [&](const std::string& name, const std::string& help, double by, const telemetry::Labels& labels) {
    if (metrics != nullptr && by > 0) metrics->GetCounter(name, help, labels).Increment(by);
  };
  std::map<std::string, const v1::Verdict*> by_id;
  absl::MutexLock lock(&mutex_);
  const int n = std::min(request.samples_size(), response.verdicts_size());
  for (int i = 0; i < n; ++i) {
    const v1::Sample& sample = request.samples(i);
    const v1::Verdict& verdict = response.verdicts(i);
    by_id[sample.id()] = &verdict;
    VersionStats* version = versions_[sample.policy_version()].get();
    if (version == nullptr) {
      versions_[sample.policy_version()] = std::make_unique<VersionStats>();
      version = versions_[sample.policy_version()].get();
    }
    newest_version_ = std::max(newest_version_, sample.policy_version());
    ++version->samples;
    version->latency_ms_sum += verdict.latency_ms();
    version->cost_usd += verdict.cost_usd();
    if (verdict.cache_hit()) ++version->cache_hits;
    latency(verdict.latency_ms());
    count("rlj_judge_verdicts_total", "Verdicts by row kind (train: returned to actors)", 1,
          {{"kind", row_kind::kTrain}});
    count("rlj_judge_cost_usd_total", "Teacher cost in US dollars", verdict.cost_usd(), {});
    count("rlj_judge_tokens_in_total", "Teacher prompt tokens", static_cast<double>(verdict.tokens_in()), {});
    count("rlj_judge_tokens_out_total", "Teacher completion tokens", static_cast<double>(verdict.tokens_out()), {});
    count("rlj_judge_cache_hits_total", "Verdicts answered from the cache", verdict.cache_hit() ? 1 : 0, {});
    if (verdict.has_error()) {
      ++version->errors;
      count("rlj_judge_verdict_errors_total", "Failed verdicts by error kind", 1,
            {{"error_kind", verdict.error().kind()}});
      continue;
    }
    version->rewards.push_back(verdict.reward());
    length_window_.emplace_back(verdict.reward(), static_cast<double>(Utf8CodePoints(sample.completion())));
    while (static_cast<int64_t>(length_window_.size()) > config_.length_correlation_window())
      length_window_.pop_front();
  }
  for (const RewardLogRow& row : extra_rows) {
    VersionStats* version = versions_[row.policy_version].get();
    if (version == nullptr) {
      versions_[row.policy_version] = std::make_unique<VersionStats>();
      version = versions_[row.policy_version].get();
    }
    latency(row.latency_ms);
    count("rlj_judge_verdicts_total", "Verdicts by row kind (train: returned to actors)", 1, {{"kind", row.kind}});
    count("rlj_judge_cost_usd_total", "Teacher cost in US dollars", row.cost_usd, {});
    count("rlj_judge_tokens_in_total", "Teacher prompt tokens", static_cast<double>(row.tokens_in), {});
    count("rlj_judge_tokens_out_total", "Teacher completion tokens", static_cast<double>(row.tokens_out), {});
    if (!row.reward.has_value()) {
      count("rlj_judge_verdict_errors_total", "Failed verdicts by error kind", 1, {{"error_kind", row.error_kind}});
    }
    if (row.kind == row_kind::kCanary) {
      const bool passed = row.canary_pass.value_or(false);
      ++totals_.canaries;
      ++version->canaries;
      if (passed) {
        ++totals_.canaries_passed;
        ++version->canaries_passed;
      }
      count("rlj_judge_canaries_total", "Canaries scored, by result", 1, {{"result", passed ? "pass" : "fail"}});
      continue;
    }
    const auto original = by_id.find(row.sample_id);
    if (original == by_id.end() || original->second->has_error() || !row.reward.has_value()) continue;
    const bool agree = std::abs(original->second->reward() - *row.reward) <= config_.self_consistency_tolerance();
    ++totals_.consistency_pairs;
    ++version->pairs;
    if (agree) {
      ++totals_.consistency_agreeing;
      ++version->agreeing;
    }
    count("rlj_judge_consistency_pairs_total", "Samples scored twice, by agreement", 1,
          {{"result", agree ? "agree" : "disagree"}});
  }

  // Reward against completion length over the recent window.
  totals_.length_samples = static_cast<int64_t>(length_window_.size());
  totals_.length_spearman = NAN;
  totals_.length_warning = false;
  if (totals_.length_samples >= config_.length_correlation_min_samples()) {
    std::vector<double> rewards, lengths;
    for (const auto& [reward, length] : length_window_) {
      rewards.push_back(reward);
      lengths.push_back(length);
    }
    totals_.length_spearman = logs::Spearman(rewards, lengths);
    totals_.length_warning =
        std::isfinite(totals_.length_spearman) && totals_.length_spearman > config_.length_correlation_threshold();
    if (totals_.length_warning) {
      RLJ_EVERY(60, log::Warn("reward correlates with completion length: Spearman {:.2f} over the last {} verdicts "
                              "(threshold {:.2f}); the student may be rewarded for verbosity",
                              totals_.length_spearman, totals_.length_samples, config_.length_correlation_threshold()));
    }
  }
  if (metrics != nullptr) {
    const auto gauge = [&](const std::string& name, const std::string& help, double value) {
      metrics->GetGauge(name, help).Set(value);
    };
    gauge("rlj_judge_policy_version", "Newest policy version among scored samples",
          static_cast<double>(newest_version_));
    if (totals_.canaries > 0) {
      gauge("rlj_judge_canary_accuracy", "Share of canaries whose reward was within tolerance of the known answer",
            static_cast<double>(totals_.canaries_passed) / static_cast<double>(totals_.canaries));
    }
    if (totals_.consistency_pairs > 0) {
      gauge("rlj_judge_self_consistency", "Share of samples scored twice whose two rewards agree",
            static_cast<double>(totals_.consistency_agreeing) / static_cast<double>(totals_.consistency_pairs));
    }
    gauge("rlj_judge_reward_length_spearman", "Spearman correlation of reward and completion length (recent window)",
          totals_.length_spearman);
    gauge("rlj_judge_length_correlation_warning", "1 when the reward/length correlation is above the threshold",
          totals_.length_warning ? 1 : 0);
  }
  // Versions two behind the newest are complete enough to write (late groups of them start a new point).
  FlushVersionsBefore(newest_version_ - 1);
}

void JudgeQuality::ObserveBackends(std::vector<v1::JudgeBackendStatus> backends) {
  absl::MutexLock lock(&mutex_);
  backends_ = std::move(backends);
}

void JudgeQuality::FlushVersionsBefore(int64_t version) {
  telemetry::TensorBoardWriter* tensorboard = telemetry_ != nullptr ? telemetry_->tensorboard() : nullptr;
  for (auto it = versions_.begin(); it != versions_.end() && it->first < version;) {
    const VersionStats& v = *it->second;
    if (tensorboard != nullptr && (v.samples > 0 || v.canaries > 0)) {
      std::vector<std::pair<std::string, double>> scalars = {
          {"judge/samples", static_cast<double>(v.samples)},
          {"judge/reward_mean", logs::Mean(v.rewards)},
          {"judge/reward_std", logs::StdDev(v.rewards)},
          {"judge/error_rate", v.samples > 0 ? static_cast<double>(v.errors) / static_cast<double>(v.samples) : NAN},
          {"judge/cache_hit_rate",
           v.samples > 0 ? static_cast<double>(v.cache_hits) / static_cast<double>(v.samples) : NAN},
          {"judge/latency_ms_mean", v.samples > 0 ? v.latency_ms_sum / static_cast<double>(v.samples) : NAN},
          {"judge/cost_usd", v.cost_usd},
          {"judge/reward_length_spearman", totals_.length_spearman},
      };
      if (v.canaries > 0) {
        scalars.emplace_back("judge/canary_accuracy",
                             static_cast<double>(v.canaries_passed) / static_cast<double>(v.canaries));
      }
      if (v.pairs > 0) {
        scalars.emplace_back("judge/self_consistency", static_cast<double>(v.agreeing) / static_cast<double>(v.pairs));
      }
      AppendBackendScalars(backends_, &scalars);
      absl::Status written = tensorboard->AddScalars(scalars, it->first);
      if (written.ok() && !v.rewards.empty()) written = tensorboard->AddHistogram("judge/reward", it->first, v.rewards);
      if (!written.ok())
        RLJ_EVERY(60, log::Warn("TensorBoard scalars not written: {}", std::string(written.message())));
    }
    it = versions_.erase(it);
  }
}

JudgeQuality::Snapshot JudgeQuality::snapshot() const {
  absl::MutexLock lock(&mutex_);
  return totals_;
}

}  // namespace rlj
