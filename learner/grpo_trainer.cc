// grpo_trainer.cc: turns scored groups into weighted training rows, shards them across data-parallel ranks,
// packs them into token-budget micro-batches and takes policy-gradient optimiser steps on the policy.
#include "learner/grpo_trainer.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/grad_mode.h>
#include <torch/optim/adamw.h>
#include <torch/serialize/input-archive.h>
#include <torch/serialize/output-archive.h>
#include <torch/version.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <numeric>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "common/status.h"
#include "learner/distill.h"
#include "learner/gradient_clip.h"
#include "learner/grpo.h"
#include "learner/rank_group.h"
#include "model/logprobs.h"
#include "model/tensor/cuda_autocast.h"
#include "model/tensor/torch_util.h"
#include "model/transformer.h"

namespace rlj {
namespace {

constexpr double kPi = 3.14159265358979323846;

// One trained completion: which group/rollout it is, its advantage and its tokens' loss weight.
struct TrainRow {
  const v1::RolloutGroup* group;
  const v1::Rollout* rollout;
  float advantage;               // the sequence's
  double weight = 0;             // each trained completion token's share of the step's loss
  int64_t length = 0;            // input positions: prompt + completion - 1
  int64_t tokens = 0;            // trained completion tokens: all of them, less those distillation masks
  TokenAdvantages distill = {};  // learner.distill on: each token's advantage and mask; empty otherwise
};

// A micro-batch; logits at input position t predict target t (= sequence token t + 1).
struct Batch {
  at::Tensor inputs;            // [B, T] int64, right-padded with 0
  at::Tensor targets;           // [B, T] int64
  at::Tensor behaviour;         // [B, T] float, the sampler's log-prob at completion targets, 0 elsewhere
  at::Tensor weights;           // [B, T] float, TrainRow::weight at trained completion targets, 0 elsewhere
  at::Tensor mask;              // [B, T] bool, weights > 0
  at::Tensor advantages;        // [B] float
  at::Tensor token_advantages;  // [B, T] float at completion targets, 0 elsewhere (learner.distill on)
  at::Tensor ref_logprobs;      // the reference's log-probs, once per step (kl_coef > 0)
  at::Tensor old_logprobs;      // the policy's at the step's first pass (tis_cap > 0)
};

// `per_token`: learner.distill is on, and the batch carries each token's advantage and mask.
Batch BuildBatch(const std::vector<const TrainRow*>& rows, bool per_token, const c10::Device& device) {
  const int64_t batch = static_cast<int64_t>(rows.size());
  int64_t length = 1;
  for (const TrainRow* row : rows) length = std::max(length, row->length);
  std::vector<int64_t> inputs(batch * length, 0);
  std::vector<int64_t> targets(batch * length, 0);
  std::vector<float> behaviour(batch * length, 0.0f);
  std::vector<float> weights(batch * length, 0.0f);
  std::vector<float> token_advantages(per_token ? batch * length : 0, 0.0f);
  std::vector<float> advantages(batch);
  for (int64_t b = 0; b < batch; ++b) {
    const v1::RolloutGroup& group = *rows[b]->group;
    const v1::Rollout& rollout = *rows[b]->rollout;
    const int64_t prompt = group.prompt_tokens_size();
    const int64_t completion = rollout.completion_tokens_size();
    const auto token = [&](int64_t i) -> int64_t {
      return i < prompt ? group.prompt_tokens(i) : rollout.completion_tokens(i - prompt);
    };
    int64_t* input_row = inputs.data() + b * length;
    int64_t* target_row = targets.data() + b * length;
    for (int64_t t = 0; t + 1 < prompt + completion; ++t) {
      input_row[t] = token(t);
      target_row[t] = token(t + 1);
    }
    for (int64_t j = 0; j < completion; ++j) {
      const int64_t target = b * length + prompt - 1 + j;
      const bool masked = per_token && !rows[b]->distill.valid[j];  // no teacher value: not trained
      weights[target] = masked ? 0.0f : static_cast<float>(rows[b]->weight);
      behaviour[target] = rollout.behaviour_logprobs(j);
      if (per_token) token_advantages[target] = rows[b]->distill.advantages[j];
    }
    advantages[b] = rows[b]->advantage;
  }
  const auto to_device = [&](void* data, std::vector<int64_t> shape, at::ScalarType type) {
    return at::from_blob(data, shape, at::TensorOptions().dtype(type))
        .to(device, /*non_blocking=*/false, /*copy=*/true);
  };
  Batch out;
  out.inputs = to_device(inputs.data(), {batch, length}, at::kLong);
  out.targets = to_device(targets.data(), {batch, length}, at::kLong);
  out.behaviour = to_device(behaviour.data(), {batch, length}, at::kFloat);
  out.weights = to_device(weights.data(), {batch, length}, at::kFloat);
  out.mask = out.weights.gt(0);
  out.advantages = to_device(advantages.data(), {batch}, at::kFloat);
  if (per_token) out.token_advantages = to_device(token_advantages.data(), {batch, length}, at::kFloat);
  return out;
}

// Splits `rows` (sorted longest first) into micro-batches whose padded size (rows × longest) stays within
// `budget` tokens; a row longer than the budget gets a batch of its own. budget <= 0: one batch.
std::vector<std::vector<const TrainRow*>> MicroBatches(const std::vector<const TrainRow*>& rows, int64_t budget) {
  std::vector<std::vector<const TrainRow*>> batches;
  for (const TrainRow* row : rows) {
    if (batches.empty() ||
        (budget > 0 && static_cast<int64_t>(batches.back().size() + 1) * batches.back().front()->length > budget)) {
      batches.emplace_back();
    }
    batches.back().push_back(row);
  }
  return batches;
}

// This process's rank among the learner ranks of its node: LOCAL_RANK (torchrun, Slurm scripts) where set, else its
// global rank; 0 without ranks.
int LocalRank(const RankGroup* ranks) {
  if (ranks == nullptr || ranks->world_size() <= 1) return 0;
  int local_rank = 0;
  if (const char* text = std::getenv("LOCAL_RANK"); text != nullptr && absl::SimpleAtoi(text, &local_rank)) {
    return local_rank;
  }
  return ranks->rank();
}

// A step's rewards, summarised: the advantages of each group and the sample counts the trainer keeps.
struct ScoredGroups {
  BatchAdvantageResult advantages;
  int64_t valid_samples = 0;
  int64_t masked = 0;             // invalid rollouts
  int64_t skipped_no_signal = 0;  // groups without signal that distillation does not train either
};

// A rollout distillation can learn from even when its group's rewards are all equal.
bool HasTeacherSignal(const v1::Rollout& rollout) { return rollout.valid() && !rollout.teacher_logprobs().empty(); }

// Whether a group is trained: it has reward signal, or distillation (`distill`) is on and one of its rollouts
// carries a teacher signal; such a group's sequence advantages are 0, so only the distillation term acts.
bool TrainsGroup(const v1::RolloutGroup& group, const GroupAdvantageResult& advantages, bool distill) {
  return advantages.has_signal ||
         (distill && std::any_of(group.rollouts().begin(), group.rollouts().end(), HasTeacherSignal));
}

// Rewards (truncated completions penalised when learner.truncated = penalize) and advantages per group;
// fills the sample and reward metrics. `distill`: learner.distill is on (see TrainsGroup).
ScoredGroups ScoreGroups(const std::vector<v1::RolloutGroup>& groups, const v1::LearnerConfig& l,
                         const AdvantageOptions& options, bool distill, v1::StepMetrics* metrics) {
  const bool penalize_truncated = l.truncated() == v1::LearnerConfig::penalize;
  std::vector<GroupRewards> rewards(groups.size());
  double reward_sum = 0;
  double reward_squares = 0;
  int64_t samples = 0;
  int64_t truncated = 0;
  ScoredGroups out;
  for (size_t g = 0; g < groups.size(); ++g) {
    for (const v1::Rollout& rollout : groups[g].rollouts()) {
      double reward = rollout.reward();
      ++samples;
      if (rollout.truncated()) ++truncated;
      if (!rollout.valid()) {
        ++out.masked;
      } else {
        reward_sum += reward;
        reward_squares += reward * reward;
        ++out.valid_samples;
        if (penalize_truncated && rollout.truncated()) reward += l.truncation_penalty();
      }
      rewards[g].rewards.push_back(reward);
      rewards[g].valid.push_back(rollout.valid());
    }
  }
  out.advantages = ComputeAdvantages(rewards, options);
  for (size_t g = 0; g < groups.size(); ++g) {
    if (!TrainsGroup(groups[g], out.advantages.groups[g], distill)) ++out.skipped_no_signal;
  }
  metrics->set_groups_skipped_no_signal(out.skipped_no_signal);
  metrics->set_samples(samples);
  metrics->set_masked_samples(out.masked);
  metrics->set_truncated_samples(truncated);
  if (out.valid_samples > 0) {
    const double mean = reward_sum / out.valid_samples;
    metrics->set_reward_mean(mean);
    metrics->set_reward_std(std::sqrt(std::max(0.0, reward_squares / out.valid_samples - mean * mean)));
  }
  return out;
}

// A rollout the step would train that cannot be: an empty prompt, log-probs of another length, longer than
// max_seq_len. The error names its group.
absl::Status CheckRollout(const v1::RolloutGroup& group, int r, int max_seq_len) {
  const v1::Rollout& rollout = group.rollouts(r);
  if (group.prompt_tokens().empty()) {
    return absl::InvalidArgumentError(absl::StrCat("group '", group.group_id(), "' has an empty prompt"));
  }
  if (rollout.completion_tokens_size() != rollout.behaviour_logprobs_size()) {
    return absl::InvalidArgumentError(absl::StrCat("group '", group.group_id(), "' rollout ", r,
                                                   ": completion and behaviour log-probs differ in length"));
  }
  if (group.prompt_tokens_size() + rollout.completion_tokens_size() > max_seq_len) {
    return absl::InvalidArgumentError(
        absl::StrCat("group '", group.group_id(), "' rollout ", r, " exceeds max_seq_len ", max_seq_len));
  }
  return absl::OkStatus();
}

// The completions a step trains on, in order: valid, non-empty, in a trained group (TrainsGroup) and not
// masked for truncation (mask_truncated). With distillation on, each carries its tokens' advantages and mask;
// a completion without reward signal needs teacher log-probs, and one whose every token is masked is dropped.
// A malformed one (CheckRollout, teacher log-probs of another length) is an error naming its group.
absl::StatusOr<std::vector<TrainRow>> SelectTrainRows(const std::vector<v1::RolloutGroup>& groups,
                                                      const BatchAdvantageResult& advantages, bool mask_truncated,
                                                      int max_seq_len, const DistillOptions& distill) {
  const bool distilling = distill.coef > 0;
  std::vector<TrainRow> rows;
  for (size_t g = 0; g < groups.size(); ++g) {
    const v1::RolloutGroup& group = groups[g];
    const GroupAdvantageResult& scored = advantages.groups[g];
    if (!TrainsGroup(group, scored, distilling)) continue;
    for (int r = 0; r < group.rollouts_size(); ++r) {
      const v1::Rollout& rollout = group.rollouts(r);
      if (!rollout.valid() || rollout.completion_tokens().empty()) continue;
      if (mask_truncated && rollout.truncated()) continue;
      if (!scored.has_signal && rollout.teacher_logprobs().empty()) continue;  // no signal of any kind
      RLJ_RETURN_IF_ERROR(CheckRollout(group, r, max_seq_len));
      TrainRow row{&group, &rollout, scored.advantages[r]};
      row.length = group.prompt_tokens_size() + rollout.completion_tokens_size() - 1;
      row.tokens = rollout.completion_tokens_size();
      if (distilling) {
        RLJ_ASSIGN_OR_RETURN(row.distill, DistillAdvantages(group, r, row.advantage, distill));
        row.tokens = row.distill.valid_tokens;
        if (row.tokens == 0) continue;
      }
      rows.push_back(std::move(row));
    }
  }
  return rows;
}

// Sets every row's token loss weight (learner.loss_aggregation, over the tokens not masked) and fills the
// trained-sample, trained-token, (sequence) advantage and distillation metrics. `rows` is not empty. Every rank
// sees all of the step's rows, so these metrics are the whole step's on each rank without a reduction.
void WeighRows(LossAggregation aggregation, std::vector<TrainRow>* rows, v1::StepMetrics* metrics) {
  int64_t total_tokens = 0, teacher_tokens = 0;
  double advantage_sum = 0, advantage_squares = 0, advantage_abs = 0, reverse_kl_sum = 0;
  for (const TrainRow& row : *rows) {
    total_tokens += row.tokens;
    teacher_tokens += row.distill.teacher_tokens;
    reverse_kl_sum += row.distill.reverse_kl_sum;
    advantage_sum += row.advantage;
    advantage_squares += static_cast<double>(row.advantage) * row.advantage;
    advantage_abs += std::abs(row.advantage);
  }
  const double row_count = static_cast<double>(rows->size());
  for (TrainRow& row : *rows) {
    row.weight = TokenLossWeight(aggregation, row.tokens, static_cast<int64_t>(rows->size()), total_tokens);
  }
  metrics->set_distill_tokens(teacher_tokens);
  if (teacher_tokens > 0) metrics->set_teacher_reverse_kl(reverse_kl_sum / static_cast<double>(teacher_tokens));
  metrics->set_trained_samples(static_cast<int64_t>(rows->size()));
  metrics->set_trained_tokens(total_tokens);
  metrics->set_advantage_abs_mean(advantage_abs / row_count);
  metrics->set_advantage_mean(advantage_sum / row_count);
  metrics->set_advantage_std(std::sqrt(
      std::max(0.0, advantage_squares / row_count - (advantage_sum / row_count) * (advantage_sum / row_count))));
}

// This rank's share of `rows`: sorted longest first and dealt round-robin (balanced work, identical on
// every rank).
std::vector<const TrainRow*> RankShare(const std::vector<TrainRow>& rows, int rank, int world) {
  std::vector<size_t> order(rows.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return rows[a].length > rows[b].length; });
  std::vector<const TrainRow*> mine;
  for (size_t i = static_cast<size_t>(rank); i < order.size(); i += static_cast<size_t>(world)) {
    mine.push_back(&rows[order[i]]);
  }
  return mine;
}

// A step's optimiser passes (learner.ppo_epochs), summed for its metrics.
struct EpochTotals {
  std::vector<double> stats = std::vector<double>(kNumPolicyLossStats, 0.0);  // PolicyLossStat sums
  double loss = 0;
  double norm = 0;     // gradient norms before clipping, over norms_taken passes
  double entropy = 0;  // the first pass's entropy metric: sum over entropy_tokens
  double entropy_tokens = 0;
  double trained_tokens = 0;  // tokens of the passes whose update was applied
  int epochs_run = 0;
  int norms_taken = 0;
  bool skipped = false;  // a non-finite loss or norm dropped the update
};

// The loss, policy-statistic, entropy, gradient-norm and throughput metrics of a step's passes, which
// took `seconds`.
void SetLossMetrics(const EpochTotals& totals, double seconds, v1::StepMetrics* metrics) {
  const double tokens = std::max(1.0, totals.stats[kStatTokens]);
  metrics->set_loss(totals.loss / totals.epochs_run);
  metrics->set_kl(totals.stats[kStatKl] / tokens);
  metrics->set_clip_fraction(totals.stats[kStatClipped] / tokens);
  metrics->set_ratio_mean(totals.stats[kStatRatio] / tokens);
  metrics->set_dual_clip_fraction(totals.stats[kStatDualClipped] / tokens);
  metrics->set_is_weight_mean(totals.stats[kStatIsWeight] / tokens);
  metrics->set_is_capped_fraction(totals.stats[kStatIsCapped] / tokens);
  metrics->set_entropy(totals.entropy_tokens > 0 ? totals.entropy / totals.entropy_tokens : 0.0);
  // No norm was taken when the first loss was already non-finite: report NaN rather than a made-up 0.
  metrics->set_grad_norm(totals.norms_taken > 0 ? totals.norm / totals.norms_taken
                                                : std::numeric_limits<double>::quiet_NaN());
  metrics->set_compute_s(seconds);
  metrics->set_tokens_per_s(seconds > 0 ? totals.trained_tokens / seconds : 0);
}

std::string TensorBytes(const at::Tensor& tensor) {
  const at::Tensor host = tensor.to(at::kCPU).contiguous();
  return std::string(static_cast<const char*>(host.data_ptr()), static_cast<size_t>(host.nbytes()));
}

// TrainerState ⇄ one byte string (data-parallel broadcast).
std::string PackState(const TrainerState& state) {
  std::string out;
  const auto put_int = [&](int64_t v) { out.append(reinterpret_cast<const char*>(&v), sizeof(v)); };
  for (int64_t v : {state.steps, state.optimizer_steps, state.nonfinite_steps_skipped, state.groups_skipped_no_signal,
                    state.samples_masked, state.batches_skipped_all_masked, state.batches_skipped_no_signal}) {
    put_int(v);
  }
  put_int(static_cast<int64_t>(state.optimizer.size()));
  out += state.optimizer;
  out += state.rng;
  return out;
}

absl::StatusOr<TrainerState> UnpackState(const std::string& in) {
  constexpr int kValues = 8;  // the seven counters of PackState, then the optimizer's size
  constexpr size_t kHeader = kValues * sizeof(int64_t);
  if (in.size() < kHeader) return absl::DataLossError("trainer state: too short");
  int64_t values[kValues];
  std::memcpy(values, in.data(), kHeader);
  const int64_t optimizer_size = values[kValues - 1];
  if (optimizer_size < 0 || static_cast<size_t>(optimizer_size) > in.size() - kHeader) {
    return absl::DataLossError("trainer state: bad optimizer size");
  }
  TrainerState state{values[0], values[1], values[2], values[3], values[4], values[5], values[6], {}, {}};
  state.optimizer = in.substr(kHeader, static_cast<size_t>(optimizer_size));
  state.rng = in.substr(kHeader + static_cast<size_t>(optimizer_size));
  return state;
}

}  // namespace

