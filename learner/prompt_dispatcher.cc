// prompt_dispatcher.cc: seeded epochs over the training set, prompt leases with timeouts and exactly-once
// receipt of items, and the JSON position saved in checkpoints.
#include "learner/prompt_dispatcher.h"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <numeric>
#include <random>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/crc32c.h"

namespace rlj {

PromptDispatcher::PromptDispatcher(std::vector<PromptRow> rows, uint64_t seed, std::chrono::milliseconds lease_timeout)
    : rows_(std::move(rows)),
      seed_(seed),
      lease_timeout_(lease_timeout),
      incarnation_(absl::StrFormat("%08x", static_cast<uint32_t>(std::random_device{}()))) {}

const std::vector<size_t>& PromptDispatcher::OrderOf(int64_t epoch) const {
  auto it = orders_.find(epoch);
  if (it != orders_.end()) return it->second;
  std::vector<size_t> order(rows_.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::mt19937_64 rng(seed_ * 0x9E3779B97F4A7C15ULL + static_cast<uint64_t>(epoch) + 1);
  std::shuffle(order.begin(), order.end(), rng);
  while (orders_.size() >= 3) orders_.erase(orders_.begin());  // old epochs are only needed for returns
  return orders_.emplace(epoch, std::move(order)).first->second;
}

void PromptDispatcher::ExpireLocked(Clock::time_point now) {
  for (auto it = leases_.begin(); it != leases_.end();) {
    if (it->second.deadline > now) {
      ++it;
      continue;
    }
    ++leases_expired_;
    for (uint64_t item_id : it->second.items) {
      auto item = items_.find(item_id);
      if (item == items_.end() || item->second.state != ItemState::kLeased || item->second.lease_id != it->first) {
        continue;
      }
      item->second.state = ItemState::kPending;
      item->second.lease_id.clear();
      returned_.push_back(item_id);
    }
    it = leases_.erase(it);
  }
}

v1::LeasePromptsResponse PromptDispatcher::Lease(const std::string& actor, int count, Clock::time_point now) {
  (void)actor;
  v1::LeasePromptsResponse response;
  std::lock_guard<std::mutex> lock(mutex_);
  ExpireLocked(now);
  const std::string lease_id = absl::StrCat(incarnation_, "-", next_lease_++);
  LeaseRecord record;
  record.deadline = now + lease_timeout_;
  const uint64_t n = rows_.size();
  while (static_cast<int>(record.items.size()) < count) {
    uint64_t item_id;
    if (!returned_.empty()) {
      item_id = returned_.front();
      returned_.pop_front();
      auto item = items_.find(item_id);
      if (item == items_.end() || item->second.state != ItemState::kPending) continue;  // arrived meanwhile
    } else {
      item_id = static_cast<uint64_t>(epoch_) * n + cursor_;
      if (++cursor_ == n) {
        cursor_ = 0;
        ++epoch_;
      }
    }
    Item& item = items_[item_id];
    item.state = ItemState::kLeased;
    item.lease_id = lease_id;
    record.items.push_back(item_id);
    const int64_t epoch = static_cast<int64_t>(item_id / n);
    const PromptRow& row = rows_[OrderOf(epoch)[item_id % n]];
    v1::LeasedPrompt* prompt = response.add_prompts();
    prompt->set_item_id(item_id);
    prompt->set_prompt_id(row.id);
    prompt->set_prompt(row.prompt);
    prompt->set_reference(row.reference);
    prompt->set_epoch(epoch);
  }
  prompts_leased_ += static_cast<int64_t>(record.items.size());
  response.set_lease_id(lease_id);
  response.set_lease_timeout_ms(lease_timeout_.count());
  leases_.emplace(lease_id, std::move(record));
  return response;
}

PromptDispatcher::Receipt PromptDispatcher::Receive(const std::string& lease_id, uint64_t item_id,
                                                    Clock::time_point now) {
  std::lock_guard<std::mutex> lock(mutex_);
  ExpireLocked(now);
  if (lease_id.rfind(incarnation_ + "-", 0) != 0) return Receipt::kUnknownLease;
  auto item = items_.find(item_id);
  // Received already (through whichever lease came first), or trained: never twice.
  if (item == items_.end() || item->second.state == ItemState::kReceived) {
    ++duplicates_;
    return Receipt::kDuplicate;
  }
  // Leased to this lease, or returned / re-leased after this lease expired: the first arrival wins.
  const std::string holder = item->second.lease_id;
  item->second.state = ItemState::kReceived;
  item->second.lease_id = lease_id;
  for (const std::string& id : {lease_id, holder}) {
    auto lease = leases_.find(id);
    if (lease == leases_.end()) continue;
    auto& items = lease->second.items;
    items.erase(std::remove(items.begin(), items.end(), item_id), items.end());
    if (items.empty()) leases_.erase(lease);
  }
  return Receipt::kAccepted;
}

void PromptDispatcher::Return(uint64_t item_id) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto item = items_.find(item_id);
  if (item == items_.end() || item->second.state == ItemState::kPending) return;
  item->second.state = ItemState::kPending;
  item->second.lease_id.clear();
  returned_.push_front(item_id);
}

void PromptDispatcher::MarkTrained(const std::vector<uint64_t>& item_ids) {
  std::lock_guard<std::mutex> lock(mutex_);
  for (uint64_t id : item_ids) items_.erase(id);
}

uint32_t PromptDispatcher::Fingerprint() const {
  uint32_t crc = 0;
  for (const PromptRow& row : rows_) {
    crc = Crc32cExtend(crc, row.id.data(), row.id.size());
    crc = Crc32cExtend(crc, row.prompt.data(), row.prompt.size());
  }
  return crc;
}

std::string PromptDispatcher::SaveState() const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::vector<uint64_t> pending;
  for (const auto& [id, item] : items_) pending.push_back(id);
  std::sort(pending.begin(), pending.end());
  nlohmann::ordered_json json;
  json["rows"] = rows_.size();
  json["fingerprint"] = Fingerprint();
  json["epoch"] = epoch_;
  json["cursor"] = cursor_;
  json["pending_items"] = pending;
  json["prompts_leased"] = prompts_leased_;
  json["leases_expired"] = leases_expired_;
  json["duplicates"] = duplicates_;
  return json.dump();
}

