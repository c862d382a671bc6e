// memory_cache_test.cc: the in-memory LRU of the judge cache (recency order, entry and byte bounds,
// replacement, concurrent use) and JudgeCache with it in front of the SQLite file (hits from memory,
// misses falling through to the file, answers another replica wrote found there, the file still the truth).
#include "judge/memory_cache.h"

#include <gtest/gtest.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "judge/judge_cache.h"
#include "test_util.h"

namespace rlj {
namespace {

using ::rlj::testing::ScratchDir;

MemoryCache::Value Text(std::string text) { return std::make_shared<const std::string>(std::move(text)); }

std::string ValueOr(const MemoryCache::Value& value, std::string otherwise) { return value ? *value : otherwise; }

TEST(MemoryCache, EvictsTheLeastRecentlyUsedBeyondItsEntryLimit) {
  MemoryCache cache({/*max_entries=*/3, /*max_bytes=*/1 << 20}, /*shards=*/1);
  cache.Put("a", Text("1"));
  cache.Put("b", Text("2"));
  cache.Put("c", Text("3"));
  EXPECT_EQ(ValueOr(cache.Get("a"), "-"), "1");  // a is now the most recent; b the least
  cache.Put("d", Text("4"));
  EXPECT_EQ(cache.entries(), 3u);
  EXPECT_EQ(cache.Get("b"), nullptr);
  EXPECT_EQ(ValueOr(cache.Get("a"), "-"), "1");
  EXPECT_EQ(ValueOr(cache.Get("c"), "-"), "3");
  EXPECT_EQ(ValueOr(cache.Get("d"), "-"), "4");
}

TEST(MemoryCache, KeepsWithinItsByteLimitAndReplacesValues) {
  const size_t one = MemoryCache::Charge("k1", std::string(100, 'x'));
  EXPECT_EQ(one, 2u + 100u + MemoryCache::Charge("", ""));
  // Room for two such entries, not three.
  MemoryCache cache({/*max_entries=*/100, /*max_bytes=*/2 * one + one / 2}, /*shards=*/1);
  cache.Put("k1", Text(std::string(100, 'x')));
  cache.Put("k2", Text(std::string(100, 'y')));
  EXPECT_EQ(cache.bytes(), 2 * one);
  cache.Put("k3", Text(std::string(100, 'z')));
  EXPECT_EQ(cache.entries(), 2u);
  EXPECT_EQ(cache.bytes(), 2 * one);
  EXPECT_EQ(cache.Get("k1"), nullptr);
  // Replacing a value re-charges it: a shorter value frees bytes.
  cache.Put("k2", Text("short"));
  EXPECT_EQ(ValueOr(cache.Get("k2"), "-"), "short");
  EXPECT_EQ(cache.bytes(), one + MemoryCache::Charge("k2", "short"));
  // A value larger than the whole limit is not kept (and what it replaces is gone).
  cache.Put("k3", Text(std::string(1000, 'w')));
  EXPECT_EQ(cache.Get("k3"), nullptr);
  EXPECT_EQ(cache.entries(), 1u);
}

TEST(MemoryCache, ZeroLimitKeepsNothing) {
  MemoryCache cache({/*max_entries=*/0, /*max_bytes=*/1 << 20});
  cache.Put("a", Text("1"));
  EXPECT_EQ(cache.Get("a"), nullptr);
  EXPECT_EQ(cache.entries(), 0u);
  EXPECT_EQ(cache.bytes(), 0u);
}

TEST(MemoryCache, ConcurrentReadersAndWritersSeeOnlyWhatWasStored) {
  MemoryCache cache({/*max_entries=*/64, /*max_bytes=*/1 << 20}, /*shards=*/4);
  std::atomic<int> wrong{0}, found{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 5000; ++i) {
        const std::string key = std::to_string((i * 7 + t) % 200);
        if (i % 3 == 0) {
          cache.Put(key, Text("value of " + key));
        } else if (MemoryCache::Value value = cache.Get(key)) {
          found.fetch_add(1);
          if (*value != "value of " + key) wrong.fetch_add(1);
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_GT(found.load(), 0);
  EXPECT_LE(cache.entries(), 64u);  // 16 per shard at most
}

TEST(JudgeCacheMemory, HitsComeFromMemoryAndMissesFallThroughToTheFile) {
  ScratchDir scratch;
  const std::string path = scratch.file("cache.sqlite");
  const std::string k1 = JudgeCache::Key({"one"}), k2 = JudgeCache::Key({"two"}), k3 = JudgeCache::Key({"three"});
  RLJ_ASSERT_OK_AND_ASSIGN(std::unique_ptr<JudgeCache> judge, JudgeCache::Open(path));
  RLJ_ASSERT_OK(judge->PutMany({{k1, "answer one"}}, "openai"));  // written to the file and to memory
  EXPECT_EQ(judge->memory().entries(), 1u);

  // Another replica writes k2 into the same file: this one's memory lacks it, the lookup finds it there.
  {
    RLJ_ASSERT_OK_AND_ASSIGN(std::unique_ptr<JudgeCache> replica, JudgeCache::Open(path));
    RLJ_ASSERT_OK(replica->PutMany({{k2, "answer two"}}, "openai"));
  }
  RLJ_ASSERT_OK_AND_ASSIGN(auto found, judge->GetMany({k1, k2, k3}));
  EXPECT_EQ(found[0], "answer one");
  EXPECT_EQ(found[1], "answer two");
  EXPECT_EQ(found[2], std::nullopt);
  EXPECT_EQ(judge->hits(), 2);
  EXPECT_EQ(judge->memory_hits(), 1);  // k1; k2 came from the file
  EXPECT_EQ(judge->misses(), 1);
  // k2 entered memory on the way: the next lookup of it does not read the file.
  RLJ_ASSERT_OK_AND_ASSIGN(found, judge->GetMany({k2}));
  EXPECT_EQ(found[0], "answer two");
  EXPECT_EQ(judge->memory_hits(), 2);
  EXPECT_EQ(judge->memory().entries(), 2u);
}

TEST(JudgeCacheMemory, TheFileStaysTheTruthAcrossReopeningAndWithoutMemory) {
  ScratchDir scratch;
  const std::string path = scratch.file("cache.sqlite");
  const std::string key = JudgeCache::Key({"k"});
  {
    RLJ_ASSERT_OK_AND_ASSIGN(std::unique_ptr<JudgeCache> judge, JudgeCache::Open(path));
    RLJ_ASSERT_OK(judge->PutMany({{key, "first"}}, "openai"));
    RLJ_ASSERT_OK(judge->PutMany({{key, "second"}}, "openai"));  // replaces in both layers
    RLJ_ASSERT_OK_AND_ASSIGN(auto found, judge->GetMany({key}));
    EXPECT_EQ(found[0], "second");
  }
  MemoryCache::Limits none;
  none.max_entries = 0;
  RLJ_ASSERT_OK_AND_ASSIGN(std::unique_ptr<JudgeCache> reopened, JudgeCache::Open(path, std::chrono::seconds(5), none));
  for (int i = 0; i < 2; ++i) {
    RLJ_ASSERT_OK_AND_ASSIGN(auto found, reopened->GetMany({key}));
    EXPECT_EQ(found[0], "second");
  }
  EXPECT_EQ(reopened->hits(), 2);
  EXPECT_EQ(reopened->memory_hits(), 0);  // memory off: both read the file
}

}  // namespace
}  // namespace rlj
