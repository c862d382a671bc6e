// sft_nonfinite_test.cc: SFT on a model whose loss is NaN: the update is skipped and counted as GRPO's is,
// the weights stay as they were, and learner.max_nonfinite_steps_in_a_row such steps in a row stop `rlj sft`
// without writing a checkpoint.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <vector>

#include "common/dataset.h"
#include "common/tokenizer/byte_tokenizer.h"
#include "learner/sft_trainer.h"
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
  model->set_d_model(16);
  model->set_n_layers(1);
  model->set_n_heads(2);
  model->set_ffn_hidden(32);
  model->set_max_seq_len(32);
  auto* sft = config.mutable_sft();
  sft->set_lr(3e-3);
  sft->set_warmup_steps(0);
  sft->set_batch_size(2);
  sft->set_steps(10);
  return config;
}

std::vector<PromptRow> TinyRows() { return {{"1", "1+2=", "3"}, {"2", "2+2=", "4"}}; }

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
  ASSERT_EQ(data.examples.size(), 2u);
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
                                 "no checkpoint written to " + dir.file("out")));
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
