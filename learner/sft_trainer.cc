// sft_trainer.cc: supervised fine-tuning on prompt → reference pairs (masked next-token cross-entropy)
// and the `rlj sft` run: data, model, steps, checkpoint.
#include "learner/sft_trainer.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <torch/optim/adamw.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <numeric>
#include <random>

#include "absl/strings/str_cat.h"
#include "common/config_validate.h"
#include "common/log.h"
#include "common/run_dir.h"
#include "common/status.h"
#include "common/tokenizer/tokenizer.h"
#include "learner/gradient_clip.h"
#include "model/checkpoint/checkpoint.h"
#include "model/logprobs.h"
#include "model/model_source.h"
#include "model/tensor/cuda_autocast.h"
#include "model/tensor/torch_util.h"
#include "model/transformer.h"

namespace rlj {
namespace {

constexpr double kSftGradClip = 1.0;
constexpr int kLogEverySteps = 20;

struct SftBatch {
  at::Tensor inputs;   // [B, T] int64, right-padded with 0
  at::Tensor targets;  // [B, T] int64
  at::Tensor mask;     // [B, T] float, 1 at reference/<eos> targets
  int64_t tokens = 0;  // sum of mask
};

SftBatch MakeBatch(const std::vector<const SftExample*>& examples, const c10::Device& device) {
  const int64_t batch = static_cast<int64_t>(examples.size());
  int64_t length = 1;
  for (const SftExample* example : examples) length = std::max<int64_t>(length, example->tokens.size() - 1);
  std::vector<int64_t> inputs(batch * length, 0);
  std::vector<int64_t> targets(batch * length, 0);
  std::vector<float> mask(batch * length, 0.0f);
  SftBatch out;
  for (int64_t b = 0; b < batch; ++b) {
    const std::vector<int32_t>& tokens = examples[b]->tokens;
    for (size_t t = 0; t + 1 < tokens.size(); ++t) {
      inputs[b * length + t] = tokens[t];
      targets[b * length + t] = tokens[t + 1];
      if (static_cast<int64_t>(t) + 1 >= examples[b]->prompt_length) {
        mask[b * length + t] = 1.0f;
        ++out.tokens;
      }
    }
  }
  const auto to_device = [&](void* data, at::ScalarType type) {
    return at::from_blob(data, {batch, length}, at::TensorOptions().dtype(type)).to(device, false, true);
  };
  out.inputs = to_device(inputs.data(), at::kLong);
  out.targets = to_device(targets.data(), at::kLong);
  out.mask = to_device(mask.data(), at::kFloat);
  return out;
}

absl::Status CheckBatch(const std::vector<const SftExample*>& batch) {
  if (batch.empty()) return absl::InvalidArgumentError("SFT batch is empty");
  for (const SftExample* example : batch) {
    if (example->tokens.size() < 2 || example->prompt_length < 1 ||
        example->prompt_length >= static_cast<int32_t>(example->tokens.size())) {
      return absl::InvalidArgumentError("SFT example without a prompt or without target tokens");
    }
  }
  return absl::OkStatus();
}

// The error that ends `rlj sft` after `in_a_row` skipped non-finite steps ending at `step`.
absl::Status TooManyNonFiniteSftSteps(int64_t step, int64_t in_a_row, int64_t total_skipped,
                                      const std::string& output) {
  return absl::AbortedError(absl::StrCat(
      "sft step ", step, ": ", in_a_row, " steps in a row had a non-finite loss or gradient norm and were skipped ",
      "(learner.max_nonfinite_steps_in_a_row = ", in_a_row, "; ", total_skipped,
      " skipped in all): stopped, no checkpoint written to ", output,
      ". Lower sft.lr, check the starting model and the data, or raise the limit (0 = never stop)"));
}

}  // namespace

SftExamples BuildSftExamples(const std::vector<PromptRow>& rows, const Tokenizer& tokenizer, int max_seq_len) {
  SftExamples out;
  for (const PromptRow& row : rows) {
    if (row.reference.empty()) {
      ++out.skipped_no_reference;
      continue;
    }
    SftExample example;
    example.tokens = tokenizer.EncodePrompt(row.prompt);
    example.prompt_length = static_cast<int32_t>(example.tokens.size());
    const std::vector<int32_t> reference = tokenizer.Encode(row.reference);
    example.tokens.insert(example.tokens.end(), reference.begin(), reference.end());
    example.tokens.push_back(tokenizer.eos_id());
    if (static_cast<int64_t>(example.tokens.size()) > max_seq_len) {
      ++out.skipped_too_long;
      continue;
    }
    out.examples.push_back(std::move(example));
  }
  return out;
}

struct SftTrainer::State {
  v1::SftConfig sft;
  c10::Device device{c10::kCPU};
  bool autocast = false;  // bf16 autocast on CUDA (learner.bf16)
  Transformer model{nullptr};
  std::unique_ptr<torch::optim::AdamW> optimizer;
  int64_t steps = 0;
  int64_t nonfinite_steps_skipped = 0;

