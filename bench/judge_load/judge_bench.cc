// judge_bench.cc: drives the openai judge against the fixed-latency teacher stand-in and measures it.
#include "bench/judge_load/judge_bench.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "bench/judge_load/fixed_latency_server.h"
#include "common/status.h"
#include "judge/backend_registry.h"
#include "judge/judge_cache.h"

namespace rlj {
namespace {

using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

std::string LoadAverage() {
  std::ifstream in("/proc/loadavg");
  std::string one, five, fifteen;
  in >> one >> five >> fifteen;
  return absl::StrCat(one, " ", five, " ", fifteen);
}

// CPU seconds this process has used (every thread: the judge, the callers and the stand-in).
double ProcessCpuSeconds() {
  timespec now{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &now);
  return static_cast<double>(now.tv_sec) + static_cast<double>(now.tv_nsec) * 1e-9;
}

// `n` samples, distinct from those of any other `pass` (so a later pass never hits the cache by accident).
std::vector<v1::Sample> MakeSamples(int n, int pass) {
  std::vector<v1::Sample> samples(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) {
    v1::Sample& sample = samples[static_cast<size_t>(i)];
    sample.set_id(absl::StrCat("bench/", pass, "/", i));
    sample.set_prompt(absl::StrCat("What is ", i, " + ", 2 * i, "? Answer with the number only. (", pass, ")"));
    sample.set_completion(absl::StrCat(3 * i));
    sample.set_reference(absl::StrCat(3 * i));
    sample.set_group_id(absl::StrCat("bench/", i / 8));
    sample.set_index_in_group(i % 8);
  }
  return samples;
}

// The samples cut into Score calls of `batch` (before timing: a replica's callers receive theirs ready).
std::vector<std::vector<v1::Sample>> Batches(const std::vector<v1::Sample>& samples, int batch) {
  std::vector<std::vector<v1::Sample>> batches;
  for (size_t begin = 0; begin < samples.size(); begin += static_cast<size_t>(batch)) {
    const size_t end = std::min(samples.size(), begin + static_cast<size_t>(batch));
    batches.emplace_back(samples.begin() + static_cast<std::ptrdiff_t>(begin),
                         samples.begin() + static_cast<std::ptrdiff_t>(end));
  }
  return batches;
}

struct PassResult {
  double seconds = 0;
  double cpu_seconds = 0;
  int64_t errors = 0;
  int64_t cache_hits = 0;
  std::string first_error;
};

// Scores every batch once, `callers` threads taking the next batch as they finish one.
PassResult ScoreAll(JudgeBackend& backend, const std::vector<std::vector<v1::Sample>>& batches, int callers) {
  std::atomic<size_t> next{0};
  std::atomic<int64_t> errors{0}, hits{0};
  std::string first_error;
  std::atomic<bool> have_error{false};
  const double cpu_start = ProcessCpuSeconds();
  const auto start = Clock::now();
  std::vector<std::thread> threads;
  for (int t = 0; t < callers; ++t) {
    threads.emplace_back([&] {
      while (true) {
        const size_t index = next.fetch_add(1);
        if (index >= batches.size()) return;
        int64_t batch_errors = 0, batch_hits = 0;
        for (const Judgement& judgement : backend.Score(batches[index])) {
          if (judgement.verdict.has_error()) {
            ++batch_errors;
            if (!have_error.exchange(true)) first_error = judgement.verdict.error().message();
          }
          if (judgement.verdict.cache_hit()) ++batch_hits;
        }
        errors.fetch_add(batch_errors);
        hits.fetch_add(batch_hits);
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  PassResult result;
  result.seconds = SecondsSince(start);
  result.cpu_seconds = ProcessCpuSeconds() - cpu_start;
  result.errors = errors.load();
  result.cache_hits = hits.load();
  result.first_error = first_error;
  return result;
}

absl::Status CheckOptions(const JudgeBenchOptions& options) {
  if (!(options.latency_ms >= 0)) return absl::InvalidArgumentError("--latency-ms must be >= 0");
  if (options.concurrency < 1) return absl::InvalidArgumentError("--concurrency must be >= 1");
  if (options.requests < 1) return absl::InvalidArgumentError("--requests must be >= 1");
  if (options.batch < 1) return absl::InvalidArgumentError("--batch must be >= 1");
  if (options.callers < 0) return absl::InvalidArgumentError("--callers must be >= 0");
  if (options.repeats < 1) return absl::InvalidArgumentError("--repeats must be >= 1");
  if (options.warmup_requests < -1) return absl::InvalidArgumentError("--warmup-requests must be >= 0 (or -1)");
  return absl::OkStatus();
}

// The stand-in answers every request with a rubric score after `latency_ms`.
FixedLatencyServer::Options StandInOptions(double latency_ms) {
  FixedLatencyServer::Options server_options;
  server_options.latency = std::chrono::microseconds(static_cast<int64_t>(latency_ms * 1000));
  server_options.body =
      R"({"id":"bench","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant",)"
      R"("content":"{\"score\": 7}"},"finish_reason":"stop"}],"usage":{"prompt_tokens":60,"completion_tokens":6,)"
      R"("total_tokens":66}})";
  return server_options;
}

// The openai judge in rubric mode against the stand-in at `base_url`, its breaker off.
v1::JudgeConfig BenchJudgeConfig(const std::string& base_url, const JudgeBenchOptions& options) {
  v1::JudgeConfig config;
  config.set_backend("openai");
  config.set_timeout_ms(600000);
  v1::OpenAIJudgeConfig* openai = config.mutable_openai();
  openai->set_base_url(base_url);
  openai->set_model("stand-in");
  openai->set_api_key_env("");
  openai->set_rubric("Question: {prompt}\nAnswer: {completion}\nReference: {reference}\nReply {\"score\": 0-10}.");
  openai->set_max_concurrency(options.concurrency);
  openai->set_adaptive_concurrency(options.adaptive);
  openai->set_timeout_ms(600000);
  openai->set_breaker_failures(0);
  return config;
}

nlohmann::json OptionsJson(const JudgeBenchOptions& options, int callers, int warmup) {
  nlohmann::json out;
  out["bench"] = "judge";
  out["latency_ms"] = options.latency_ms;
  out["concurrency"] = options.concurrency;
  out["requests"] = options.requests;
  out["batch"] = options.batch;
  out["callers"] = callers;
  out["adaptive"] = options.adaptive;
  out["warmup_requests"] = warmup;
  return out;
}

// The judge cache of a cache_hits run (none otherwise), in a scratch directory unless cache_path names a file.
struct BenchCache {
  std::unique_ptr<JudgeCache> cache;
  std::string path;
  std::filesystem::path scratch;  // to remove at the end; empty: none
};

absl::StatusOr<BenchCache> OpenBenchCache(const JudgeBenchOptions& options) {
  BenchCache bench_cache;
  bench_cache.path = options.cache_path;
  if (options.cache_hits && bench_cache.path.empty()) {
    std::string pattern = (std::filesystem::temp_directory_path() / "rlj-bench-judge-XXXXXX").string();
    if (mkdtemp(pattern.data()) == nullptr) return absl::InternalError("mkdtemp failed");
    bench_cache.scratch = pattern;
    bench_cache.path = (bench_cache.scratch / "judge_cache.sqlite").string();
  }
  if (options.cache_hits) {
    MemoryCache::Limits memory;
    memory.max_entries = options.memory_cache_entries;
    RLJ_ASSIGN_OR_RETURN(bench_cache.cache, JudgeCache::Open(bench_cache.path, std::chrono::seconds(5), memory));
  }
  return bench_cache;
}

// Timed passes: every sample a teacher request (each pass has its own samples, so none hits the cache). Writes
// the median pass's figures into `out`; returns the last pass's samples.
std::vector<v1::Sample> RunTimedPasses(JudgeBackend& backend, const JudgeBenchOptions& options, int callers,
                                       nlohmann::json* out) {
  const double ideal = options.latency_ms > 0 ? options.concurrency / (options.latency_ms / 1000.0) : 0;
  std::vector<PassResult> passes;
  std::vector<v1::Sample> samples;
  int64_t errors = 0;
  std::string first_error;
  nlohmann::json efficiencies = nlohmann::json::array();
  for (int repeat = 0; repeat < options.repeats; ++repeat) {
    samples = MakeSamples(options.requests, repeat);
    passes.push_back(ScoreAll(backend, Batches(samples, options.batch), callers));
    errors += passes.back().errors;
    if (first_error.empty()) first_error = passes.back().first_error;
    efficiencies.push_back(ideal > 0 ? options.requests / passes.back().seconds / ideal : 0.0);
  }
  std::sort(passes.begin(), passes.end(),
            [](const PassResult& a, const PassResult& b) { return a.seconds < b.seconds; });
  const PassResult& median = passes[passes.size() / 2];
  const double achieved = static_cast<double>(options.requests) / median.seconds;
  (*out)["repeats"] = options.repeats;
  (*out)["seconds"] = median.seconds;
  (*out)["requests_per_s"] = achieved;
  (*out)["ideal_requests_per_s"] = ideal;
  (*out)["efficiency"] = ideal > 0 ? achieved / ideal : 0.0;
  (*out)["efficiencies"] = efficiencies;
  (*out)["cpu_seconds"] = median.cpu_seconds;
  (*out)["cpu_us_per_request"] = median.cpu_seconds * 1e6 / options.requests;
  (*out)["errors"] = errors;
  if (!first_error.empty()) (*out)["first_error"] = first_error;
  return samples;
}

// Scores `samples` again, from the warm cache, and writes what the hits cost into `out`.
void RunCachePass(JudgeBackend& backend, const BenchCache& bench_cache, const FixedLatencyServer& server,
                  const std::vector<v1::Sample>& samples, const JudgeBenchOptions& options, int callers,
                  nlohmann::json* out) {
  const int64_t before = server.requests();
  const int64_t memory_before = bench_cache.cache->memory_hits();
  const PassResult hits = ScoreAll(backend, Batches(samples, options.batch), callers);
  (*out)["cache_hit_requests"] = hits.cache_hits;
  (*out)["cache_memory_hits"] = bench_cache.cache->memory_hits() - memory_before;
  (*out)["memory_cache_entries"] = options.memory_cache_entries;
  (*out)["cache_errors"] = hits.errors;
  (*out)["cache_seconds"] = hits.seconds;
  (*out)["cache_cpu_seconds"] = hits.cpu_seconds;
  (*out)["cache_hits_per_s"] = static_cast<double>(hits.cache_hits) / hits.seconds;
  // What the hit path costs, whatever else runs on the machine: hits per second of this process's CPU.
  (*out)["cache_hits_per_cpu_s"] = hits.cpu_seconds > 0 ? static_cast<double>(hits.cache_hits) / hits.cpu_seconds : 0.0;
  (*out)["cache_teacher_requests"] = server.requests() - before;
  (*out)["cache_path"] = bench_cache.path;
}

}  // namespace

absl::StatusOr<nlohmann::json> RunJudgeBench(const JudgeBenchOptions& options) {
  RLJ_RETURN_IF_ERROR(CheckOptions(options));
  const int callers = options.callers > 0 ? options.callers
                                          : std::max(1, (2 * options.concurrency + options.batch - 1) / options.batch);
  RLJ_ASSIGN_OR_RETURN(std::unique_ptr<FixedLatencyServer> server,
                       FixedLatencyServer::Start(StandInOptions(options.latency_ms)));
  const int warmup = options.warmup_requests < 0 ? options.concurrency : options.warmup_requests;
  nlohmann::json out = OptionsJson(options, callers, warmup);

  RLJ_ASSIGN_OR_RETURN(BenchCache bench_cache, OpenBenchCache(options));
  JudgeBackendDeps deps;
  deps.cache = bench_cache.cache.get();
  auto made = MakeJudgeBackend(BenchJudgeConfig(server->base_url(), options), deps);
  if (!made.ok()) return made.status();
  std::unique_ptr<JudgeBackend> backend = std::move(made).value();

  // Untimed warm-up on samples of their own (pass -1): opens the connections a running judge keeps open.
  if (warmup > 0) {
    const PassResult warm = ScoreAll(*backend, Batches(MakeSamples(warmup, -1), options.batch), callers);
    if (warm.errors > 0) return absl::UnavailableError(absl::StrCat("warm-up failed: ", warm.first_error));
  }
  const int64_t warmup_server_requests = server->requests();

  const std::vector<v1::Sample> samples = RunTimedPasses(*backend, options, callers, &out);
  out["server_requests"] = server->requests() - warmup_server_requests;
  out["server_max_pending"] = server->max_pending();
  out["server_connections"] = server->connections();
  if (options.cache_hits) RunCachePass(*backend, bench_cache, *server, samples, options, callers, &out);
  out["load_average"] = LoadAverage();
  backend.reset();
  bench_cache.cache.reset();
  if (!bench_cache.scratch.empty()) {
    std::error_code ignored;
    std::filesystem::remove_all(bench_cache.scratch, ignored);
  }
  return out;
}

}  // namespace rlj
