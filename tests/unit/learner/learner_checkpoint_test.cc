// learner_checkpoint_test.cc: resumable checkpoints: what they hold, keep-last-K, refusal of corrupt and
// truncated files (falling back to the previous good one), and an exact resume of the trainer.
#include "learner/learner_checkpoint.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "common/file_util.h"
#include "learner/grpo_trainer.h"
#include "learner_fixtures.h"
#include "model/checkpoint/checkpoint.h"
#include "model/transformer.h"
#include "test_util.h"

namespace rlj {
namespace {

namespace fs = std::filesystem;

Transformer TinyModel(const v1::RunConfig& config, uint64_t seed = 7) {
  at::manual_seed(seed);
  return Transformer(TransformerConfig::FromProto(config.model()).value());
}

std::vector<v1::RolloutGroup> Groups(int64_t version) {
  return {testing::MakeTwoCompletionGroup("a", version, -2.0f), testing::MakeTwoCompletionGroup("b", version, -3.0f)};
}

bool SameParameters(Transformer& a, Transformer& b) {
  const auto pa = a->parameters();
  const auto pb = b->parameters();
  if (pa.size() != pb.size()) return false;
  for (size_t i = 0; i < pa.size(); ++i) {
    if (!at::equal(pa[i], pb[i])) return false;
  }
  return true;
}

LearnerCheckpointContents Contents(int64_t step, const TrainerState& trainer) {
  LearnerCheckpointContents contents;
  contents.step = step;
  contents.version = step + 100;
  contents.trainer = trainer;
  contents.dispatcher = R"({"rows":6,"epoch":1,"cursor":2})";
  return contents;
}

void FlipByte(const std::string& path, size_t offset) {
  std::fstream file(path, std::ios::in | std::ios::out | std::ios::binary);
  file.seekg(static_cast<std::streamoff>(offset));
  char c = 0;
  file.get(c);
  file.seekp(static_cast<std::streamoff>(offset));
  file.put(static_cast<char>(c ^ 0x5a));
}

TEST(LearnerCheckpoint, HoldsEverythingAResumeNeedsAndKeepsTheLastK) {
  testing::ScratchDir dir;
  const std::string checkpoints = dir.file("checkpoints");
  const v1::RunConfig config = testing::TinyLearnerConfig();
  Transformer model = TinyModel(config);
  RLJ_ASSERT_OK_AND_ASSIGN(auto trainer, GrpoTrainer::Create(config, model));
  RLJ_ASSERT_OK(trainer->Step(Groups(0)));
  RLJ_ASSERT_OK_AND_ASSIGN(TrainerState state, trainer->ExportState());
  EXPECT_EQ(state.steps, 1);
  EXPECT_EQ(state.optimizer_steps, 1);
  EXPECT_FALSE(state.optimizer.empty());
  EXPECT_FALSE(state.rng.empty());

  for (int64_t step : {2, 4, 6}) {
    RLJ_ASSERT_OK_AND_ASSIGN(std::string written,
                             WriteLearnerCheckpoint(checkpoints, model, Contents(step, state), /*keep=*/2));
    EXPECT_EQ(written, checkpoints + "/step-" + std::to_string(step));
  }
  // step-2 was deleted; no temporary directories are left behind.
  const auto listed = ListStepCheckpoints(checkpoints);
  ASSERT_EQ(listed.size(), 2u);
  EXPECT_EQ(listed[0].first, 4);
  EXPECT_EQ(listed[1].first, 6);
  for (const auto& entry : fs::directory_iterator(checkpoints)) {
    EXPECT_EQ(entry.path().filename().string().find(".tmp"), std::string::npos) << entry.path();
  }
  RLJ_ASSERT_OK_AND_ASSIGN(std::string latest, ReadFile(checkpoints + "/latest"));
  EXPECT_EQ(latest, "step-6\n");
  // The checkpoint is also a plain model directory.
  RLJ_ASSERT_OK(LoadCheckpoint(checkpoints + "/step-6").status());

  RLJ_ASSERT_OK_AND_ASSIGN(std::optional<ResumePoint> point, FindResumePoint(checkpoints));
  ASSERT_TRUE(point.has_value());
  EXPECT_EQ(point->dir, checkpoints + "/step-6");
  EXPECT_TRUE(point->refused.empty());
  EXPECT_EQ(point->contents.step, 6);
  EXPECT_EQ(point->contents.version, 106);
  EXPECT_EQ(point->contents.trainer.steps, 1);
  EXPECT_EQ(point->contents.trainer.optimizer_steps, 1);
  EXPECT_EQ(point->contents.trainer.optimizer, state.optimizer);
  EXPECT_EQ(point->contents.trainer.rng, state.rng);
  EXPECT_EQ(point->contents.dispatcher, R"({"cursor":2,"epoch":1,"rows":6})");  // JSON, keys sorted
  const NamedTensors parameters = NamedParameters(model);
  ASSERT_EQ(point->weights.size(), parameters.size());
  std::map<std::string, at::Tensor> saved(point->weights.begin(), point->weights.end());
  for (const auto& [name, tensor] : parameters) {
    ASSERT_EQ(saved.count(name), 1u) << name;
    EXPECT_TRUE(at::equal(saved[name], tensor.detach().cpu())) << name;
  }
}

TEST(LearnerCheckpoint, CorruptOrTruncatedCheckpointsAreRefusedForThePreviousGoodOne) {
  testing::ScratchDir dir;
  const std::string checkpoints = dir.file("checkpoints");
  const v1::RunConfig config = testing::TinyLearnerConfig();
  Transformer model = TinyModel(config);
  RLJ_ASSERT_OK_AND_ASSIGN(auto trainer, GrpoTrainer::Create(config, model));
  RLJ_ASSERT_OK_AND_ASSIGN(TrainerState state, trainer->ExportState());

  // Nothing there yet: a fresh start, not an error.
  RLJ_ASSERT_OK_AND_ASSIGN(std::optional<ResumePoint> none, FindResumePoint(checkpoints));
  EXPECT_FALSE(none.has_value());

  for (int64_t step : {1, 2, 3}) RLJ_ASSERT_OK(WriteLearnerCheckpoint(checkpoints, model, Contents(step, state), 0));
  // step-3: one flipped byte in the weights; step-2: the optimiser state cut short.
  FlipByte(checkpoints + "/step-3/model.safetensors", 200);
  const std::string optimizer = checkpoints + "/step-2/" + kOptimizerFile;
  fs::resize_file(optimizer, fs::file_size(optimizer) / 2);

  RLJ_ASSERT_OK_AND_ASSIGN(std::optional<ResumePoint> point, FindResumePoint(checkpoints));
  ASSERT_TRUE(point.has_value());
  EXPECT_EQ(point->contents.step, 1);
  ASSERT_EQ(point->refused.size(), 2u);
  EXPECT_NE(point->refused[0].find("step-3: model.safetensors: CRC-32C mismatch"), std::string::npos)
      << point->refused[0];
  EXPECT_NE(point->refused[1].find("step-2: optimizer.pt has"), std::string::npos) << point->refused[1];
  EXPECT_NE(point->refused[1].find("truncated"), std::string::npos) << point->refused[1];

  // A torn learner_state.json, and then nothing left that verifies: an error naming every refusal.
  RLJ_ASSERT_OK(WriteFileAtomically(checkpoints + "/step-1/" + kLearnerStateFile, "{\"step\": 1, \"polic"));
  const auto all_bad = FindResumePoint(checkpoints);
  EXPECT_TRUE(testing::FailsWith(all_bad, absl::StatusCode::kDataLoss, "can be resumed"));
  EXPECT_NE(all_bad.status().message().find("learner_state.json is unreadable"), std::string::npos);
}

// Killed between the rename of step-3 into place and the update of `latest`: step-3 is complete and is
// the one to resume from, though `latest` still names step-2.
TEST(LearnerCheckpoint, NewestCompleteStepWinsOverALaggingLatest) {
  testing::ScratchDir dir;
  const std::string checkpoints = dir.file("checkpoints");
  const v1::RunConfig config = testing::TinyLearnerConfig();
  Transformer model = TinyModel(config);
  RLJ_ASSERT_OK_AND_ASSIGN(auto trainer, GrpoTrainer::Create(config, model));
  RLJ_ASSERT_OK_AND_ASSIGN(TrainerState state, trainer->ExportState());
  for (int64_t step : {2, 3}) RLJ_ASSERT_OK(WriteLearnerCheckpoint(checkpoints, model, Contents(step, state), 0));
  RLJ_ASSERT_OK(WriteFileAtomically(checkpoints + "/latest", "step-2\n"));

  RLJ_ASSERT_OK_AND_ASSIGN(std::optional<ResumePoint> point, FindResumePoint(checkpoints));
  ASSERT_TRUE(point.has_value());
  EXPECT_EQ(point->contents.step, 3);
  EXPECT_TRUE(point->refused.empty());
}

TEST(LearnerCheckpoint, ResumedTrainerTakesExactlyTheSameNextStep) {
  testing::ScratchDir dir;
  const std::string checkpoints = dir.file("checkpoints");
  v1::RunConfig config = testing::TinyLearnerConfig();
  config.mutable_learner()->set_warmup_steps(2);
  config.mutable_learner()->set_lr_schedule(v1::LearnerConfig::cosine);
  config.mutable_learner()->set_steps(5);

  // The uninterrupted run: three steps.
  Transformer model = TinyModel(config);
  RLJ_ASSERT_OK_AND_ASSIGN(auto trainer, GrpoTrainer::Create(config, model));
  RLJ_ASSERT_OK(trainer->Step(Groups(0)));
  RLJ_ASSERT_OK(trainer->Step(Groups(1)));
  RLJ_ASSERT_OK_AND_ASSIGN(TrainerState state, trainer->ExportState());
  RLJ_ASSERT_OK(WriteLearnerCheckpoint(checkpoints, model, Contents(2, state), 3));
  const at::Tensor draw_after_checkpoint = at::rand({4});  // the RNG continues from the checkpointed state
  RLJ_ASSERT_OK_AND_ASSIGN(v1::StepMetrics third, trainer->Step(Groups(2)));

  // The resumed run: another random init, then the checkpoint's weights, optimiser, schedule and RNG.
  Transformer resumed_model = TinyModel(config, /*seed=*/99);
  RLJ_ASSERT_OK_AND_ASSIGN(std::optional<ResumePoint> point, FindResumePoint(checkpoints));
  ASSERT_TRUE(point.has_value());
  RLJ_ASSERT_OK(LoadNamedTensors(resumed_model, point->weights));
  RLJ_ASSERT_OK_AND_ASSIGN(auto resumed, GrpoTrainer::Create(config, resumed_model));
  RLJ_ASSERT_OK(resumed->ImportState(point->contents.trainer));
  EXPECT_EQ(resumed->steps(), 2);
  EXPECT_EQ(resumed->optimizer_steps(), 2);
  EXPECT_TRUE(at::equal(at::rand({4}), draw_after_checkpoint));
  RLJ_ASSERT_OK_AND_ASSIGN(v1::StepMetrics resumed_third, resumed->Step(Groups(2)));

  EXPECT_DOUBLE_EQ(resumed_third.lr(), third.lr());  // the cosine schedule's position
  EXPECT_DOUBLE_EQ(resumed_third.loss(), third.loss());
  EXPECT_DOUBLE_EQ(resumed_third.grad_norm(), third.grad_norm());
  // Bit-identical parameters: AdamW's moments and step counts came back too (a fresh optimiser's first
  // step would differ).
  EXPECT_TRUE(SameParameters(resumed_model, model));
}

}  // namespace
}  // namespace rlj