double ScheduledLearningRate(const v1::LearnerConfig& learner, int64_t step, int64_t total_steps) {
  const double lr = learner.lr();
  const int64_t warmup = learner.warmup_steps();
  if (warmup > 0 && step < warmup) return lr * static_cast<double>(step + 1) / static_cast<double>(warmup);
  if (learner.lr_schedule() != v1::LearnerConfig::cosine) return lr;
  const double floor = learner.min_lr_ratio() * lr;
  const int64_t span = std::max<int64_t>(1, total_steps - warmup);
  const double progress = std::clamp(static_cast<double>(step - warmup) / static_cast<double>(span), 0.0, 1.0);
  return floor + (lr - floor) * 0.5 * (1.0 + std::cos(kPi * progress));
}

struct GrpoTrainer::State {
  v1::LearnerConfig learner;
  AdvantageOptions advantage_options;
  PolicyLossOptions loss_options;
  DistillOptions distill;
  LossAggregation aggregation = LossAggregation::kTokenMean;
  int64_t total_steps = 0;
  double temperature = 1.0;
  c10::Device device{c10::kCPU};
  bool autocast = false;
  RankGroup* ranks = nullptr;
  Transformer policy{nullptr};
  Transformer reference{nullptr};  // only when kl_coef > 0
  std::unique_ptr<torch::optim::AdamW> optimizer;
  int64_t steps = 0;
  int64_t optimizer_steps = 0;
  int64_t nonfinite_steps_skipped = 0;
  int64_t groups_skipped_no_signal = 0;
  int64_t samples_masked = 0;
  int64_t batches_skipped_all_masked = 0;
  int64_t batches_skipped_no_signal = 0;
  int64_t inject_nonfinite_from_step = -1;  // fault injection for tests (see kInjectNonFiniteLossEnv); -1 = off

