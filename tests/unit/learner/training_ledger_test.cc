// training_ledger_test.cc: trained_groups.jsonl and the step_inputs/ files: one durable line per step,
// round-tripped step inputs, and the resume that cuts the ledger back to the checkpoint and hands back the
// recorded steps after it (stopping at a gap, a corrupt record or a version that does not follow on).
#include "learner/training_ledger.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "learner_fixtures.h"
#include "test_util.h"

namespace rlj {
namespace {

// A leased group as an actor sends it: "<actor>-g<n>", item `item`.
v1::RolloutGroup LeasedGroup(const std::string& actor, int n, uint64_t item, int64_t version) {
  v1::RolloutGroup group = testing::MakeTwoCompletionGroup(absl::StrCat(actor, "-g", n), version);
  group.set_actor(actor);
  group.set_prompt_id(absl::StrCat("p", item));
  group.set_lease_id("cafe0001-7");
  group.set_item_id(item);
  return group;
}

// Step `step` (version = step) of two groups with items 2·step and 2·step + 1.
StepInputs Step(int64_t step) {
  StepInputs inputs;
  inputs.step = step;
  inputs.version = step;
  inputs.groups = {
      LeasedGroup("actor-0", static_cast<int>(2 * step), static_cast<uint64_t>(2 * step), step - 1),
      LeasedGroup("actor-1", static_cast<int>(2 * step + 1), static_cast<uint64_t>(2 * step + 1), step - 1)};
  inputs.dispatcher = absl::StrCat(R"({"epoch":0,"cursor":)", 2 * step + 2, "}");
  return inputs;
}

std::vector<int64_t> LineSteps(const std::string& path) {
  auto lines = ReadTrainedGroups(path);
  EXPECT_TRUE(lines.ok()) << lines.status();
  std::vector<int64_t> steps;
  if (lines.ok()) {
    for (const LedgerLine& line : *lines) steps.push_back(line.step);
  }
  return steps;
}

TEST(TrainingLedger, RecordsOneDurableLinePerStepWithTheGroupIds) {
  testing::ScratchDir dir;
  RLJ_ASSERT_OK_AND_ASSIGN(auto ledger, TrainingLedger::StartFresh(dir.path()));
  RLJ_ASSERT_OK(ledger->Record(Step(1)));
  StepInputs skipped = Step(2);
  skipped.update_applied = false;
  RLJ_ASSERT_OK(ledger->Record(skipped));

  RLJ_ASSERT_OK_AND_ASSIGN(std::vector<LedgerLine> lines, ReadTrainedGroups(dir.file(kTrainedGroupsFile)));
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0].step, 1);
  EXPECT_EQ(lines[0].version, 1);
  EXPECT_TRUE(lines[0].update_applied);
  ASSERT_EQ(lines[0].groups.size(), 2u);
  EXPECT_EQ(lines[0].groups[0].group_id, "actor-0-g2");
  EXPECT_EQ(lines[0].groups[0].prompt_id, "p2");
  EXPECT_EQ(lines[0].groups[0].actor, "actor-0");
  EXPECT_EQ(lines[0].groups[0].lease_id, "cafe0001-7");
  EXPECT_EQ(lines[0].groups[0].item_id, 2u);
  EXPECT_EQ(lines[0].groups[0].policy_version, 0);
  EXPECT_EQ(lines[0].groups[1].group_id, "actor-1-g3");
  EXPECT_EQ(lines[0].groups[1].item_id, 3u);
  EXPECT_EQ(lines[1].step, 2);
  EXPECT_FALSE(lines[1].update_applied);
  EXPECT_EQ(lines[1].groups[1].item_id, 5u);

  // The step's inputs are on disk, whole.
  RLJ_ASSERT_OK_AND_ASSIGN(std::string bytes, ReadFile(StepInputsPath(ledger->step_inputs_dir(), 2)));
  RLJ_ASSERT_OK_AND_ASSIGN(StepInputs decoded, DecodeStepInputs(bytes));
  EXPECT_EQ(decoded.step, 2);
  EXPECT_EQ(decoded.version, 2);
  EXPECT_FALSE(decoded.update_applied);
  EXPECT_EQ(decoded.dispatcher, R"({"epoch":0,"cursor":6})");
  ASSERT_EQ(decoded.groups.size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(decoded.groups[i].SerializeAsString(), skipped.groups[i].SerializeAsString()) << i;
  }
}

