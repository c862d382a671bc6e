// rollout_buffer_test.cc: the bounded rollout buffer: order, staleness, backpressure, deadlines, Close.
#include "learner/rollout_buffer.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <future>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"

namespace rlj {
namespace {

using Clock = RolloutBuffer::Clock;
using std::chrono::seconds;

v1::RolloutGroup Group(const std::string& id, int64_t version) {
  v1::RolloutGroup group;
  group.set_group_id(id);
  group.set_policy_version(version);
  return group;
}

std::vector<std::string> Ids(const std::vector<v1::RolloutGroup>& groups) {
  std::vector<std::string> ids;
  for (const auto& group : groups) ids.push_back(group.group_id());
  return ids;
}

TEST(RolloutBuffer, TakesInPushOrder) {
  RolloutBuffer buffer(4);
  for (const char* id : {"a", "b", "c"}) ASSERT_TRUE(buffer.Push(Group(id, 0), Clock::now()));
  EXPECT_EQ(buffer.size(), 3);
  RolloutBuffer::TakeResult taken = buffer.Take(2, 0, 2, Clock::now());
  EXPECT_EQ(Ids(taken.groups), std::vector<std::string>({"a", "b"}));
  EXPECT_EQ(taken.dropped_stale, 0);
  EXPECT_EQ(taken.waited_s, 0.0);  // enough groups were there: no wait
  EXPECT_FALSE(taken.closed);
  EXPECT_EQ(buffer.size(), 1);
}

TEST(RolloutBuffer, DropsAndCountsStaleGroups) {
  RolloutBuffer buffer(8);
  // current version 5, max staleness 2: versions 3, 4, 5 are fresh; 1 and 2 are stale.
  for (int64_t version : {1, 3, 2, 5, 4}) {
    ASSERT_TRUE(buffer.Push(Group(absl::StrCat("v", version), version), Clock::now()));
  }
  RolloutBuffer::TakeResult taken = buffer.Take(3, 5, 2, Clock::now());
  EXPECT_EQ(Ids(taken.groups), std::vector<std::string>({"v3", "v5", "v4"}));
  EXPECT_EQ(taken.dropped_stale, 2);
  EXPECT_EQ(buffer.total_dropped_stale(), 2);
  EXPECT_EQ(buffer.size(), 0);
}

TEST(RolloutBuffer, ReturnsWhatIsThereAtTheDeadline) {
  RolloutBuffer buffer(8);
  ASSERT_TRUE(buffer.Push(Group("only", 0), Clock::now()));
  RolloutBuffer::TakeResult taken = buffer.Take(4, 0, 0, Clock::now() + std::chrono::milliseconds(50));
  EXPECT_EQ(Ids(taken.groups), std::vector<std::string>({"only"}));
  EXPECT_GE(taken.waited_s, 0.04);  // it waited (about) until the deadline: the learner's idle time
  EXPECT_FALSE(taken.closed);
}

TEST(RolloutBuffer, FullBufferPushFailsAtDeadline) {
  RolloutBuffer buffer(2);
  ASSERT_TRUE(buffer.Push(Group("a", 0), Clock::now()));
  ASSERT_TRUE(buffer.Push(Group("b", 0), Clock::now()));
  EXPECT_FALSE(buffer.Push(Group("c", 0), Clock::now()));
  EXPECT_FALSE(buffer.Push(Group("c", 0), Clock::now() + std::chrono::milliseconds(20)));
  EXPECT_FALSE(buffer.closed());
  EXPECT_EQ(buffer.size(), 2);
}

TEST(RolloutBuffer, FullBufferPushWaitsForTake) {
  RolloutBuffer buffer(1);
  ASSERT_TRUE(buffer.Push(Group("first", 0), Clock::now()));
  // The buffer is full, so this push can only complete after the take below makes room.
  auto pusher =
      std::async(std::launch::async, [&] { return buffer.Push(Group("second", 0), Clock::now() + seconds(60)); });
  RolloutBuffer::TakeResult first = buffer.Take(1, 0, 0, Clock::now() + seconds(60));
  EXPECT_EQ(Ids(first.groups), std::vector<std::string>({"first"}));
  RolloutBuffer::TakeResult second = buffer.Take(1, 0, 0, Clock::now() + seconds(60));
  EXPECT_EQ(Ids(second.groups), std::vector<std::string>({"second"}));
  EXPECT_TRUE(pusher.get());
}

TEST(RolloutBuffer, TakeWaitsForPushesFromOtherThreads) {
  RolloutBuffer buffer(16);
  auto taker = std::async(std::launch::async, [&] { return buffer.Take(3, 7, 0, Clock::now() + seconds(60)); });
  for (const char* id : {"x", "y", "z"}) ASSERT_TRUE(buffer.Push(Group(id, 7), Clock::now() + seconds(60)));
  RolloutBuffer::TakeResult taken = taker.get();
  EXPECT_EQ(Ids(taken.groups), std::vector<std::string>({"x", "y", "z"}));
  EXPECT_LT(taken.waited_s, 60.0);
}

TEST(RolloutBuffer, CloseWakesBlockedTakeAndPush) {
  RolloutBuffer buffer(1);
  ASSERT_TRUE(buffer.Push(Group("held", 0), Clock::now()));
  auto pusher =
      std::async(std::launch::async, [&] { return buffer.Push(Group("blocked", 0), Clock::now() + seconds(60)); });
  RolloutBuffer empty_buffer(4);
  auto taker = std::async(std::launch::async, [&] { return empty_buffer.Take(2, 0, 0, Clock::now() + seconds(60)); });
  buffer.Close();
  empty_buffer.Close();
  EXPECT_FALSE(pusher.get());
  RolloutBuffer::TakeResult taken = taker.get();
  EXPECT_TRUE(taken.closed);
  EXPECT_TRUE(taken.groups.empty());
  EXPECT_LT(taken.waited_s, 60.0);
  EXPECT_TRUE(buffer.closed());
  EXPECT_FALSE(buffer.Push(Group("late", 0), Clock::now() + seconds(60)));
  // A closed buffer still hands out what it holds.
  EXPECT_EQ(Ids(buffer.Take(5, 0, 0, Clock::now() + seconds(60)).groups), std::vector<std::string>({"held"}));
}

TEST(RolloutBuffer, ManyProducersOneConsumerLoseNothing) {
  constexpr int kProducers = 4;
  constexpr int kPerProducer = 100;
  RolloutBuffer buffer(8);
  std::atomic<int64_t> max_size{0};
  std::vector<std::thread> producers;
  for (int p = 0; p < kProducers; ++p) {
    producers.emplace_back([&, p] {
      for (int i = 0; i < kPerProducer; ++i) {
        EXPECT_TRUE(buffer.Push(Group(absl::StrCat(p, "-", i), 0), Clock::now() + seconds(60)));
        int64_t size = buffer.size();
        int64_t seen = max_size.load();
        while (size > seen && !max_size.compare_exchange_weak(seen, size)) {
        }
      }
    });
  }
  std::set<std::string> received;
  std::vector<std::vector<int>> order(kProducers);
  while (received.size() < static_cast<size_t>(kProducers * kPerProducer)) {
    RolloutBuffer::TakeResult taken = buffer.Take(5, 0, 0, Clock::now() + seconds(60));
    ASSERT_FALSE(taken.groups.empty());
    for (const auto& group : taken.groups) {
      EXPECT_TRUE(received.insert(group.group_id()).second) << group.group_id();
      const size_t dash = group.group_id().find('-');
      order[std::stoi(group.group_id().substr(0, dash))].push_back(std::stoi(group.group_id().substr(dash + 1)));
    }
  }
  for (auto& producer : producers) producer.join();
  EXPECT_LE(max_size.load(), 8);
  for (const auto& sequence : order) EXPECT_TRUE(std::is_sorted(sequence.begin(), sequence.end()));
}

TEST(SteadyDeadline, CapsInfiniteAndClampsPast) {
  const auto before = Clock::now();
  const auto infinite = SteadyDeadline(std::chrono::system_clock::time_point::max(), std::chrono::milliseconds(5000));
  EXPECT_GE(infinite, before + std::chrono::milliseconds(5000));
  EXPECT_LE(infinite, Clock::now() + std::chrono::milliseconds(5000));
  const auto past = SteadyDeadline(std::chrono::system_clock::now() - seconds(10), std::chrono::milliseconds(5000));
  EXPECT_LE(past, Clock::now());
  EXPECT_GE(past, before);
  const auto soon = SteadyDeadline(std::chrono::system_clock::now() + seconds(2), std::chrono::milliseconds(5000));
  EXPECT_GT(soon, before + std::chrono::milliseconds(1500));
  EXPECT_LE(soon, Clock::now() + seconds(2));
}

}  // namespace
}  // namespace rlj
