// rollout_buffer.h: the bounded, thread-safe queue of scored groups between the Learner service (actors
// push) and the training loop (takes a step's worth); a full buffer makes pushers wait (backpressure).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <unordered_set>
#include <vector>

#include "rlj/v1/learner.pb.h"

namespace rlj {

class RolloutBuffer {
 public:
  using Clock = std::chrono::steady_clock;

  // `capacity_groups` >= 1.
  explicit RolloutBuffer(int64_t capacity_groups);

  RolloutBuffer(const RolloutBuffer&) = delete;
  RolloutBuffer& operator=(const RolloutBuffer&) = delete;

  // Appends `group` (moved from only on success), waiting while the buffer is full. False when `deadline`
  // passed first or the buffer is (or becomes) closed; the group is then not buffered (see closed()).
  // A group without a lease (its exactly-once bookkeeping is not the dispatcher's) that names its actor and
  // is identical to one buffered before (same actor, group_id and bytes: a producer re-sending after a lost
  // reply) is acknowledged (true) but not buffered again, and counted in total_duplicates(). Groups with
  // neither a lease nor an actor are buffered as they come.
  bool Push(v1::RolloutGroup&& group, Clock::time_point deadline);

  struct TakeResult {
    std::vector<v1::RolloutGroup> groups;  // oldest first; at most n
    int64_t dropped_stale = 0;             // groups discarded by this call for being too old
    std::vector<uint64_t> dropped_items;   // the dispatcher items of those groups (leased ones only)
    double waited_s = 0;                   // time spent blocked waiting for groups (the learner's idle time)
    bool closed = false;                   // the buffer was closed
  };

  // Takes up to `n` groups. Groups with policy_version < current_version - max_staleness are dropped and
  // counted. Waits until `n` fresh groups are buffered, or until `deadline` / Close(), and then returns
  // the fresh groups there are (up to `n`; possibly none).
  TakeResult Take(int64_t n, int64_t current_version, int64_t max_staleness, Clock::time_point deadline);

  // Wakes every waiter; later pushes fail and takes return at once with what is buffered.
  void Close();
  bool closed() const;

  int64_t size() const;
  int64_t capacity() const { return capacity_; }
  int64_t total_dropped_stale() const;  // over every Take
  int64_t total_duplicates() const;     // unleased groups pushed again and not buffered twice

 private:
  // Drops stale groups from the front and anywhere else (their leased items go to `dropped_items`);
  // returns how many. Requires mutex_.
  int64_t DropStaleLocked(int64_t current_version, int64_t max_staleness, std::vector<uint64_t>* dropped_items);

  const int64_t capacity_;
  mutable std::mutex mutex_;
  std::condition_variable not_full_;
  std::condition_variable not_empty_;
  std::deque<v1::RolloutGroup> groups_;
  bool closed_ = false;
  int64_t total_dropped_stale_ = 0;
  // Keys of the unleased groups buffered most recently (a window: re-sends come within a retry budget).
  std::unordered_set<std::string> recent_unleased_;
  std::deque<std::string> recent_unleased_order_;
  int64_t total_duplicates_ = 0;
};

// Converts an absolute system-clock deadline (gRPC's) to the steady clock, capped `cap` from now so an
// infinite deadline stays representable.
RolloutBuffer::Clock::time_point SteadyDeadline(std::chrono::system_clock::time_point deadline,
                                                std::chrono::milliseconds cap);

}  // namespace rlj
