// memory_cache.cc: the sharded LRU (a list in recency order plus a hash index per shard).
#include "judge/memory_cache.h"

#include <algorithm>
#include <cstring>
#include <functional>

namespace rlj {
namespace {

// Bookkeeping per entry beyond the key and value bytes: the list node, the index node and bucket, the
// shared string's control block.
constexpr size_t kEntryOverheadBytes = 160;

}  // namespace

MemoryCache::MemoryCache(Limits limits, int shards) {
  const size_t count = static_cast<size_t>(std::max(1, shards));
  // A limit of 0 keeps nothing; any other limit keeps at least one entry per shard.
  max_entries_per_shard_ = limits.max_entries == 0 ? 0 : std::max<size_t>(1, limits.max_entries / count);
  max_bytes_per_shard_ = limits.max_bytes == 0 ? 0 : std::max<size_t>(1, limits.max_bytes / count);
  shards_.reserve(count);
  for (size_t i = 0; i < count; ++i) shards_.push_back(std::make_unique<Shard>());
}

size_t MemoryCache::Charge(const std::string& key, const std::string& value) {
  return key.size() + value.size() + kEntryOverheadBytes;
}

size_t MemoryCache::KeyHash::operator()(const std::string& key) const {
  if (key.size() < 16) return std::hash<std::string>{}(key);
  uint64_t prefix = 0;
  std::memcpy(&prefix, key.data(), sizeof(prefix));
  return static_cast<size_t>(prefix);
}

MemoryCache::Shard& MemoryCache::ShardOf(const std::string& key) {
  // The shard from other bytes than the index's hash, so each shard's buckets stay evenly used.
  size_t hash = 0;
  if (key.size() >= 16) {
    uint64_t bytes = 0;
    std::memcpy(&bytes, key.data() + 8, sizeof(bytes));
    hash = static_cast<size_t>(bytes);
  } else {
    hash = std::hash<std::string>{}(key) >> 16;
  }
  return *shards_[hash % shards_.size()];
}

MemoryCache::Value MemoryCache::Get(const std::string& key) {
  Shard& shard = ShardOf(key);
  absl::MutexLock lock(&shard.mutex);
  auto it = shard.index.find(key);
  if (it == shard.index.end()) return nullptr;
  shard.order.splice(shard.order.begin(), shard.order, it->second);
  return it->second->value;
}

void MemoryCache::Put(const std::string& key, Value value) {
  if (value == nullptr) return;
  const size_t charge = Charge(key, *value);
  Shard& shard = ShardOf(key);
  absl::MutexLock lock(&shard.mutex);
  if (auto it = shard.index.find(key); it != shard.index.end()) {
    shard.bytes -= it->second->charge;
    shard.order.erase(it->second);
    shard.index.erase(it);
  }
  if (charge > max_bytes_per_shard_ || max_entries_per_shard_ == 0) return;
  shard.order.push_front(Shard::Entry{key, std::move(value), charge});
  shard.index.emplace(key, shard.order.begin());
  shard.bytes += charge;
  while (shard.index.size() > max_entries_per_shard_ || shard.bytes > max_bytes_per_shard_) {
    const Shard::Entry& oldest = shard.order.back();
    shard.bytes -= oldest.charge;
    shard.index.erase(oldest.key);
    shard.order.pop_back();
  }
}

size_t MemoryCache::entries() const {
  size_t total = 0;
  for (const auto& shard : shards_) {
    absl::MutexLock lock(&shard->mutex);
    total += shard->index.size();
  }
  return total;
}

size_t MemoryCache::bytes() const {
  size_t total = 0;
  for (const auto& shard : shards_) {
    absl::MutexLock lock(&shard->mutex);
    total += shard->bytes;
  }
  return total;
}

}  // namespace rlj