  int rank() const { return ranks == nullptr ? 0 : ranks->rank(); }
  int world() const { return ranks == nullptr ? 1 : ranks->world_size(); }

  // The stages of a step after its rows are chosen and weighed, in the order StepUnchecked runs them.

  // `mine` (this rank's rows, longest first) packed into micro-batches on the device, with the reference's
  // log-probs when kl_coef > 0.
  std::vector<Batch> BuildBatches(const std::vector<const TrainRow*>& mine);
  // The learner.ppo_epochs optimiser passes over `batches`, each: AccumulateGradients, AllReduce (world > 1),
  // ClipGradients to learner.grad_clip, StepUnlessNonFinite. A non-finite loss or gradient norm ends them
  // with that pass's update dropped and counted, and totals.skipped set.
  absl::StatusOr<EpochTotals> Train(std::vector<Batch>& batches);
  // Forward and backward over every micro-batch of pass `epoch`: the gradients accumulate in the policy's
  // parameters. Returns [loss, PolicyLossStat..., entropy metric sum, entropy metric tokens] summed over the
  // micro-batches (float64, on the device).
  at::Tensor AccumulateGradients(std::vector<Batch>& batches, int epoch);
  // Data parallel: sums every parameter's gradient and `sums` across ranks, in place.
  absl::Status AllReduce(const std::vector<at::Tensor>& parameters, at::Tensor& sums);
};

