// grpo_trainer.cc: batches scored groups into right-padded prompt+completion sequences and takes GRPO
// optimiser steps on the policy.
#include "learner/grpo_trainer.h"

#include <ATen/ATen.h>
#include <torch/optim/adamw.h>

#include <chrono>
#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"
#include "common/model/logprobs.h"
#include "common/model/transformer.h"
#include "common/status.h"
#include "common/tensor/torch_util.h"
#include "learner/grpo.h"

namespace rlj {
namespace {

// One trained completion: which group/rollout it is and its advantage.
struct TrainRow {
  const v1::RolloutGroup* group;
  const v1::Rollout* rollout;
  float advantage;
};

// The step's batch; logits at input position t predict target t (= sequence token t + 1).
struct Batch {
  at::Tensor inputs;      // [B, T] int64, right-padded with 0
  at::Tensor targets;     // [B, T] int64
  at::Tensor behaviour;   // [B, T] float, the sampler's log-prob at completion targets, 0 elsewhere
  at::Tensor mask;        // [B, T] bool, true at completion targets
  at::Tensor advantages;  // [B] float
};

Batch BuildBatch(const std::vector<TrainRow>& rows, const c10::Device& device) {
  const int64_t batch = static_cast<int64_t>(rows.size());
  int64_t length = 1;
  for (const TrainRow& row : rows) {
    length = std::max<int64_t>(length, row.group->prompt_tokens_size() + row.rollout->completion_tokens_size() - 1);
  }
  std::vector<int64_t> inputs(batch * length, 0);
  std::vector<int64_t> targets(batch * length, 0);
  std::vector<float> behaviour(batch * length, 0.0f);
  std::vector<uint8_t> mask(batch * length, 0);
  std::vector<float> advantages(batch);
  for (int64_t b = 0; b < batch; ++b) {
    const v1::RolloutGroup& group = *rows[b].group;
    const v1::Rollout& rollout = *rows[b].rollout;
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
      const int64_t t = prompt - 1 + j;
      mask[b * length + t] = 1;
      behaviour[b * length + t] = rollout.behaviour_logprobs(j);
    }
    advantages[b] = rows[b].advantage;
  }
  const auto to_device = [&](void* data, std::vector<int64_t> shape, at::ScalarType type) {
    return at::from_blob(data, shape, at::TensorOptions().dtype(type)).to(device, /*non_blocking=*/false, /*copy=*/true);
  };
  Batch out;
  out.inputs = to_device(inputs.data(), {batch, length}, at::kLong);
  out.targets = to_device(targets.data(), {batch, length}, at::kLong);
  out.behaviour = to_device(behaviour.data(), {batch, length}, at::kFloat);
  out.mask = to_device(mask.data(), {batch, length}, at::kByte).to(at::kBool);
  out.advantages = to_device(advantages.data(), {batch}, at::kFloat);
  return out;
}

}  // namespace

struct GrpoTrainer::State {
  v1::LearnerConfig learner;
  double temperature = 1.0;
  c10::Device device{c10::kCPU};
  Transformer policy{nullptr};
  Transformer reference{nullptr};  // only when kl_coef > 0
  std::unique_ptr<torch::optim::AdamW> optimizer;
  int64_t optimizer_steps = 0;
  int64_t nonfinite_steps_skipped = 0;
  int64_t groups_skipped_no_signal = 0;
  int64_t samples_masked = 0;
};

GrpoTrainer::GrpoTrainer(std::unique_ptr<State> state) : state_(std::move(state)) {}
GrpoTrainer::~GrpoTrainer() = default;

absl::StatusOr<std::unique_ptr<GrpoTrainer>> GrpoTrainer::Create(const v1::RunConfig& config,
                                                                 const Transformer& policy) {
  auto state = std::make_unique<State>();
  state->learner = config.learner();
  state->temperature = config.sampling().temperature();
  if (!(state->temperature > 0)) {
    return absl::InvalidArgumentError("sampling.temperature: must be > 0 for the learner's log-probs");
  }
  const std::string requested = config.learner().has_device() ? config.learner().device() : config.runtime().device();
  RLJ_ASSIGN_OR_RETURN(state->device, ResolveDevice(requested));
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
    state->optimizer = std::make_unique<torch::optim::AdamW>(
        state->policy->parameters(), torch::optim::AdamWOptions(l.lr())
                                         .betas({l.adam_beta1(), l.adam_beta2()})
                                         .eps(l.adam_eps())
                                         .weight_decay(l.weight_decay()));
  }));
  return std::unique_ptr<GrpoTrainer>(new GrpoTrainer(std::move(state)));
}

Transformer& GrpoTrainer::policy() { return state_->policy; }
std::string GrpoTrainer::device() const { return state_->device.str(); }
int64_t GrpoTrainer::optimizer_steps() const { return state_->optimizer_steps; }
int64_t GrpoTrainer::nonfinite_steps_skipped() const { return state_->nonfinite_steps_skipped; }
int64_t GrpoTrainer::groups_skipped_no_signal() const { return state_->groups_skipped_no_signal; }
int64_t GrpoTrainer::samples_masked() const { return state_->samples_masked; }

absl::StatusOr<v1::StepMetrics> GrpoTrainer::Step(const std::vector<v1::RolloutGroup>& groups) {
  return TorchCall("GRPO step", [&] { return StepUnchecked(groups); });
}