TEST(TrainingLedger, ATornLastLineIsSkipped) {
  testing::ScratchDir dir;
  RLJ_ASSERT_OK_AND_ASSIGN(auto ledger, TrainingLedger::StartFresh(dir.path()));
  RLJ_ASSERT_OK(ledger->Record(Step(1)));
  {
    std::ofstream out(dir.file(kTrainedGroupsFile), std::ios::app);
    out << R"({"step":2,"version":2,"groups":[{"group_)";  // killed mid-write
  }
  EXPECT_EQ(LineSteps(dir.file(kTrainedGroupsFile)), (std::vector<int64_t>{1}));
}

TEST(TrainingLedger, DecodeRefusesDamagedStepInputs) {
  const std::string bytes = EncodeStepInputs(Step(3));
  RLJ_ASSERT_OK(DecodeStepInputs(bytes).status());
  std::string flipped = bytes;
  flipped[flipped.size() - 30] ^= 0x01;
  EXPECT_TRUE(testing::FailsWith(DecodeStepInputs(flipped).status(), absl::StatusCode::kDataLoss, "CRC-32C"));
  EXPECT_TRUE(testing::FailsWith(DecodeStepInputs(bytes.substr(0, bytes.size() - 1)).status(),
                                 absl::StatusCode::kDataLoss, "payload bytes"));
  EXPECT_TRUE(testing::FailsWith(DecodeStepInputs("garbage").status(), absl::StatusCode::kDataLoss, "not a step"));
}

TEST(TrainingLedger, ResumeCutsTheLedgerToTheCheckpointAndReturnsTheStepsAfterIt) {
  testing::ScratchDir dir;
  {
    RLJ_ASSERT_OK_AND_ASSIGN(auto ledger, TrainingLedger::StartFresh(dir.path()));
    for (int64_t step = 1; step <= 5; ++step) RLJ_ASSERT_OK(ledger->Record(Step(step)));
  }
  // Killed after step 5; the newest checkpoint is step 2.
  std::vector<StepInputs> replay;
  RLJ_ASSERT_OK_AND_ASSIGN(auto ledger, TrainingLedger::Resume(dir.path(), 2, 2, &replay));
  ASSERT_EQ(replay.size(), 3u);
  for (size_t i = 0; i < replay.size(); ++i) {
    EXPECT_EQ(replay[i].step, static_cast<int64_t>(3 + i));
    EXPECT_EQ(replay[i].version, static_cast<int64_t>(3 + i));
    ASSERT_EQ(replay[i].groups.size(), 2u);
    EXPECT_EQ(replay[i].groups[0].item_id(), 2 * (3 + i));
  }
  EXPECT_EQ(replay.back().dispatcher, R"({"epoch":0,"cursor":12})");
  EXPECT_EQ(LineSteps(ledger->trained_groups_path()), (std::vector<int64_t>{1, 2}));
  // Taken again, the replayed steps are recorded once more: each step (and each item) appears once.
  for (const StepInputs& inputs : replay) RLJ_ASSERT_OK(ledger->Record(inputs, /*inputs_on_disk=*/true));
  RLJ_ASSERT_OK(ledger->Record(Step(6)));
  EXPECT_EQ(LineSteps(ledger->trained_groups_path()), (std::vector<int64_t>{1, 2, 3, 4, 5, 6}));
}