GrpoTrainer::GrpoTrainer(std::unique_ptr<State> state) : state_(std::move(state)) {}
GrpoTrainer::~GrpoTrainer() = default;

absl::StatusOr<std::unique_ptr<GrpoTrainer>> GrpoTrainer::Create(const v1::RunConfig& config, const Transformer& policy,
                                                                 RankGroup* ranks) {
  auto state = std::make_unique<State>();
  state->learner = config.learner();
  state->total_steps = config.learner().steps();
  state->ranks = ranks;
  state->temperature = config.sampling().temperature();
  if (!(state->temperature > 0)) {
    return absl::InvalidArgumentError("sampling.temperature: must be > 0 for the learner's log-probs");
  }
  state->advantage_options = AdvantageOptionsFromConfig(state->learner);
  state->loss_options = PolicyLossOptionsFromConfig(state->learner);
  state->distill = DistillOptionsFromConfig(state->learner);
  state->aggregation = LossAggregationFromConfig(state->learner.loss_aggregation());
  const std::string requested = config.learner().has_device() ? config.learner().device() : config.runtime().device();
  RLJ_ASSIGN_OR_RETURN(state->device, ResolveRankDevice(requested, LocalRank(ranks)));
  state->autocast = state->device.is_cuda() && state->learner.bf16();
  if (const char* from = std::getenv(kInjectNonFiniteLossEnv); from != nullptr && *from != '\0') {
    if (!absl::SimpleAtoi(from, &state->inject_nonfinite_from_step) || state->inject_nonfinite_from_step < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(kInjectNonFiniteLossEnv, "=", from, ": expected a step number >= 0"));
    }
    log::Warn("FAULT INJECTION ({}={}): every step from trainer step {} on gets a NaN loss", kInjectNonFiniteLossEnv,
              from, state->inject_nonfinite_from_step);
  }
  RLJ_RETURN_IF_ERROR(TorchCall("set up the GRPO trainer", [&] {
    state->policy = policy;
    state->policy->to(state->device);
    state->policy->train();
    if (state->learner.kl_coef() > 0) {
      state->reference = CloneTransformer(state->policy);
      state->reference->to(state->device);
      for (at::Tensor& parameter : state->reference->parameters()) parameter.set_requires_grad(false);
      state->reference->eval();
    }
    const auto& l = state->learner;
    state->optimizer =
        std::make_unique<torch::optim::AdamW>(state->policy->parameters(), torch::optim::AdamWOptions(l.lr())
                                                                               .betas({l.adam_beta1(), l.adam_beta2()})
                                                                               .eps(l.adam_eps())
                                                                               .weight_decay(l.weight_decay()));
  }));
  return std::unique_ptr<GrpoTrainer>(new GrpoTrainer(std::move(state)));
}