absl::StatusOr<v1::StepMetrics> GrpoTrainer::StepUnchecked(const std::vector<v1::RolloutGroup>& groups) {
  State& s = *state_;
  v1::StepMetrics metrics;
  metrics.set_groups(static_cast<int64_t>(groups.size()));

  // Rewards over every valid sample; advantages per group; the rows worth training on.
  std::vector<TrainRow> rows;
  double reward_sum = 0;
  double reward_squares = 0;
  int64_t valid_samples = 0;
  int64_t samples = 0;
  int64_t masked = 0;
  double advantage_abs_sum = 0;
  const int max_seq_len = s.policy->config().max_seq_len;
  for (const v1::RolloutGroup& group : groups) {
    std::vector<double> rewards;
    std::vector<bool> valid;
    for (const v1::Rollout& rollout : group.rollouts()) {
      rewards.push_back(rollout.reward());
      valid.push_back(rollout.valid());
      ++samples;
      if (!rollout.valid()) {
        ++masked;
        continue;
      }
      reward_sum += rollout.reward();
      reward_squares += rollout.reward() * rollout.reward();
      ++valid_samples;
    }
    const GroupAdvantageResult advantages = GroupAdvantages(rewards, valid);
    if (!advantages.has_signal) {
      ++s.groups_skipped_no_signal;
      continue;
    }
    for (int r = 0; r < group.rollouts_size(); ++r) {
      const v1::Rollout& rollout = group.rollouts(r);
      if (!rollout.valid() || rollout.completion_tokens().empty()) continue;
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
      rows.push_back(TrainRow{&group, &rollout, advantages.advantages[r]});
      advantage_abs_sum += std::abs(advantages.advantages[r]);
    }
  }
  s.samples_masked += masked;
  metrics.set_samples(samples);
  metrics.set_masked_samples(masked);
  if (valid_samples > 0) {
    const double mean = reward_sum / valid_samples;
    metrics.set_reward_mean(mean);
    metrics.set_reward_std(std::sqrt(std::max(0.0, reward_squares / valid_samples - mean * mean)));
  }
  if (rows.empty()) return metrics;  // nothing to learn from: the policy is left exactly as it was
  metrics.set_advantage_abs_mean(advantage_abs_sum / static_cast<double>(rows.size()));

  const auto start = std::chrono::steady_clock::now();
  const Batch batch = BuildBatch(rows, s.device);
  at::Tensor ref_logprobs;
  if (s.reference) {
    at::NoGradGuard no_grad;
    ref_logprobs = TokenLogProbs(s.reference->forward(batch.inputs), batch.targets, s.temperature);
  }
  const std::vector<at::Tensor> parameters = s.policy->parameters();
  const int epochs = std::max(1, s.learner.ppo_epochs());
  double loss_sum = 0, kl_sum = 0, clip_sum = 0, norm_sum = 0;
  int epochs_run = 0;
  int norms_taken = 0;
  double trained_tokens = 0;
  bool skipped = false;
  for (int epoch = 0; epoch < epochs; ++epoch) {
    s.optimizer->zero_grad();
    const at::Tensor logits = s.policy->forward(batch.inputs);
    const at::Tensor logprobs = TokenLogProbs(logits, batch.targets, s.temperature);
    const PolicyLossResult loss = GrpoPolicyLoss(logprobs, batch.behaviour, ref_logprobs, batch.advantages,
                                                 batch.mask, s.learner.clip_eps(), s.learner.kl_coef());
    if (epoch == 0) {
      at::NoGradGuard no_grad;
      const at::Tensor entropy = TokenEntropy(logits.detach(), s.temperature);
      const at::Tensor weight = batch.mask.to(at::kFloat);
      metrics.set_entropy((entropy * weight).sum().item<double>() / std::max(1.0, loss.masked_tokens));
    }
    const double loss_value = loss.loss.item<double>();
    ++epochs_run;
    loss_sum += loss_value;
    kl_sum += loss.kl_mean;
    clip_sum += loss.clip_fraction;
    if (!std::isfinite(loss_value)) {
      skipped = true;
      break;
    }
    loss.loss.backward();
    // Global L2 norm of every gradient, in one device sync.
    at::Tensor squares = at::zeros({}, at::TensorOptions().dtype(at::kDouble).device(s.device));
    for (const at::Tensor& parameter : parameters) {
      if (parameter.grad().defined()) squares = squares + parameter.grad().to(at::kDouble).square().sum();
    }
    const double grad_norm = std::sqrt(squares.item<double>());
    norm_sum += grad_norm;
    ++norms_taken;
    if (!std::isfinite(grad_norm)) {
      skipped = true;
      break;
    }
    const double clip = s.learner.grad_clip();
    if (clip > 0 && grad_norm > clip) {
      at::NoGradGuard no_grad;
      const double scale = clip / (grad_norm + 1e-6);
      for (const at::Tensor& parameter : parameters) {
        if (parameter.grad().defined()) parameter.grad().mul_(scale);
      }
    }
    s.optimizer->step();
    ++s.optimizer_steps;
    trained_tokens += loss.masked_tokens;
  }
  if (skipped) {
    s.optimizer->zero_grad();
    ++s.nonfinite_steps_skipped;
  }
  metrics.set_update_skipped_nonfinite(skipped);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  metrics.set_loss(loss_sum / epochs_run);
  metrics.set_kl(kl_sum / epochs_run);
  metrics.set_clip_fraction(clip_sum / epochs_run);
  // No norm was taken when the first loss was already non-finite: report NaN rather than a made-up 0.
  metrics.set_grad_norm(norms_taken > 0 ? norm_sum / norms_taken : std::numeric_limits<double>::quiet_NaN());
  metrics.set_tokens_per_s(seconds > 0 ? trained_tokens / seconds : 0);
  return metrics;
}

}  // namespace rlj