  // Masked mean token cross-entropy of `batch` (differentiable).
  at::Tensor LossOf(const SftBatch& batch) {
    at::Tensor logits;
    {
      CudaAutocast autocast_guard(autocast);
      logits = model->forward(batch.inputs);
    }
    const at::Tensor logprobs = TokenLogProbs(logits, batch.targets, 1.0);
    return -(logprobs * batch.mask).sum() / batch.mask.sum().clamp_min(1.0);
  }
};

SftTrainer::SftTrainer(std::unique_ptr<State> state) : state_(std::move(state)) {}
SftTrainer::~SftTrainer() = default;

absl::StatusOr<std::unique_ptr<SftTrainer>> SftTrainer::Create(const v1::RunConfig& config, const Transformer& model) {
  auto state = std::make_unique<State>();
  state->sft = config.sft();
  RLJ_ASSIGN_OR_RETURN(state->device, ResolveDevice(config.runtime().device()));
  state->autocast = state->device.is_cuda() && config.learner().bf16();
  RLJ_RETURN_IF_ERROR(TorchCall("set up the SFT trainer", [&] {
    state->model = model;
    state->model->to(state->device);
    state->model->train();
    state->optimizer = std::make_unique<torch::optim::AdamW>(
        state->model->parameters(),
        torch::optim::AdamWOptions(state->sft.lr()).weight_decay(state->sft.weight_decay()));
  }));
  return std::unique_ptr<SftTrainer>(new SftTrainer(std::move(state)));
}

double SftTrainer::scheduled_lr() const {
  const int64_t warmup = state_->sft.warmup_steps();
  const double scale = warmup > 0 ? std::min(1.0, static_cast<double>(state_->steps + 1) / warmup) : 1.0;
  return state_->sft.lr() * scale;
}

int64_t SftTrainer::steps() const { return state_->steps; }
int64_t SftTrainer::nonfinite_steps_skipped() const { return state_->nonfinite_steps_skipped; }
std::string SftTrainer::device() const { return state_->device.str(); }
Transformer& SftTrainer::model() { return state_->model; }

absl::StatusOr<double> SftTrainer::Step(const std::vector<const SftExample*>& examples) {
  RLJ_RETURN_IF_ERROR(CheckBatch(examples));
  return TorchCall("SFT step", [&]() -> absl::StatusOr<double> {
    State& s = *state_;
    const SftBatch batch = MakeBatch(examples, s.device);
    for (auto& group : s.optimizer->param_groups()) {
      static_cast<torch::optim::AdamWOptions&>(group.options()).lr(scheduled_lr());
    }
    s.optimizer->zero_grad();
    const at::Tensor loss = s.LossOf(batch);
    const double loss_value = loss.item<double>();
    if (std::isfinite(loss_value)) loss.backward();  // a non-finite loss is dropped below, gradients unread
    const ClippedGradients gradients = ClipGradients(s.model->parameters(), loss_value, kSftGradClip);
    StepUnlessNonFinite(*s.optimizer, gradients, &s.nonfinite_steps_skipped);
    ++s.steps;
    return loss_value;
  });
}

absl::StatusOr<double> SftTrainer::Loss(const std::vector<const SftExample*>& examples) {
  RLJ_RETURN_IF_ERROR(CheckBatch(examples));
  return TorchCall("SFT loss", [&]() -> absl::StatusOr<double> {
    at::NoGradGuard no_grad;
    return state_->LossOf(MakeBatch(examples, state_->device)).item<double>();
  });
}

absl::Status RunSft(const v1::RunConfig& config, const SftOptions& options) {
  std::string output = options.output_dir;
  if (output.empty()) output = config.sft().output();
  if (output.empty() && !options.run_dir.empty()) output = RunDir(options.run_dir).sft_dir();
  if (output.empty()) return absl::InvalidArgumentError("sft: no output directory (sft.output or a run directory)");
  if (config.data().train_path().empty()) return absl::InvalidArgumentError("data.train_path: required for sft");

  SetTorchThreads(ResolveThreads(config, 0));
  RLJ_ASSIGN_OR_RETURN(std::vector<PromptRow> rows, LoadPromptDataset(config.data().train_path()));
  RLJ_ASSIGN_OR_RETURN(std::unique_ptr<Tokenizer> tokenizer, MakeTokenizer(config.tokenizer()));
  Transformer model{nullptr};
  RLJ_RETURN_IF_ERROR(LoadStartingModel(config, &model));
  const TransformerConfig shape = model->config();
  if (tokenizer->vocab_size() > shape.vocab_size) {
    return absl::InvalidArgumentError(absl::StrCat("model.vocab_size ", shape.vocab_size, " is smaller than the ",
                                                   v1::TokenizerConfig::Kind_Name(config.tokenizer().kind()),
                                                   " tokenizer's ", tokenizer->vocab_size()));
  }

  const SftExamples data = BuildSftExamples(rows, *tokenizer, shape.max_seq_len);
  if (data.skipped_too_long > 0 || data.skipped_no_reference > 0) {
    log::Warn("sft: skipped {} rows longer than max_seq_len {} and {} rows without a reference", data.skipped_too_long,
              shape.max_seq_len, data.skipped_no_reference);
  }
  if (data.examples.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(config.data().train_path(), ": no row has a reference that fits max_seq_len ", shape.max_seq_len));
  }