Transformer& GrpoTrainer::policy() { return state_->policy; }
std::string GrpoTrainer::device() const { return state_->device.str(); }
int64_t GrpoTrainer::steps() const { return state_->steps; }
int64_t GrpoTrainer::optimizer_steps() const { return state_->optimizer_steps; }
int64_t GrpoTrainer::nonfinite_steps_skipped() const { return state_->nonfinite_steps_skipped; }
int64_t GrpoTrainer::groups_skipped_no_signal() const { return state_->groups_skipped_no_signal; }
int64_t GrpoTrainer::samples_masked() const { return state_->samples_masked; }
int64_t GrpoTrainer::batches_skipped_all_masked() const { return state_->batches_skipped_all_masked; }
int64_t GrpoTrainer::batches_skipped_no_signal() const { return state_->batches_skipped_no_signal; }

absl::StatusOr<v1::StepMetrics> GrpoTrainer::Step(const std::vector<v1::RolloutGroup>& groups) {
  return TorchCall("GRPO step", [&] { return StepUnchecked(groups); });
}

absl::StatusOr<v1::StepMetrics> GrpoTrainer::StepUnchecked(const std::vector<v1::RolloutGroup>& groups) {
  State& s = *state_;
  const v1::LearnerConfig& l = s.learner;
  v1::StepMetrics metrics;
  metrics.set_groups(static_cast<int64_t>(groups.size()));
  metrics.set_ranks(s.world());

  // Rewards and advantages per group, then the rows to train.
  const ScoredGroups scored = ScoreGroups(groups, l, s.advantage_options, s.distill.coef > 0, &metrics);
  s.groups_skipped_no_signal += scored.skipped_no_signal;
  s.samples_masked += scored.masked;
  RLJ_ASSIGN_OR_RETURN(std::vector<TrainRow> rows,
                       SelectTrainRows(groups, scored.advantages, l.truncated() == v1::LearnerConfig::mask,
                                       s.policy->config().max_seq_len, s.distill));
  if (rows.empty()) {  // nothing to learn from: the policy, the optimiser and the schedule are left as they were
    const bool all_masked = scored.valid_samples == 0;
    ++(all_masked ? s.batches_skipped_all_masked : s.batches_skipped_no_signal);
    metrics.set_batch_skipped(all_masked ? "all_masked" : "no_signal");
    return metrics;
  }
  WeighRows(s.aggregation, &rows, &metrics);

  // This rank's share, packed into micro-batches, and the optimiser passes over them.
  const std::vector<const TrainRow*> mine = RankShare(rows, s.rank(), s.world());
  const auto start = std::chrono::steady_clock::now();
  std::vector<Batch> batches = s.BuildBatches(mine);
  metrics.set_micro_batches(static_cast<int64_t>(batches.size()));
  const double lr = ScheduledLearningRate(l, s.steps, s.total_steps);
  metrics.set_lr(lr);
  for (auto& group : s.optimizer->param_groups()) static_cast<torch::optim::AdamWOptions&>(group.options()).lr(lr);
  RLJ_ASSIGN_OR_RETURN(const EpochTotals totals, s.Train(batches));
  ++s.steps;
  metrics.set_update_skipped_nonfinite(totals.skipped);
  SetLossMetrics(totals, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), &metrics);
  return metrics;
}

