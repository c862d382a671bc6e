// prompt_dispatcher_test.cc: seeded epochs, prompt leases that expire and are handed out again, exactly-once
// receipt, returns of stale items and the saved/restored position.
#include "learner/prompt_dispatcher.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "test_util.h"

namespace rlj {
namespace {

using Clock = PromptDispatcher::Clock;
constexpr std::chrono::milliseconds kTimeout{10000};

std::vector<PromptRow> Rows(int n, const std::string& prefix = "p") {
  std::vector<PromptRow> rows;
  for (int i = 0; i < n; ++i) {
    rows.push_back({absl::StrCat(prefix, i), absl::StrCat("prompt ", i), absl::StrCat("ref ", i)});
  }
  return rows;
}

std::vector<uint64_t> ItemIds(const v1::LeasePromptsResponse& lease) {
  std::vector<uint64_t> ids;
  for (const auto& prompt : lease.prompts()) ids.push_back(prompt.item_id());
  return ids;
}

std::vector<std::string> PromptIds(const v1::LeasePromptsResponse& lease) {
  std::vector<std::string> ids;
  for (const auto& prompt : lease.prompts()) ids.push_back(prompt.prompt_id());
  return ids;
}

TEST(PromptDispatcher, EpochsVisitEveryRowOnceInASeededOrder) {
  const Clock::time_point now = Clock::now();
  PromptDispatcher dispatcher(Rows(20), 7, kTimeout);
  const v1::LeasePromptsResponse first = dispatcher.Lease("a", 20, now);
  EXPECT_EQ(ItemIds(first),
            std::vector<uint64_t>({0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19}));
  const std::vector<std::string> epoch0 = PromptIds(first);
  EXPECT_EQ(std::set<std::string>(epoch0.begin(), epoch0.end()).size(), 20u);  // every row once
  for (const auto& prompt : first.prompts()) {
    const std::string n = prompt.prompt_id().substr(1);
    EXPECT_EQ(prompt.prompt(), "prompt " + n);
    EXPECT_EQ(prompt.reference(), "ref " + n);
    EXPECT_EQ(prompt.epoch(), 0);
  }
  EXPECT_EQ(first.lease_timeout_ms(), 10000);
  EXPECT_EQ(dispatcher.epoch(), 1);  // the cursor wrapped

  // The second epoch: item ids 20..39, every row once again, in another order.
  const v1::LeasePromptsResponse second = dispatcher.Lease("a", 20, now);
  EXPECT_EQ(ItemIds(second).front(), 20u);
  EXPECT_EQ(ItemIds(second).back(), 39u);
  const std::vector<std::string> epoch1 = PromptIds(second);
  EXPECT_EQ(std::set<std::string>(epoch1.begin(), epoch1.end()).size(), 20u);
  EXPECT_NE(epoch0, epoch1);
  EXPECT_EQ(second.prompts(0).epoch(), 1);
  EXPECT_EQ(dispatcher.prompts_leased(), 40);

  // The same seed gives the same order; another seed another one; leases taken in pieces read the same.
  PromptDispatcher same(Rows(20), 7, kTimeout);
  std::vector<std::string> pieces;
  for (int i = 0; i < 4; ++i) {
    for (const std::string& id : PromptIds(same.Lease("b", 5, now))) pieces.push_back(id);
  }
  EXPECT_EQ(pieces, epoch0);
  PromptDispatcher other(Rows(20), 8, kTimeout);
  EXPECT_NE(PromptIds(other.Lease("a", 20, now)), epoch0);
}

TEST(PromptDispatcher, ExpiredLeaseIsHandedOutAgainFirst) {
  const Clock::time_point start = Clock::now();
  PromptDispatcher dispatcher(Rows(10), 1, kTimeout);
  const v1::LeasePromptsResponse vanished = dispatcher.Lease("a", 2, start);
  EXPECT_EQ(ItemIds(vanished), std::vector<uint64_t>({0, 1}));
  // Within the timeout the items stay leased: a second actor gets the next ones.
  const v1::LeasePromptsResponse next = dispatcher.Lease("b", 2, start + std::chrono::seconds(9));
  EXPECT_EQ(ItemIds(next), std::vector<uint64_t>({2, 3}));
  EXPECT_EQ(dispatcher.leases_expired(), 0);
  // Past the first lease's deadline (but not the second's) its items come back, before new positions.
  const v1::LeasePromptsResponse again = dispatcher.Lease("b", 3, start + std::chrono::seconds(11));
  EXPECT_EQ(ItemIds(again), std::vector<uint64_t>({0, 1, 4}));
  EXPECT_EQ(PromptIds(again)[0], PromptIds(vanished)[0]);
  EXPECT_EQ(PromptIds(again)[1], PromptIds(vanished)[1]);
  EXPECT_NE(again.lease_id(), vanished.lease_id());
  EXPECT_EQ(dispatcher.leases_expired(), 1);
  EXPECT_EQ(dispatcher.outstanding(), 5u);  // 0 1 4 (again) and 2 3 (next)
}

TEST(PromptDispatcher, EachItemIsAcceptedOnceWhicheverLeaseArrivesFirst) {
  const Clock::time_point start = Clock::now();
  PromptDispatcher dispatcher(Rows(10), 1, kTimeout);
  const v1::LeasePromptsResponse slow = dispatcher.Lease("a", 2, start);
  const Clock::time_point later = start + std::chrono::seconds(11);
  const v1::LeasePromptsResponse fresh = dispatcher.Lease("b", 2, later);  // re-issues items 0 and 1
  ASSERT_EQ(ItemIds(fresh), std::vector<uint64_t>({0, 1}));

  // The slow actor's group for item 0 arrives late but first: it is trained; the re-issued one is not.
  EXPECT_EQ(dispatcher.Receive(slow.lease_id(), 0, later), PromptDispatcher::Receipt::kAccepted);
  EXPECT_EQ(dispatcher.Receive(fresh.lease_id(), 0, later), PromptDispatcher::Receipt::kDuplicate);
  // Item 1: the fresh lease first.
  EXPECT_EQ(dispatcher.Receive(fresh.lease_id(), 1, later), PromptDispatcher::Receipt::kAccepted);
  EXPECT_EQ(dispatcher.Receive(slow.lease_id(), 1, later), PromptDispatcher::Receipt::kDuplicate);
  EXPECT_EQ(dispatcher.duplicates(), 2);

  // Once trained, an item is never accepted again.
  dispatcher.MarkTrained({0, 1});
  EXPECT_EQ(dispatcher.Receive(fresh.lease_id(), 0, later), PromptDispatcher::Receipt::kDuplicate);
  EXPECT_EQ(dispatcher.outstanding(), 0u);
  // A lease this dispatcher never issued (a learner before a restart).
  EXPECT_EQ(dispatcher.Receive("0badbeef-0", 2, later), PromptDispatcher::Receipt::kUnknownLease);
  // Completed leases do not expire later and re-issue anything.
  EXPECT_EQ(ItemIds(dispatcher.Lease("c", 1, later + std::chrono::hours(1))), std::vector<uint64_t>({2}));
}

TEST(PromptDispatcher, ReturnedItemsAreHandedOutBeforeNewOnes) {
  const Clock::time_point now = Clock::now();
  PromptDispatcher dispatcher(Rows(10), 1, kTimeout);
  const v1::LeasePromptsResponse lease = dispatcher.Lease("a", 3, now);
  ASSERT_EQ(dispatcher.Receive(lease.lease_id(), 1, now), PromptDispatcher::Receipt::kAccepted);
  dispatcher.Return(1);  // its group went stale
  const v1::LeasePromptsResponse next = dispatcher.Lease("b", 2, now);
  EXPECT_EQ(ItemIds(next), std::vector<uint64_t>({1, 3}));
  EXPECT_EQ(PromptIds(next)[0], PromptIds(lease)[1]);
  // The stale group's lease is gone; the new lease's group is the one that counts.
  EXPECT_EQ(dispatcher.Receive(next.lease_id(), 1, now), PromptDispatcher::Receipt::kAccepted);
}

TEST(PromptDispatcher, RestoredPositionSkipsNothingAndRepeatsNothingTrained) {
  const Clock::time_point now = Clock::now();
  PromptDispatcher original(Rows(6), 3, kTimeout);
  const v1::LeasePromptsResponse a = original.Lease("a", 3, now);  // items 0 1 2
  ASSERT_EQ(original.Receive(a.lease_id(), 0, now), PromptDispatcher::Receipt::kAccepted);
  ASSERT_EQ(original.Receive(a.lease_id(), 1, now), PromptDispatcher::Receipt::kAccepted);
  original.MarkTrained({0});                                       // trained; 1 received, not yet trained
  const v1::LeasePromptsResponse b = original.Lease("b", 5, now);  // items 3 4 5 | 6 7 (epoch 1)
  ASSERT_EQ(ItemIds(b), std::vector<uint64_t>({3, 4, 5, 6, 7}));
  const std::string saved = original.SaveState();

  // What the original would hand out next, for comparison.
  const v1::LeasePromptsResponse original_next = original.Lease("c", 2, now);
  ASSERT_EQ(ItemIds(original_next), std::vector<uint64_t>({8, 9}));

  PromptDispatcher restored(Rows(6), 3, kTimeout);
  RLJ_ASSERT_OK(restored.RestoreState(saved));
  EXPECT_EQ(restored.epoch(), 1);
  EXPECT_EQ(restored.outstanding(), 7u);  // 1 2 3 4 5 6 7: everything not trained
  EXPECT_EQ(restored.prompts_leased(), 8);
  const v1::LeasePromptsResponse after = restored.Lease("a", 9, now);
  EXPECT_EQ(ItemIds(after), std::vector<uint64_t>({1, 2, 3, 4, 5, 6, 7, 8, 9}));
  // The same items are the same prompts as before the restart.
  const std::vector<std::string> ids = PromptIds(after);
  EXPECT_EQ(ids[0], PromptIds(a)[1]);
  EXPECT_EQ(ids[1], PromptIds(a)[2]);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(ids[2 + i], PromptIds(b)[i]);
  EXPECT_EQ(ids[7], PromptIds(original_next)[0]);
  EXPECT_EQ(ids[8], PromptIds(original_next)[1]);
  // Leases from before the restart are unknown; the trained item 0 is never handed out again.
  EXPECT_EQ(restored.Receive(b.lease_id(), 3, now), PromptDispatcher::Receipt::kUnknownLease);
  const std::vector<uint64_t> after_items = ItemIds(after);
  EXPECT_EQ(std::count(after_items.begin(), after_items.end(), uint64_t{0}), 0);

  // Another training set refuses the position; garbage is data loss.
  PromptDispatcher changed(Rows(6, "q"), 3, kTimeout);
  EXPECT_TRUE(testing::FailsWith(changed.RestoreState(saved), absl::StatusCode::kFailedPrecondition,
                                 "the training set changed"));
  EXPECT_TRUE(
      testing::FailsWith(restored.RestoreState("{\"rows\": 6"), absl::StatusCode::kDataLoss, "dispatcher state"));
}

}  // namespace
}  // namespace rlj