TEST(TrainingLedger, ResumeStopsAtAGapOrADamagedRecordAndDeletesWhatFollows) {
  testing::ScratchDir dir;
  std::string inputs_dir;
  {
    RLJ_ASSERT_OK_AND_ASSIGN(auto ledger, TrainingLedger::StartFresh(dir.path()));
    for (int64_t step = 1; step <= 6; ++step) RLJ_ASSERT_OK(ledger->Record(Step(step)));
    inputs_dir = ledger->step_inputs_dir();
  }
  std::filesystem::remove(StepInputsPath(inputs_dir, 4));
  std::vector<StepInputs> replay;
  RLJ_ASSERT_OK_AND_ASSIGN(auto ledger, TrainingLedger::Resume(dir.path(), 2, 2, &replay));
  ASSERT_EQ(replay.size(), 1u);
  EXPECT_EQ(replay[0].step, 3);
  EXPECT_FALSE(std::filesystem::exists(StepInputsPath(inputs_dir, 5)));
  EXPECT_FALSE(std::filesystem::exists(StepInputsPath(inputs_dir, 6)));
  EXPECT_TRUE(std::filesystem::exists(StepInputsPath(inputs_dir, 3)));

  // A damaged record of the first step after the checkpoint: nothing to replay, and it is gone.
  {
    std::fstream file(StepInputsPath(inputs_dir, 3), std::ios::in | std::ios::out | std::ios::binary);
    file.seekp(-5, std::ios::end);
    file.put('\x7f');
  }
  ledger.reset();
  RLJ_ASSERT_OK_AND_ASSIGN(ledger, TrainingLedger::Resume(dir.path(), 2, 2, &replay));
  EXPECT_TRUE(replay.empty());
  EXPECT_FALSE(std::filesystem::exists(StepInputsPath(inputs_dir, 3)));
  EXPECT_TRUE(std::filesystem::exists(StepInputsPath(inputs_dir, 2)));
}

TEST(TrainingLedger, ResumeTakesOnlyVersionsThatFollowOnFromTheCheckpoint) {
  testing::ScratchDir dir;
  {
    RLJ_ASSERT_OK_AND_ASSIGN(auto ledger, TrainingLedger::StartFresh(dir.path()));
    for (int64_t step = 1; step <= 3; ++step) RLJ_ASSERT_OK(ledger->Record(Step(step)));
  }
  // A checkpoint at step 1 that says version 7 does not belong with records of versions 2 and 3.
  std::vector<StepInputs> replay;
  RLJ_ASSERT_OK_AND_ASSIGN(auto ledger, TrainingLedger::Resume(dir.path(), 1, 7, &replay));
  EXPECT_TRUE(replay.empty());
  EXPECT_FALSE(std::filesystem::exists(StepInputsPath(ledger->step_inputs_dir(), 2)));
}

TEST(TrainingLedger, ResumeWithoutACheckpointReplaysFromTheFirstStep) {
  testing::ScratchDir dir;
  {
    RLJ_ASSERT_OK_AND_ASSIGN(auto ledger, TrainingLedger::StartFresh(dir.path()));
    for (int64_t step = 1; step <= 2; ++step) RLJ_ASSERT_OK(ledger->Record(Step(step)));
  }
  std::vector<StepInputs> replay;
  RLJ_ASSERT_OK_AND_ASSIGN(auto ledger, TrainingLedger::Resume(dir.path(), 0, 0, &replay));
  ASSERT_EQ(replay.size(), 2u);
  EXPECT_EQ(replay[0].step, 1);
  EXPECT_TRUE(LineSteps(ledger->trained_groups_path()).empty());
}

TEST(TrainingLedger, PruneDeletesInputsUpToTheOldestCheckpointAndStartFreshEmptiesAnEarlierRun) {
  testing::ScratchDir dir;
  RLJ_ASSERT_OK_AND_ASSIGN(auto ledger, TrainingLedger::StartFresh(dir.path()));
  for (int64_t step = 1; step <= 4; ++step) RLJ_ASSERT_OK(ledger->Record(Step(step)));
  ledger->Prune(2);
  for (int64_t step = 1; step <= 4; ++step) {
    EXPECT_EQ(std::filesystem::exists(StepInputsPath(ledger->step_inputs_dir(), step)), step > 2) << step;
  }
  EXPECT_EQ(LineSteps(ledger->trained_groups_path()), (std::vector<int64_t>{1, 2, 3, 4}));  // the ledger stays
  ledger.reset();
  RLJ_ASSERT_OK_AND_ASSIGN(ledger, TrainingLedger::StartFresh(dir.path()));
  EXPECT_TRUE(LineSteps(ledger->trained_groups_path()).empty());
  EXPECT_FALSE(std::filesystem::exists(StepInputsPath(ledger->step_inputs_dir(), 3)));
}

}  // namespace
}  // namespace rlj