std::vector<Batch> GrpoTrainer::State::BuildBatches(const std::vector<const TrainRow*>& mine) {
  std::vector<Batch> batches;
  for (const auto& micro : MicroBatches(mine, learner.micro_batch_tokens())) {
    batches.push_back(BuildBatch(micro, distill.coef > 0, device));
  }
  if (reference) {
    at::NoGradGuard no_grad;
    CudaAutocast autocast_guard(autocast);
    for (Batch& batch : batches) {
      batch.ref_logprobs = TokenLogProbs(reference->forward(batch.inputs), batch.targets, temperature);
    }
  }
  return batches;
}

absl::StatusOr<EpochTotals> GrpoTrainer::State::Train(std::vector<Batch>& batches) {
  const std::vector<at::Tensor> parameters = policy->parameters();
  const int epochs = std::max(1, learner.ppo_epochs());
  EpochTotals totals;
  for (int epoch = 0; epoch < epochs; ++epoch) {
    optimizer->zero_grad();
    at::Tensor sums = AccumulateGradients(batches, epoch);
    if (world() > 1) RLJ_RETURN_IF_ERROR(AllReduce(parameters, sums));
    const at::Tensor host = sums.cpu();
    const double* values = host.data_ptr<double>();
    const double loss_value = inject_nonfinite_from_step >= 0 && steps >= inject_nonfinite_from_step
                                  ? std::numeric_limits<double>::quiet_NaN()
                                  : values[0];
    ++totals.epochs_run;
    totals.loss += loss_value;
    for (int k = 0; k < kNumPolicyLossStats; ++k) totals.stats[k] += values[1 + k];
    if (epoch == 0) {
      totals.entropy = values[1 + kNumPolicyLossStats];
      totals.entropy_tokens = values[2 + kNumPolicyLossStats];
    }
    const ClippedGradients gradients = ClipGradients(parameters, loss_value, learner.grad_clip());
    if (gradients.norm_taken) {
      totals.norm += gradients.norm;
      ++totals.norms_taken;
    }
    if (!StepUnlessNonFinite(*optimizer, gradients, &nonfinite_steps_skipped)) {
      totals.skipped = true;
      break;
    }
    ++optimizer_steps;
    totals.trained_tokens += values[1 + kStatTokens];
  }
  return totals;
}

