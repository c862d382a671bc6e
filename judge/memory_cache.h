// memory_cache.h: the in-memory LRU layer of the judge cache: recent answers by key, bounded by entries and
// bytes, split into shards (each with its own lock and LRU order) so concurrent Score calls rarely wait on
// one another. Values are shared immutable strings: a hit copies a pointer under the lock, not the answer.
#pragma once

#include <cstddef>
#include <cstdint>
#include <list>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "absl/synchronization/mutex.h"

namespace rlj {

class MemoryCache {
 public:
  struct Limits {  // 0 in either keeps nothing (every lookup falls through)
    size_t max_entries = 200000;
    size_t max_bytes = size_t{256} << 20;  // keys + values + a fixed overhead per entry
  };
  using Value = std::shared_ptr<const std::string>;

  explicit MemoryCache(Limits limits, int shards = 16);
  MemoryCache(const MemoryCache&) = delete;
  MemoryCache& operator=(const MemoryCache&) = delete;

  // The value of `key` (and it becomes the most recently used of its shard), or null. Thread-safe.
  Value Get(const std::string& key);
  // Stores (replaces) `key`, then evicts the least recently used entries of its shard beyond its share of
  // the limits. A value larger than a shard's byte share is not kept. Thread-safe.
  void Put(const std::string& key, Value value);

  size_t entries() const;
  size_t bytes() const;
  // Bytes an entry is charged: key, value and the bookkeeping around them.
  static size_t Charge(const std::string& key, const std::string& value);

 private:
  // Keys are SHA-256 digests: their first 8 bytes are already a uniform hash (shorter keys are hashed).
  struct KeyHash {
    size_t operator()(const std::string& key) const;
  };
  struct Shard {
    struct Entry {
      std::string key;
      Value value;
      size_t charge = 0;
    };
    mutable absl::Mutex mutex;
    std::list<Entry> order ABSL_GUARDED_BY(mutex);  // most recently used first
    std::unordered_map<std::string, std::list<Entry>::iterator, KeyHash> index ABSL_GUARDED_BY(mutex);
    size_t bytes ABSL_GUARDED_BY(mutex) = 0;
  };
  Shard& ShardOf(const std::string& key);

  size_t max_entries_per_shard_;
  size_t max_bytes_per_shard_;
  std::vector<std::unique_ptr<Shard>> shards_;
};

}  // namespace rlj
