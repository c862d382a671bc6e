// prompt_dispatcher.h: the learner's owner of the training set's order: seeded shuffled epochs, prompts
// leased to actors in batches, leases that time out handed out again, and each item trained on at most
// once (the first group to arrive wins). Its position is part of the learner's checkpoint.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/dataset.h"
#include "rlj/v1/learner.pb.h"

namespace rlj {

class PromptDispatcher {
 public:
  using Clock = std::chrono::steady_clock;

  // `rows` is the training set in file order (not empty). Epoch e visits every row once, in an order
  // shuffled from (seed, e); item ids are e · rows + position.
  PromptDispatcher(std::vector<PromptRow> rows, uint64_t seed, std::chrono::milliseconds lease_timeout);

  PromptDispatcher(const PromptDispatcher&) = delete;
  PromptDispatcher& operator=(const PromptDispatcher&) = delete;

  // Expires overdue leases (their items go back to the front of the queue), then leases up to `count`
  // items: returned items first, then the next positions of the current epoch (wrapping into the next).
  v1::LeasePromptsResponse Lease(const std::string& actor, int count, Clock::time_point now);

  enum class Receipt {
    kAccepted,      // first arrival of this item: train on it
    kDuplicate,     // the item already arrived (through a re-issued lease) or was trained
    kUnknownLease,  // not a lease of this dispatcher (e.g. issued before the learner restarted)
  };
  // A scored group for (lease_id, item_id) arrived.
  Receipt Receive(const std::string& lease_id, uint64_t item_id, Clock::time_point now);

  // The group of a received item will not be trained (it went stale): hand the item out again.
  void Return(uint64_t item_id);
  // The groups of these items were consumed by a training step (trained, or skipped for no signal).
  void MarkTrained(const std::vector<uint64_t>& item_ids);

  // The position as JSON: epoch, cursor, the items to hand out again (returned, leased, received but not
  // yet trained), and a fingerprint of the training set. Restore makes every such item pending, so after a
  // resume nothing is skipped and nothing trained is handed out again; leases issued before are unknown.
  std::string SaveState() const;
  absl::Status RestoreState(const std::string& json);

  int64_t epoch() const;
  int64_t prompts_leased() const;
  int64_t leases_expired() const;
  int64_t duplicates() const;
  size_t size() const { return rows_.size(); }
  // Items waiting in the return queue or leased / received but not yet trained.
  size_t outstanding() const;

 private:
  enum class ItemState { kPending, kLeased, kReceived };
  struct Item {
    ItemState state = ItemState::kPending;
    std::string lease_id;
  };
  struct LeaseRecord {
    Clock::time_point deadline;
    std::vector<uint64_t> items;
  };

  const std::vector<size_t>& OrderOf(int64_t epoch) const;  // requires mutex_
  void ExpireLocked(Clock::time_point now);
  uint32_t Fingerprint() const;

  const std::vector<PromptRow> rows_;
  const uint64_t seed_;
  const std::chrono::milliseconds lease_timeout_;
  const std::string incarnation_;  // random prefix of this process's lease ids

  mutable std::mutex mutex_;
  mutable std::map<int64_t, std::vector<size_t>> orders_;  // a few recent epochs' orders
  int64_t epoch_ = 0;
  uint64_t cursor_ = 0;
  std::deque<uint64_t> returned_;             // pending items to hand out first
  std::unordered_map<uint64_t, Item> items_;  // every item not yet trained that left the cursor
  std::unordered_map<std::string, LeaseRecord> leases_;
  uint64_t next_lease_ = 0;
  int64_t prompts_leased_ = 0;
  int64_t leases_expired_ = 0;
  int64_t duplicates_ = 0;
};

}  // namespace rlj