at::Tensor GrpoTrainer::State::AccumulateGradients(std::vector<Batch>& batches, int epoch) {
  const bool want_old = loss_options.tis_cap > 0;
  const bool entropy_in_loss = loss_options.entropy_coef != 0;
  const auto stat_options = at::TensorOptions().dtype(at::kDouble).device(device);
  at::Tensor sums = at::zeros({kNumPolicyLossStats + 3}, stat_options);
  for (Batch& batch : batches) {
    at::Tensor logits;
    {
      CudaAutocast autocast_guard(autocast);
      logits = policy->forward(batch.inputs);
    }
    PolicyLossInputs inputs;
    inputs.logprobs = TokenLogProbs(logits, batch.targets, temperature);
    if (want_old) {
      if (epoch == 0) batch.old_logprobs = inputs.logprobs.detach();
      inputs.old_logprobs = batch.old_logprobs;
    }
    inputs.behaviour_logprobs = batch.behaviour;
    inputs.ref_logprobs = batch.ref_logprobs;
    inputs.advantages = batch.advantages;
    inputs.token_advantages = batch.token_advantages;
    inputs.weights = batch.weights;
    if (entropy_in_loss) inputs.entropy = TokenEntropy(logits, temperature);
    const PolicyLossResult loss = PolicyLoss(inputs, loss_options);
    loss.loss.backward();
    at::Tensor entropy_metric = at::zeros({2}, stat_options);
    if (epoch == 0 && !entropy_in_loss) {
      at::NoGradGuard no_grad;
      const at::Tensor trained_logits =
          logits.detach().reshape({-1, logits.size(-1)}).index_select(0, batch.mask.reshape({-1}).nonzero().squeeze(1));
      entropy_metric = at::stack({TokenEntropy(trained_logits, temperature).sum().to(at::kDouble),
                                  at::scalar_tensor(static_cast<double>(trained_logits.size(0)), stat_options)});
    } else if (epoch == 0) {
      entropy_metric = at::stack({loss.stats[kStatEntropy], loss.stats[kStatTokens]});
    }
    sums.add_(at::cat({loss.loss.detach().to(at::kDouble).reshape({1}), loss.stats, entropy_metric}));
  }
  return sums;
}

