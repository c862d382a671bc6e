// usage_ledger.h: what the judge spent: tokens and USD per backend (from every teacher call) and per step
// (the policy version of the scored samples), and the budget: once the spend reaches judge.budget_usd, new
// samples fail with kind "budget" and Judge.Status says so.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <string>

#include "absl/synchronization/mutex.h"
#include "rlj/v1/judge.pb.h"

namespace rlj {

// USD for a call: tokens / 1000 × the price per 1000.
double CostUsd(int64_t tokens_in, int64_t tokens_out, double price_input_per_1k, double price_output_per_1k);

struct CallUsage {
  int64_t tokens_in = 0;
  int64_t tokens_out = 0;
  double cost_usd = 0;
  bool cache_hit = false;  // answered from the cache: no tokens, no cost
  bool failed = false;     // ended without a usable answer (its tokens, if any, still count)
};

class UsageLedger {
 public:
  // budget_usd <= 0: no budget.
  explicit UsageLedger(double budget_usd = 0);

  // One teacher call (or cache hit) by `backend` (a name in Judge.Status) of kind `kind`.
  void RecordCall(const std::string& backend, const std::string& kind, const std::string& model,
                  const CallUsage& usage);

  // One verdict returned for a sample of `policy_version` (tokens and cost as the verdict carries them).
  void RecordVerdict(int64_t policy_version, const v1::Verdict& verdict);

  bool BudgetExhausted() const { return exhausted_.load(std::memory_order_relaxed); }
  double spent_usd() const;
  double budget_usd() const { return budget_usd_; }

  // Totals, budget, one entry per backend, and the most recent `max_steps` steps.
  void Fill(v1::JudgeStatus* status, int max_steps = 1000) const;

 private:
  const double budget_usd_;
  std::atomic<bool> exhausted_{false};
  mutable absl::Mutex mutex_;
  double spent_usd_ ABSL_GUARDED_BY(mutex_) = 0;
  int64_t tokens_in_ ABSL_GUARDED_BY(mutex_) = 0;
  int64_t tokens_out_ ABSL_GUARDED_BY(mutex_) = 0;
  int64_t cache_hits_ ABSL_GUARDED_BY(mutex_) = 0;
  std::map<std::string, v1::JudgeBackendStatus> backends_ ABSL_GUARDED_BY(mutex_);
  std::map<int64_t, v1::JudgeStepUsage> steps_ ABSL_GUARDED_BY(mutex_);
};

}  // namespace rlj
