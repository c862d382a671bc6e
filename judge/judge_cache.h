// judge_cache.h: the judge's persistent, content-addressed cache of teacher answers, an SQLite file (WAL,
// safe to share between judge replicas and across runs). The key is the SHA-256 of the backend's identity
// (kind, endpoint, how answers are read) and the rendered request body (which holds the model and the
// sampling parameters); the value is the teacher's answer as received. A hit skips the teacher. An in-memory
// LRU (MemoryCache) sits in front of the file: lookups try it first and fall through to SQLite for the
// rest, answers read from or written to the file enter it; the file stays the persistent truth.
#pragma once

#include <chrono>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "judge/memory_cache.h"

namespace rlj {

class JudgeCache {
 public:
  // Creates the file (and its directory) when missing. `memory` bounds the in-memory layer.
  static absl::StatusOr<std::unique_ptr<JudgeCache>> Open(
      const std::string& path, std::chrono::milliseconds busy_timeout = std::chrono::seconds(5),
      MemoryCache::Limits memory = {});
  ~JudgeCache();

  // SHA-256 of the parts, each length-prefixed (so ("ab","c") and ("a","bc") differ); 32 raw bytes.
  static std::string Key(std::initializer_list<std::string_view> parts);

  // The stored value of each key, or nullopt: from memory, the rest in one read transaction. Thread-safe.
  absl::StatusOr<std::vector<std::optional<std::string>>> GetMany(const std::vector<std::string>& keys);

  // Stores (replaces) entries in one transaction, then in memory; `backend` is kept for people reading the
  // file. Thread-safe.
  absl::Status PutMany(const std::vector<std::pair<std::string, std::string>>& entries, std::string_view backend);

  const std::string& path() const { return path_; }
  int64_t hits() const;
  int64_t misses() const;
  int64_t memory_hits() const;  // the hits served by the in-memory layer (included in hits())
  const MemoryCache& memory() const;

 private:
  struct State;
  JudgeCache(std::string path, std::unique_ptr<State> state);
  std::string path_;
  std::unique_ptr<State> state_;
};

}  // namespace rlj