absl::Status GrpoTrainer::State::AllReduce(const std::vector<at::Tensor>& parameters, at::Tensor& sums) {
  // Each rank's loss is its share of the step's global mean, so the summed gradient is the union's.
  std::vector<at::Tensor> flat;
  flat.reserve(parameters.size());
  for (const at::Tensor& parameter : parameters) {
    flat.push_back(parameter.grad().defined() ? parameter.grad().reshape({-1})
                                              : at::zeros({parameter.numel()}, parameter.options()));
  }
  at::Tensor gradients = at::cat(flat);
  RLJ_RETURN_IF_ERROR(ranks->AllReduceSum(gradients));
  RLJ_RETURN_IF_ERROR(ranks->AllReduceSum(sums));
  at::NoGradGuard no_grad;
  int64_t offset = 0;
  for (const at::Tensor& parameter : parameters) {
    at::Tensor slice = gradients.narrow(0, offset, parameter.numel()).view(parameter.sizes());
    if (parameter.grad().defined()) {
      parameter.grad().copy_(slice);
    } else {
      at::Tensor target = parameter;
      target.mutable_grad() = slice.clone();
    }
    offset += parameter.numel();
  }
  return absl::OkStatus();
}

absl::StatusOr<TrainerState> GrpoTrainer::ExportState() const {
  const State& s = *state_;
  TrainerState state{s.steps,
                     s.optimizer_steps,
                     s.nonfinite_steps_skipped,
                     s.groups_skipped_no_signal,
                     s.samples_masked,
                     s.batches_skipped_all_masked,
                     s.batches_skipped_no_signal,
                     {},
                     {}};
  RLJ_RETURN_IF_ERROR(TorchCall("saving the optimiser state", [&] {
    torch::serialize::OutputArchive archive;
    s.optimizer->save(archive);
    archive.save_to([&](const void* data, size_t size) -> size_t {
      state.optimizer.append(static_cast<const char*>(data), size);
      return size;
    });
    at::Generator generator = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(generator.mutex());
    state.rng = TensorBytes(generator.get_state());
  }));
  return state;
}

absl::Status GrpoTrainer::ImportState(const TrainerState& state) {
  State& s = *state_;
  RLJ_RETURN_IF_ERROR(TorchCall("restoring the optimiser state", [&] {
    torch::serialize::InputArchive archive;
    archive.load_from(state.optimizer.data(), state.optimizer.size());
    s.optimizer->load(archive);
    // The moments follow the parameters' device.
    for (auto& [key, param_state] : s.optimizer->state()) {
      auto& adam = static_cast<torch::optim::AdamWParamState&>(*param_state);
      adam.exp_avg(adam.exp_avg().to(s.device));
      adam.exp_avg_sq(adam.exp_avg_sq().to(s.device));
      if (adam.max_exp_avg_sq().defined()) adam.max_exp_avg_sq(adam.max_exp_avg_sq().to(s.device));
    }
    if (!state.rng.empty()) {
      at::Generator generator = at::detail::getDefaultCPUGenerator();
      std::lock_guard<std::mutex> lock(generator.mutex());
      at::Tensor rng = at::empty({static_cast<int64_t>(state.rng.size())}, at::TensorOptions().dtype(at::kByte));
      std::memcpy(rng.data_ptr(), state.rng.data(), state.rng.size());
      generator.set_state(rng);
    }
  }));
  s.steps = state.steps;
  s.optimizer_steps = state.optimizer_steps;
  s.nonfinite_steps_skipped = state.nonfinite_steps_skipped;
  s.groups_skipped_no_signal = state.groups_skipped_no_signal;
  s.samples_masked = state.samples_masked;
  s.batches_skipped_all_masked = state.batches_skipped_all_masked;
  s.batches_skipped_no_signal = state.batches_skipped_no_signal;
  return absl::OkStatus();
}

absl::Status GrpoTrainer::SynchronizeFromRankZero() {
  State& s = *state_;
  if (s.world() <= 1) return absl::OkStatus();
  std::vector<at::Tensor> tensors = s.policy->parameters();
  if (s.reference) {
    for (const at::Tensor& t : s.reference->parameters()) tensors.push_back(t);
  }
  for (at::Tensor& tensor : tensors) {
    at::Tensor data = tensor.detach();
    RLJ_RETURN_IF_ERROR(s.ranks->Broadcast(data, 0));
  }
  std::string packed;
  if (s.rank() == 0) {
    RLJ_ASSIGN_OR_RETURN(TrainerState state, ExportState());
    packed = PackState(state);
  }
  RLJ_RETURN_IF_ERROR(s.ranks->BroadcastBytes(&packed, 0));
  if (s.rank() == 0) return absl::OkStatus();
  RLJ_ASSIGN_OR_RETURN(TrainerState state, UnpackState(packed));
  return ImportState(state);
}

}  // namespace rlj
