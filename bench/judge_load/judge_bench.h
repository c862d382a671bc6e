// judge_bench.h: the body of `rlj bench judge`: the openai judge (rubric mode, the full path: cache lookup,
// dispatcher limits, libcurl multi, answer parsing, accounting) against a FixedLatencyServer teacher
// stand-in, fed by concurrent Score callers like a judge replica's threads. Reports achieved requests/s and
// efficiency = achieved / (concurrency / latency); optionally the rate of cache hits.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "judge/memory_cache.h"
#include "nlohmann/json.hpp"

namespace rlj {

struct JudgeBenchOptions {
  double latency_ms = 50;   // the stand-in's answer latency
  int concurrency = 256;    // judge.openai.max_concurrency
  int requests = 20000;     // samples scored (one teacher request each)
  int batch = 64;           // samples per Score call
  int callers = 0;          // concurrent Score callers; 0 = enough to keep 2 x concurrency queued
  bool adaptive = true;     // judge.openai.adaptive_concurrency
  int repeats = 1;          // timed passes (each on fresh samples); the median is reported
  bool cache_hits = false;  // also: score the same samples again from a warm cache and time it
  std::string cache_path;   // the cache file for cache_hits; "" = a fresh file under the temp directory
  // Entries the judge cache keeps in memory in front of SQLite (0: every lookup reads the SQLite file).
  size_t memory_cache_entries = MemoryCache::Limits().max_entries;
  // Requests sent before the timed passes (untimed), so they start on open, kept-alive connections the way
  // a running judge does; 0 = none (the first pass then pays for opening every connection).
  int warmup_requests = -1;  // -1 = concurrency
};

// One JSON object: the options, seconds, requests_per_s, ideal_requests_per_s, efficiency (of the median
// pass, over all its requests from the first submitted to the last answered; every pass's in
// efficiencies), errors, the stand-in's max_pending and connections, the process's CPU seconds, the load
// average; with cache_hits also cache_hit_requests, cache_seconds, cache_hits_per_s and how many of the
// hits the in-memory layer served.
absl::StatusOr<nlohmann::json> RunJudgeBench(const JudgeBenchOptions& options);

}  // namespace rlj
