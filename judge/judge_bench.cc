// judge_bench.cc: drives the openai judge against the fixed-latency teacher stand-in and measures it.
#include "judge/judge_bench.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "judge/backend_registry.h"
#include "judge/fixed_latency_server.h"
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

struct PassResult {
  double seconds = 0;
  int64_t errors = 0;
  int64_t cache_hits = 0;
  std::string first_error;
};

// Scores every sample once, `callers` threads taking `batch` samples at a time.
PassResult ScoreAll(JudgeBackend& backend, const std::vector<v1::Sample>& samples, int batch, int callers) {
  std::atomic<size_t> next{0};
  std::atomic<int64_t> errors{0}, hits{0};
  std::string first_error;
  std::atomic<bool> have_error{false};
  const auto start = Clock::now();
  std::vector<std::thread> threads;
  for (int t = 0; t < callers; ++t) {
    threads.emplace_back([&] {
      while (true) {
        const size_t begin = next.fetch_add(static_cast<size_t>(batch));
        if (begin >= samples.size()) return;
        const size_t end = std::min(samples.size(), begin + static_cast<size_t>(batch));
        const std::vector<v1::Sample> part(samples.begin() + static_cast<std::ptrdiff_t>(begin),
                                           samples.begin() + static_cast<std::ptrdiff_t>(end));
        for (const Judgement& judgement : backend.Score(part)) {
          if (judgement.verdict.has_error()) {
            errors.fetch_add(1);
            if (!have_error.exchange(true)) first_error = judgement.verdict.error().message();
          }
          if (judgement.verdict.cache_hit()) hits.fetch_add(1);
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  PassResult result;
  result.seconds = SecondsSince(start);
  result.errors = errors.load();
  result.cache_hits = hits.load();
  result.first_error = first_error;
  return result;
}

}  // namespace

absl::StatusOr<nlohmann::json> RunJudgeBench(const JudgeBenchOptions& options) {
  if (!(options.latency_ms >= 0)) return absl::InvalidArgumentError("--latency-ms must be >= 0");
  if (options.concurrency < 1) return absl::InvalidArgumentError("--concurrency must be >= 1");
  if (options.requests < 1) return absl::InvalidArgumentError("--requests must be >= 1");
  if (options.batch < 1) return absl::InvalidArgumentError("--batch must be >= 1");
  if (options.callers < 0) return absl::InvalidArgumentError("--callers must be >= 0");
  if (options.repeats < 1) return absl::InvalidArgumentError("--repeats must be >= 1");
  const int callers =
      options.callers > 0 ? options.callers : std::max(1, (2 * options.concurrency + options.batch - 1) / options.batch);

  FixedLatencyServer::Options server_options;
  server_options.latency = std::chrono::microseconds(static_cast<int64_t>(options.latency_ms * 1000));
  server_options.body =
      R"({"id":"bench","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant",)"
      R"("content":"{\"score\": 7}"},"finish_reason":"stop"}],"usage":{"prompt_tokens":60,"completion_tokens":6,)"
      R"("total_tokens":66}})";
  RLJ_ASSIGN_OR_RETURN(std::unique_ptr<FixedLatencyServer> server, FixedLatencyServer::Start(server_options));

  v1::JudgeConfig config;
  config.set_backend("openai");
  config.set_timeout_ms(600000);
  v1::OpenAIJudgeConfig* openai = config.mutable_openai();
  openai->set_base_url(server->base_url());
  openai->set_model("stand-in");
  openai->set_api_key_env("");
  openai->set_rubric("Question: {prompt}\nAnswer: {completion}\nReference: {reference}\nReply {\"score\": 0-10}.");
  openai->set_max_concurrency(options.concurrency);
  openai->set_adaptive_concurrency(options.adaptive);
  openai->set_timeout_ms(600000);
  openai->set_breaker_failures(0);

  nlohmann::json out;
  out["bench"] = "judge";
  out["latency_ms"] = options.latency_ms;
  out["concurrency"] = options.concurrency;
  out["requests"] = options.requests;
  out["batch"] = options.batch;
  out["callers"] = callers;
  out["adaptive"] = options.adaptive;

  std::unique_ptr<JudgeCache> cache;
  std::string cache_path = options.cache_path;
  std::filesystem::path scratch;
  if (options.cache_hits && cache_path.empty()) {
    std::string pattern = (std::filesystem::temp_directory_path() / "rlj-bench-judge-XXXXXX").string();
    if (mkdtemp(pattern.data()) == nullptr) return absl::InternalError("mkdtemp failed");
    scratch = pattern;
    cache_path = (scratch / "judge_cache.sqlite").string();
  }
  if (options.cache_hits) {
    RLJ_ASSIGN_OR_RETURN(cache, JudgeCache::Open(cache_path));
  }
  JudgeBackendDeps deps;
  deps.cache = cache.get();
  auto made = MakeJudgeBackend(config, deps);
  if (!made.ok()) return made.status();
  std::unique_ptr<JudgeBackend> backend = std::move(made).value();

  // Timed passes: every sample a teacher request (each pass has its own samples, so none hits the cache).
  const double ideal = options.latency_ms > 0 ? options.concurrency / (options.latency_ms / 1000.0) : 0;
  std::vector<PassResult> passes;
  std::vector<v1::Sample> samples;
  int64_t errors = 0;
  std::string first_error;
  nlohmann::json efficiencies = nlohmann::json::array();
  for (int repeat = 0; repeat < options.repeats; ++repeat) {
    samples = MakeSamples(options.requests, repeat);
    passes.push_back(ScoreAll(*backend, samples, options.batch, callers));
    errors += passes.back().errors;
    if (first_error.empty()) first_error = passes.back().first_error;
    efficiencies.push_back(ideal > 0 ? options.requests / passes.back().seconds / ideal : 0.0);
  }
  std::sort(passes.begin(), passes.end(), [](const PassResult& a, const PassResult& b) { return a.seconds < b.seconds; });
  const PassResult& median = passes[passes.size() / 2];
  const double achieved = static_cast<double>(options.requests) / median.seconds;
  out["repeats"] = options.repeats;
  out["seconds"] = median.seconds;
  out["requests_per_s"] = achieved;
  out["ideal_requests_per_s"] = ideal;
  out["efficiency"] = ideal > 0 ? achieved / ideal : 0.0;
  out["efficiencies"] = efficiencies;
  out["errors"] = errors;
  if (!first_error.empty()) out["first_error"] = first_error;
  out["server_requests"] = server->requests();
  out["server_max_pending"] = server->max_pending();
  out["server_connections"] = server->connections();
  if (options.cache_hits) {
    const int64_t before = server->requests();
    const PassResult hits = ScoreAll(*backend, samples, options.batch, callers);
    out["cache_hit_requests"] = hits.cache_hits;
    out["cache_errors"] = hits.errors;
    out["cache_seconds"] = hits.seconds;
    out["cache_hits_per_s"] = static_cast<double>(hits.cache_hits) / hits.seconds;
    out["cache_teacher_requests"] = server->requests() - before;
    out["cache_path"] = cache_path;
  }
  out["load_average"] = LoadAverage();
  backend.reset();
  cache.reset();
  if (!scratch.empty()) {
    std::error_code ignored;
    std::filesystem::remove_all(scratch, ignored);
  }
  return out;
}

}  // namespace rlj