  RLJ_ASSIGN_OR_RETURN(std::unique_ptr<SftTrainer> trainer, SftTrainer::Create(config, model));
  const int64_t steps = config.sft().steps();
  const int64_t batch_size = config.sft().batch_size();
  log::Info("sft: {} examples, {} steps of {} on {}, lr {} (warmup {}), output {}", data.examples.size(), steps,
            batch_size, trainer->device(), config.sft().lr(), config.sft().warmup_steps(), output);

  // Batches walk through shuffled passes over the data.
  std::mt19937_64 rng(config.seed());
  std::vector<size_t> order(data.examples.size());
  std::iota(order.begin(), order.end(), 0);
  size_t cursor = order.size();
  const auto start = std::chrono::steady_clock::now();
  double loss_sum = 0;
  int64_t loss_count = 0;
  const int64_t max_nonfinite_in_a_row = config.learner().max_nonfinite_steps_in_a_row();
  int64_t nonfinite_in_a_row = 0;
  for (int64_t step = 1; step <= steps; ++step) {
    if (options.stop_requested && options.stop_requested()) {
      return absl::CancelledError(
          absl::StrCat("stopped after step ", step - 1, " of ", steps, "; no checkpoint written to ", output));
    }
    std::vector<const SftExample*> batch;
    while (static_cast<int64_t>(batch.size()) < batch_size) {
      if (cursor == order.size()) {
        std::shuffle(order.begin(), order.end(), rng);
        cursor = 0;
      }
      batch.push_back(&data.examples[order[cursor++]]);
    }
    const double lr = trainer->scheduled_lr();
    const int64_t skipped_before = trainer->nonfinite_steps_skipped();
    RLJ_ASSIGN_OR_RETURN(double loss, trainer->Step(batch));
    loss_sum += loss;
    ++loss_count;
    if (options.on_step) options.on_step(step, loss);
    if (trainer->nonfinite_steps_skipped() == skipped_before) {
      nonfinite_in_a_row = 0;
    } else {
      ++nonfinite_in_a_row;
      log::Warn("sft step {}/{}: the loss ({}) or the gradient norm is not finite: update skipped ({} skipped in all)",
                step, steps, loss, trainer->nonfinite_steps_skipped());
      if (max_nonfinite_in_a_row > 0 && nonfinite_in_a_row >= max_nonfinite_in_a_row) {
        return TooManyNonFiniteSftSteps(step, nonfinite_in_a_row, trainer->nonfinite_steps_skipped(), output);
      }
    }
    if (step % kLogEverySteps == 0 || step == steps || step == 1) {
      log::Info("sft step {}/{} | loss {:.4f} | lr {:.2e} | {:.1f} s", step, steps, loss_sum / loss_count, lr,
                std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
      loss_sum = 0;
      loss_count = 0;
    }
  }
  RLJ_RETURN_IF_ERROR(SaveCheckpoint(output, trainer->model(), CheckpointState{steps, 0}));
  log::Info("sft: checkpoint {}", output);
  return absl::OkStatus();
}

}  // namespace rlj
