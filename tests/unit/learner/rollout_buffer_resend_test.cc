// rollout_buffer_resend_test.cc: the rollout buffer buffers an unleased group once even when its producer
// re-sends it after a lost reply; new content under a reused group id, anonymous groups (no actor) and leased
// groups (the dispatcher's job) are buffered as they come.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "learner/rollout_buffer.h"
#include "learner_fixtures.h"

namespace rlj {
namespace {

using Clock = RolloutBuffer::Clock;

v1::RolloutGroup Unleased(const std::string& id) {
  v1::RolloutGroup group = testing::MakeTwoCompletionGroup(id, 0);
  group.set_actor("producer");
  return group;
}

std::vector<std::string> TakeAllIds(RolloutBuffer& buffer) {
  std::vector<std::string> ids;
  for (const auto& group : buffer.Take(buffer.size(), 0, 4, Clock::now()).groups) ids.push_back(group.group_id());
  return ids;
}

TEST(RolloutBufferResend, AnUnleasedGroupSentTwiceIsAcknowledgedAndBufferedOnce) {
  RolloutBuffer buffer(8);
  EXPECT_TRUE(buffer.Push(Unleased("a"), Clock::now()));
  EXPECT_TRUE(buffer.Push(Unleased("a"), Clock::now()));  // the re-send: acknowledged
  EXPECT_TRUE(buffer.Push(Unleased("b"), Clock::now()));
  EXPECT_EQ(buffer.size(), 2);
  EXPECT_EQ(buffer.total_duplicates(), 1);
  EXPECT_EQ(TakeAllIds(buffer), (std::vector<std::string>{"a", "b"}));
  // Taken (trained) already: a late re-send is still recognised.
  EXPECT_TRUE(buffer.Push(Unleased("a"), Clock::now()));
  EXPECT_EQ(buffer.size(), 0);
  EXPECT_EQ(buffer.total_duplicates(), 2);
}

TEST(RolloutBufferResend, AReusedGroupIdWithNewCompletionsIsANewGroup) {
  RolloutBuffer buffer(8);
  EXPECT_TRUE(buffer.Push(Unleased("a"), Clock::now()));
  v1::RolloutGroup restarted = Unleased("a");  // a restarted producer counting from 0 again
  restarted.mutable_rollouts(0)->set_reward(0.25);
  EXPECT_TRUE(buffer.Push(std::move(restarted), Clock::now()));
  EXPECT_EQ(buffer.size(), 2);
  EXPECT_EQ(buffer.total_duplicates(), 0);
}

TEST(RolloutBufferResend, AGroupNotBufferedBeforeIsNotADuplicate) {
  RolloutBuffer buffer(1);
  EXPECT_TRUE(buffer.Push(Unleased("full"), Clock::now()));
  EXPECT_FALSE(buffer.Push(Unleased("a"), Clock::now()));  // no room: refused, not remembered
  EXPECT_EQ(TakeAllIds(buffer), (std::vector<std::string>{"full"}));
  EXPECT_TRUE(buffer.Push(Unleased("a"), Clock::now()));
  EXPECT_EQ(buffer.size(), 1);
  EXPECT_EQ(buffer.total_duplicates(), 0);
}

TEST(RolloutBufferResend, AnonymousGroupsAreBufferedAsTheyCome) {
  RolloutBuffer buffer(8);
  v1::RolloutGroup anonymous = Unleased("a");
  anonymous.clear_actor();
  EXPECT_TRUE(buffer.Push(v1::RolloutGroup(anonymous), Clock::now()));
  EXPECT_TRUE(buffer.Push(v1::RolloutGroup(anonymous), Clock::now()));
  EXPECT_EQ(buffer.size(), 2);
  EXPECT_EQ(buffer.total_duplicates(), 0);
}

TEST(RolloutBufferResend, LeasedGroupsAreLeftToTheDispatcher) {
  RolloutBuffer buffer(8);
  v1::RolloutGroup leased = Unleased("a");
  leased.set_lease_id("0badf00d-1");
  leased.set_item_id(7);
  EXPECT_TRUE(buffer.Push(v1::RolloutGroup(leased), Clock::now()));
  EXPECT_TRUE(buffer.Push(v1::RolloutGroup(leased), Clock::now()));
  EXPECT_EQ(buffer.size(), 2);
  EXPECT_EQ(buffer.total_duplicates(), 0);
}

}  // namespace
}  // namespace rlj
