// usage_ledger.cc: spend accounting and the budget flag.
#include "judge/usage_ledger.h"

namespace rlj {

double CostUsd(int64_t tokens_in, int64_t tokens_out, double price_input_per_1k, double price_output_per_1k) {
  return static_cast<double>(tokens_in) / 1000.0 * price_input_per_1k +
         static_cast<double>(tokens_out) / 1000.0 * price_output_per_1k;
}

UsageLedger::UsageLedger(double budget_usd) : budget_usd_(budget_usd) {}

void UsageLedger::RecordCall(const std::string& backend, const std::string& kind, const std::string& model,
                             const CallUsage& usage) {
  absl::MutexLock lock(&mutex_);
  v1::JudgeBackendStatus& entry = backends_[backend];
  if (entry.name().empty()) {
    entry.set_name(backend);
    entry.set_kind(kind);
    entry.set_model(model);
  }
  if (usage.cache_hit) {
    entry.set_cache_hits(entry.cache_hits() + 1);
    ++cache_hits_;
    return;
  }
  entry.set_calls(entry.calls() + 1);
  if (usage.failed) entry.set_failures(entry.failures() + 1);
  entry.set_tokens_in(entry.tokens_in() + usage.tokens_in);
  entry.set_tokens_out(entry.tokens_out() + usage.tokens_out);
  entry.set_cost_usd(entry.cost_usd() + usage.cost_usd);
  tokens_in_ += usage.tokens_in;
  tokens_out_ += usage.tokens_out;
  spent_usd_ += usage.cost_usd;
  if (budget_usd_ > 0 && spent_usd_ >= budget_usd_) exhausted_.store(true, std::memory_order_relaxed);
}

void UsageLedger::RecordVerdict(int64_t policy_version, const v1::Verdict& verdict) {
  absl::MutexLock lock(&mutex_);
  v1::JudgeStepUsage& step = steps_[policy_version];
  step.set_policy_version(policy_version);
  step.set_samples(step.samples() + 1);
  if (verdict.cache_hit()) step.set_cache_hits(step.cache_hits() + 1);
  step.set_tokens_in(step.tokens_in() + verdict.tokens_in());
  step.set_tokens_out(step.tokens_out() + verdict.tokens_out());
  step.set_cost_usd(step.cost_usd() + verdict.cost_usd());
}

double UsageLedger::spent_usd() const {
  absl::MutexLock lock(&mutex_);
  return spent_usd_;
}

void UsageLedger::Fill(v1::JudgeStatus* status, int max_steps) const {
  absl::MutexLock lock(&mutex_);
  status->set_tokens_in(tokens_in_);
  status->set_tokens_out(tokens_out_);
  status->set_cost_usd(spent_usd_);
  status->set_cache_hits(cache_hits_);
  status->set_budget_usd(budget_usd_ > 0 ? budget_usd_ : 0);
  status->set_budget_exhausted(exhausted_.load(std::memory_order_relaxed));
  for (const auto& [name, entry] : backends_) *status->add_backends() = entry;
  int skip = static_cast<int>(steps_.size()) - max_steps;
  for (const auto& [version, step] : steps_) {
    if (skip-- > 0) continue;
    *status->add_steps() = step;
  }
}

}  // namespace rlj
