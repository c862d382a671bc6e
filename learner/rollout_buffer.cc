// rollout_buffer.cc: bounded group queue with deadline-aware blocking push/take and staleness dropping.
#include "learner/rollout_buffer.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/crc32c.h"

namespace rlj {
namespace {

// How many unleased groups' keys are remembered for recognising a re-send.
constexpr size_t kRecentUnleasedGroups = 65536;

// What identifies an unleased group's re-send: its ids and a checksum of its bytes (a restarted producer
// that reuses a group_id for new completions is not a re-send).
std::string UnleasedKey(const v1::RolloutGroup& group) {
  return absl::StrCat(group.actor(), "\x1f", group.group_id(), "\x1f", Crc32c(group.SerializeAsString()));
}

}  // namespace

RolloutBuffer::RolloutBuffer(int64_t capacity_groups) : capacity_(std::max<int64_t>(1, capacity_groups)) {}

bool RolloutBuffer::Push(v1::RolloutGroup&& group, Clock::time_point deadline) {
  // Leased groups are the dispatcher's (exactly once per item); anonymous ones (no actor) cannot be told apart.
  const std::string key = group.lease_id().empty() && !group.actor().empty() ? UnleasedKey(group) : std::string();
  std::unique_lock<std::mutex> lock(mutex_);
  if (!key.empty() && recent_unleased_.count(key) > 0) {
    ++total_duplicates_;
    return true;
  }
  const bool room =
      not_full_.wait_until(lock, deadline, [&] { return closed_ || static_cast<int64_t>(groups_.size()) < capacity_; });
  if (!room || closed_) return false;
  if (!key.empty()) {
    if (!recent_unleased_.insert(key).second) {  // the same group was buffered while this push waited
      ++total_duplicates_;
      return true;
    }
    recent_unleased_order_.push_back(key);
    if (recent_unleased_order_.size() > kRecentUnleasedGroups) {
      recent_unleased_.erase(recent_unleased_order_.front());
      recent_unleased_order_.pop_front();
    }
  }
  groups_.push_back(std::move(group));
  lock.unlock();
  not_empty_.notify_all();
  return true;
}

int64_t RolloutBuffer::DropStaleLocked(int64_t current_version, int64_t max_staleness,
                                       std::vector<uint64_t>* dropped_items) {
  const int64_t oldest_allowed = current_version - max_staleness;
  const auto stale = [&](const v1::RolloutGroup& group) { return group.policy_version() < oldest_allowed; };
  for (const v1::RolloutGroup& group : groups_) {
    if (stale(group) && !group.lease_id().empty()) dropped_items->push_back(group.item_id());
  }
  const auto removed = std::remove_if(groups_.begin(), groups_.end(), stale);
  const int64_t dropped = std::distance(removed, groups_.end());
  groups_.erase(removed, groups_.end());
  total_dropped_stale_ += dropped;
  return dropped;
}

RolloutBuffer::TakeResult RolloutBuffer::Take(int64_t n, int64_t current_version, int64_t max_staleness,
                                              Clock::time_point deadline) {
  TakeResult result;
  n = std::max<int64_t>(0, n);
  std::unique_lock<std::mutex> lock(mutex_);
  const auto ready = [&] {
    const int64_t dropped = DropStaleLocked(current_version, max_staleness, &result.dropped_items);
    result.dropped_stale += dropped;
    if (dropped > 0) not_full_.notify_all();
    return closed_ || static_cast<int64_t>(groups_.size()) >= n;
  };
  if (!ready()) {
    const Clock::time_point wait_start = Clock::now();
    not_empty_.wait_until(lock, deadline, ready);
    result.waited_s = std::chrono::duration<double>(Clock::now() - wait_start).count();
  }
  result.closed = closed_;
  const int64_t count = std::min<int64_t>(n, static_cast<int64_t>(groups_.size()));
  result.groups.reserve(count);
  for (int64_t i = 0; i < count; ++i) {
    result.groups.push_back(std::move(groups_.front()));
    groups_.pop_front();
  }
  lock.unlock();
  if (count > 0) not_full_.notify_all();
  return result;
}

void RolloutBuffer::Close() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    closed_ = true;
  }
  not_full_.notify_all();
  not_empty_.notify_all();
}

bool RolloutBuffer::closed() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return closed_;
}

int64_t RolloutBuffer::size() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return static_cast<int64_t>(groups_.size());
}

int64_t RolloutBuffer::total_dropped_stale() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return total_dropped_stale_;
}

int64_t RolloutBuffer::total_duplicates() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return total_duplicates_;
}

RolloutBuffer::Clock::time_point SteadyDeadline(std::chrono::system_clock::time_point deadline,
                                                std::chrono::milliseconds cap) {
  const auto system_now = std::chrono::system_clock::now();
  const auto steady_now = RolloutBuffer::Clock::now();
  if (deadline <= system_now) return steady_now;
  // Compare in the system clock's own duration before subtracting, so time_point::max() cannot overflow.
  const auto remaining = deadline - system_now;
  if (remaining >= std::chrono::duration_cast<std::chrono::system_clock::duration>(cap)) return steady_now + cap;
  return steady_now + std::chrono::duration_cast<RolloutBuffer::Clock::duration>(remaining);
}

}  // namespace rlj
