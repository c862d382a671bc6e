// bench_judge.cc: `rlj bench judge`: requests/s and efficiency of the openai judge's HTTP machinery against an
// in-process teacher stand-in with a fixed latency, and (--cache-hits) the rate of answers from the cache.
#include <cstdio>
#include <memory>

#include "bench/judge_load/judge_bench.h"
#include "tools/command.h"

namespace rlj::tools {
namespace {

Command AddJudgeBench(CLI::App& parent) {
  auto* app = parent.add_subcommand(
      "judge",
      "Judge throughput against a fixed-latency teacher stand-in: one JSON line with requests_per_s and "
      "efficiency = achieved / (concurrency / latency)");
  auto options = std::make_shared<JudgeBenchOptions>();
  app->add_option("--latency-ms", options->latency_ms, "The stand-in's answer latency")->capture_default_str();
  app->add_option("--concurrency", options->concurrency, "judge.openai.max_concurrency")->capture_default_str();
  app->add_option("--requests", options->requests, "Samples scored, one teacher request each")->capture_default_str();
  app->add_option("--batch", options->batch, "Samples per Score call")->capture_default_str();
  app->add_option("--callers", options->callers, "Concurrent Score callers (0 = enough for 2 x concurrency queued)")
      ->capture_default_str();
  app->add_flag("!--no-adaptive", options->adaptive, "Fixed concurrency limit (no AIMD)");
  app->add_option("--repeats", options->repeats, "Timed passes on fresh samples; the median is reported")
      ->capture_default_str();
  app->add_flag("--cache-hits", options->cache_hits,
                "Then score the same samples again from the warm judge cache and report cache_hits_per_s");
  app->add_option("--cache-path", options->cache_path, "Cache file for --cache-hits (default: a temporary file)");
  app->add_option("--memory-cache-entries", options->memory_cache_entries,
                  "Answers the judge cache keeps in memory in front of SQLite (0 = every lookup reads the file)")
      ->capture_default_str();
  app->add_option("--warmup-requests", options->warmup_requests,
                  "Untimed requests first, to open the connections (-1 = concurrency, 0 = none)")
      ->capture_default_str();
  return {app, [options]() -> int {
            const absl::StatusOr<nlohmann::json> result = RunJudgeBench(*options);
            if (!result.ok()) return Fail("bench judge", std::string(result.status().message()));
            std::printf("%s\n", result->dump().c_str());
            return 0;
          }};
}

}  // namespace

RLJ_REGISTER_COMMAND("bench", 40, AddJudgeBench);

}  // namespace rlj::tools
