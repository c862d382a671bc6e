// sft_trainer_test.cc: supervised warm start: sequence building, the warmup schedule, a tiny model that
// lowers its loss on a tiny dataset, `RunSft` end to end with its checkpoint, and non-finite steps: skipped and
// counted as GRPO's are, and learner.max_nonfinite_steps_in_a_row of them in a row stop `rlj sft` writing nothing.
#include "learner/sft_trainer.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <vector>

#include "common/dataset.h"
#include "common/tokenizer/byte_tokenizer.h"
#include "model/checkpoint/checkpoint.h"
#include "model/transformer.h"
#include "test_util.h"

namespace rlj {
namespace {

v1::RunConfig TinyConfig() {
  v1::RunConfig config;
  config.set_seed(3);
  config.mutable_runtime()->set_device("cpu");
  auto* model = config.mutable_model();
  model->set_vocab_size(259);
  model->set_d_model(32);
  model->set_n_layers(1);
  model->set_n_heads(2);
  model->set_ffn_hidden(64);
  model->set_max_seq_len(32);
  auto* sft = config.mutable_sft();
  sft->set_lr(3e-3);
  sft->set_warmup_steps(5);
  sft->set_batch_size(8);
  sft->set_steps(60);
  return config;
}

std::vector<PromptRow> TinyRows() {
  return {{"1", "1+2=", "3"}, {"2", "2+2=", "4"}, {"3", "4+1=", "5"}, {"4", "3+3=", "6"},
          {"5", "0+7=", "7"}, {"6", "5+3=", "8"}, {"7", "6+3=", "9"}, {"8", "1+1=", "2"}};
}

std::vector<const SftExample*> All(const SftExamples& data) {
  std::vector<const SftExample*> out;
  for (const SftExample& example : data.examples) out.push_back(&example);
  return out;
}

TEST(BuildSftExamples, PromptReferenceEos) {
  ByteTokenizer tokenizer;
  const SftExamples data =
      BuildSftExamples({{"a", "ab", "c"}, {"b", "no reference", ""}, {"c", "abcdef", "gh"}}, tokenizer, 6);
  ASSERT_EQ(data.examples.size(), 1u);
  // <bos> a b | c <eos>
  EXPECT_EQ(data.examples[0].tokens, std::vector<int32_t>({256, 97, 98, 99, 257}));
  EXPECT_EQ(data.examples[0].prompt_length, 3);
  EXPECT_EQ(data.skipped_no_reference, 1);
  EXPECT_EQ(data.skipped_too_long, 1);  // 1 + 6 + 2 + 1 = 10 > 6
}

TEST(SftTrainer, WarmupThenConstantLearningRate) {
  const v1::RunConfig config = TinyConfig();
  at::manual_seed(1);
  Transformer model(TransformerConfig::FromProto(config.model()).value());
  RLJ_ASSERT_OK_AND_ASSIGN(auto trainer, SftTrainer::Create(config, model));
  ByteTokenizer tokenizer;
  const SftExamples data = BuildSftExamples(TinyRows(), tokenizer, 32);
  const std::vector<double> expected = {0.6e-3, 1.2e-3, 1.8e-3, 2.4e-3, 3e-3, 3e-3, 3e-3};  // lr × (step+1)/5
  for (double lr : expected) {
    EXPECT_NEAR(trainer->scheduled_lr(), lr, 1e-12);
    RLJ_ASSERT_OK(trainer->Step(All(data)));
  }
  EXPECT_EQ(trainer->steps(), 7);
}

TEST(SftTrainer, TinyModelLowersItsLoss) {
  const v1::RunConfig config = TinyConfig();
  at::manual_seed(1);
  Transformer model(TransformerConfig::FromProto(config.model()).value());
  RLJ_ASSERT_OK_AND_ASSIGN(auto trainer, SftTrainer::Create(config, model));
  ByteTokenizer tokenizer;
  const SftExamples data = BuildSftExamples(TinyRows(), tokenizer, 32);
  RLJ_ASSERT_OK_AND_ASSIGN(double before, trainer->Loss(All(data)));
  EXPECT_NEAR(before, std::log(259.0), 0.3);  // an untrained model is close to uniform
  for (int step = 0; step < 60; ++step) RLJ_ASSERT_OK(trainer->Step(All(data)));
  RLJ_ASSERT_OK_AND_ASSIGN(double after, trainer->Loss(All(data)));
  EXPECT_LT(after, 0.5 * before);
}

TEST(RunSft, TrainsAndSavesTheCheckpoint) {
  testing::ScratchDir dir;
  RLJ_ASSERT_OK(WritePromptDataset(dir.file("train.jsonl"), TinyRows()));
  v1::RunConfig config = TinyConfig();
  config.mutable_data()->set_train_path(dir.file("train.jsonl"));
  config.mutable_sft()->set_steps(40);
  std::vector<double> losses;
  SftOptions options;
  options.run_dir = dir.file("run");
  options.on_step = [&](int64_t step, double loss) {
    EXPECT_EQ(step, static_cast<int64_t>(losses.size()) + 1);
    losses.push_back(loss);
  };
  RLJ_ASSERT_OK(RunSft(config, options));
  ASSERT_EQ(losses.size(), 40u);
  EXPECT_LT(losses.back(), 0.5 * losses.front());

  // Default output: <run_dir>/sft; state step = sft steps, policy version 0.
  RLJ_ASSERT_OK_AND_ASSIGN(LoadedCheckpoint checkpoint, LoadCheckpoint(dir.file("run") + "/sft"));
  EXPECT_EQ(checkpoint.state.step, 40);
  EXPECT_EQ(checkpoint.state.policy_version, 0);

  // The saved model beats the seeded initial model on the data.
  ByteTokenizer tokenizer;
  const SftExamples data = BuildSftExamples(TinyRows(), tokenizer, 32);
  at::manual_seed(config.seed());
  Transformer initial(TransformerConfig::FromProto(config.model()).value());
  RLJ_ASSERT_OK_AND_ASSIGN(auto initial_trainer, SftTrainer::Create(config, initial));
  RLJ_ASSERT_OK_AND_ASSIGN(auto trained_trainer, SftTrainer::Create(config, checkpoint.model));
  RLJ_ASSERT_OK_AND_ASSIGN(double initial_loss, initial_trainer->Loss(All(data)));
  RLJ_ASSERT_OK_AND_ASSIGN(double trained_loss, trained_trainer->Loss(All(data)));
  EXPECT_NEAR(initial_loss, losses.front(), 0.5);
  EXPECT_LT(trained_loss, 0.5 * initial_loss);

  // An explicit output directory wins, and init_checkpoint continues from the saved model.
  config.mutable_model()->set_init_checkpoint(dir.file("run") + "/sft");
  config.mutable_sft()->set_steps(2);
  options.output_dir = dir.file("second");
  losses.clear();
  RLJ_ASSERT_OK(RunSft(config, options));
  EXPECT_TRUE(std::filesystem::exists(dir.file("second") + "/model.safetensors"));
  EXPECT_LT(losses.front(), 0.75 * initial_loss);
}

TEST(RunSft, AStopRequestEndsTheRunWithinAStepAndWritesNothing) {
  testing::ScratchDir dir;
  RLJ_ASSERT_OK(WritePromptDataset(dir.file("train.jsonl"), TinyRows()));
  v1::RunConfig config = TinyConfig();
  config.mutable_data()->set_train_path(dir.file("train.jsonl"));
  config.mutable_sft()->set_steps(1000);
  int64_t steps_taken = 0;
  SftOptions options;
  options.output_dir = dir.file("out");
  options.on_step = [&](int64_t step, double) { steps_taken = step; };
  options.stop_requested = [&] { return steps_taken >= 3; };
  EXPECT_TRUE(testing::FailsWith(RunSft(config, options), absl::StatusCode::kCancelled,
                                 "stopped after step 3 of 1000; no checkpoint written to " + dir.file("out")));
  EXPECT_EQ(steps_taken, 3);
  EXPECT_FALSE(std::filesystem::exists(dir.file("out")));
}

TEST(RunSft, ErrorsNameWhatIsMissing) {
  testing::ScratchDir dir;
  v1::RunConfig config = TinyConfig();
  SftOptions options;
  options.run_dir = dir.path();
  EXPECT_TRUE(testing::FailsWith(RunSft(config, options), absl::StatusCode::kInvalidArgument, "data.train_path"));
  RLJ_ASSERT_OK(WritePromptDataset(dir.file("train.jsonl"), {{"1", "a prompt", ""}}));
  config.mutable_data()->set_train_path(dir.file("train.jsonl"));
  EXPECT_TRUE(
      testing::FailsWith(RunSft(config, options), absl::StatusCode::kInvalidArgument, "no row has a reference"));
  EXPECT_TRUE(
      testing::FailsWith(RunSft(config, SftOptions{}), absl::StatusCode::kInvalidArgument, "no output directory"));
}

// A seeded tiny model whose token embedding is all NaN (as an fp16 overflow or a bad disk leaves it): every
// loss and gradient through it is NaN.
Transformer PoisonedModel(const v1::RunConfig& config) {
  at::manual_seed(1);
  Transformer model(TransformerConfig::FromProto(config.model()).value());
  NamedTensors tensors = NamedParameters(model);
  for (auto& [name, tensor] : tensors) {
    if (name == "model.embed_tokens.weight") tensor = at::full_like(tensor, NAN);
  }
  EXPECT_TRUE(LoadNamedTensors(model, tensors).ok());
  return model;
}

TEST(SftTrainer, ANonFiniteLossSkipsTheUpdateAndCountsIt) {
  const v1::RunConfig config = TinyConfig();
  Transformer model = PoisonedModel(config);
  std::vector<at::Tensor> before;
  for (const at::Tensor& parameter : model->parameters()) before.push_back(parameter.detach().clone());
  RLJ_ASSERT_OK_AND_ASSIGN(auto trainer, SftTrainer::Create(config, model));
  ByteTokenizer tokenizer;
  const SftExamples data = BuildSftExamples(TinyRows(), tokenizer, 32);
  ASSERT_GE(data.examples.size(), 2u);
  const std::vector<const SftExample*> batch = {&data.examples[0], &data.examples[1]};
  for (int64_t step = 1; step <= 3; ++step) {
    RLJ_ASSERT_OK_AND_ASSIGN(double loss, trainer->Step(batch));  // not an error: skipped, as in GRPO
    EXPECT_TRUE(std::isnan(loss)) << loss;
    EXPECT_EQ(trainer->nonfinite_steps_skipped(), step);
    EXPECT_EQ(trainer->steps(), step);  // the schedule moves on, as GrpoTrainer's does
  }
  const std::vector<at::Tensor> after = trainer->model()->parameters();
  ASSERT_EQ(after.size(), before.size());
  for (size_t i = 0; i < after.size(); ++i) {
    // NaN ≠ NaN: compare with the poisoned entries (NaN before and after) mapped to 0.
    EXPECT_TRUE(at::equal(at::nan_to_num(after[i].detach()), at::nan_to_num(before[i]))) << "parameter " << i;
    EXPECT_TRUE(!after[i].grad().defined() || after[i].grad().abs().sum().item<double>() == 0.0) << "parameter " << i;
  }
}

TEST(RunSft, NonFiniteStepsInARowStopTheRunAndWriteNothing) {
  testing::ScratchDir dir;
  RLJ_ASSERT_OK(WritePromptDataset(dir.file("train.jsonl"), TinyRows()));
  v1::RunConfig config = TinyConfig();
  {
    Transformer poisoned = PoisonedModel(config);
    RLJ_ASSERT_OK(SaveCheckpoint(dir.file("poisoned"), poisoned, CheckpointState{}));
  }
  config.mutable_model()->set_init_checkpoint(dir.file("poisoned"));
  config.mutable_data()->set_train_path(dir.file("train.jsonl"));
  config.mutable_learner()->set_max_nonfinite_steps_in_a_row(3);
  std::vector<double> losses;
  SftOptions options;
  options.output_dir = dir.file("out");
  options.on_step = [&](int64_t, double loss) { losses.push_back(loss); };
  EXPECT_TRUE(testing::FailsWith(RunSft(config, options), absl::StatusCode::kAborted,
                                 "sft step 3: 3 steps in a row had a non-finite loss or gradient norm and were "
                                 "skipped (learner.max_nonfinite_steps_in_a_row = 3; 3 skipped in all): stopped, "
                                 "no checkpoint written to " +
                                     dir.file("out")));
  ASSERT_EQ(losses.size(), 3u);
  for (double loss : losses) EXPECT_TRUE(std::isnan(loss)) << loss;
  EXPECT_FALSE(std::filesystem::exists(dir.file("out")));

  // 0 = never stop: every step is skipped and the run ends normally, the weights as they started.
  config.mutable_learner()->set_max_nonfinite_steps_in_a_row(0);
  config.mutable_sft()->set_steps(4);
  losses.clear();
  RLJ_ASSERT_OK(RunSft(config, options));
  EXPECT_EQ(losses.size(), 4u);
  EXPECT_TRUE(std::filesystem::exists(dir.file("out") + "/model.safetensors"));
}

}  // namespace
}  // namespace rlj