absl::Status PromptDispatcher::RestoreState(const std::string& text) {
  nlohmann::json json;
  try {
    json = nlohmann::json::parse(text);
    const uint64_t rows = json.at("rows").get<uint64_t>();
    if (rows != rows_.size() || json.at("fingerprint").get<uint32_t>() != Fingerprint()) {
      return absl::FailedPreconditionError(
          absl::StrCat("the training set changed since the checkpoint (", rows, " rows then, ", rows_.size(),
                       " now, or different ids/prompts): its position cannot be resumed"));
    }
    std::lock_guard<std::mutex> lock(mutex_);
    epoch_ = json.at("epoch").get<int64_t>();
    cursor_ = json.at("cursor").get<uint64_t>();
    if (cursor_ >= rows_.size() || epoch_ < 0) return absl::DataLossError("dispatcher state: cursor out of range");
    items_.clear();
    returned_.clear();
    leases_.clear();
    for (uint64_t id : json.at("pending_items").get<std::vector<uint64_t>>()) {
      items_[id] = Item{};
      returned_.push_back(id);
    }
    prompts_leased_ = json.value("prompts_leased", int64_t{0});
    leases_expired_ = json.value("leases_expired", int64_t{0});
    duplicates_ = json.value("duplicates", int64_t{0});
  } catch (const nlohmann::json::exception& error) {
    return absl::DataLossError(absl::StrCat("dispatcher state: ", error.what()));
  }
  return absl::OkStatus();
}

int64_t PromptDispatcher::epoch() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return epoch_;
}
int64_t PromptDispatcher::prompts_leased() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return prompts_leased_;
}
int64_t PromptDispatcher::leases_expired() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return leases_expired_;
}
int64_t PromptDispatcher::duplicates() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return duplicates_;
}
size_t PromptDispatcher::outstanding() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return items_.size();
}

}  // namespace rlj
