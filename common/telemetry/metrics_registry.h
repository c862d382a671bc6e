// metrics_registry.h: a process's Prometheus metrics: counters, gauges and histograms (with labels) that
// code updates as it goes, plus collectors called at scrape time to read values kept elsewhere; rendered in
// the Prometheus text exposition format 0.0.4 (what `promtool check metrics` checks).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"

namespace rlj::telemetry {

using Labels = std::map<std::string, std::string>;

enum class MetricType { kCounter, kGauge, kHistogram };

// A value that only goes up (name must end in _total).
class Counter {
 public:
  void Increment(double by = 1);
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

class Gauge {
 public:
  void Set(double value) { value_.store(value, std::memory_order_relaxed); }
  void Add(double by);
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

// Cumulative buckets with upper bounds (le); +Inf is implicit.
class Histogram {
 public:
  explicit Histogram(std::vector<double> upper_bounds);
  void Observe(double value);
  struct Snapshot {
    std::vector<double> upper_bounds;
    std::vector<uint64_t> cumulative_counts;  // per bound, then +Inf
    double sum = 0;
    uint64_t count = 0;
  };
  Snapshot snapshot() const;

 private:
  const std::vector<double> upper_bounds_;
  mutable absl::Mutex mutex_;
  std::vector<uint64_t> counts_ ABSL_GUARDED_BY(mutex_);  // per bucket (not cumulative), +Inf last
  double sum_ ABSL_GUARDED_BY(mutex_) = 0;
  uint64_t count_ ABSL_GUARDED_BY(mutex_) = 0;
};

// Buckets for latencies in seconds: 1 ms .. 120 s.
std::vector<double> LatencySecondsBuckets();

// What a collector writes at scrape time: samples of counters and gauges.
class MetricsSnapshotWriter {
 public:
  virtual ~MetricsSnapshotWriter() = default;
  virtual void Counter(const std::string& name, const std::string& help, double value, const Labels& labels = {}) = 0;
  virtual void Gauge(const std::string& name, const std::string& help, double value, const Labels& labels = {}) = 0;
};

using Collector = std::function<void(MetricsSnapshotWriter&)>;

class MetricsRegistry {
 public:
  MetricsRegistry();
  ~MetricsRegistry();
  MetricsRegistry(const MetricsRegistry&) = delete;
  MetricsRegistry& operator=(const MetricsRegistry&) = delete;

  // The metric with this name and labels, made on first use. The same name with another type, or a name
  // that is not [a-zA-Z_][a-zA-Z0-9_]*, is a programming error (CHECK).
  Counter& GetCounter(const std::string& name, const std::string& help, const Labels& labels = {});
  Gauge& GetGauge(const std::string& name, const std::string& help, const Labels& labels = {});
  Histogram& GetHistogram(const std::string& name, const std::string& help, const std::vector<double>& upper_bounds,
                          const Labels& labels = {});

  // Called on every Render() (under the registry lock: a collector must not call the registry); the returned handle
  // removes it when destroyed (register before the thing it reads goes away: destroy the handle first).
  class CollectorHandle {
   public:
    CollectorHandle() = default;
    CollectorHandle(MetricsRegistry* registry, int64_t id) : registry_(registry), id_(id) {}
    CollectorHandle(CollectorHandle&& other) noexcept { *this = std::move(other); }
    CollectorHandle& operator=(CollectorHandle&& other) noexcept;
    ~CollectorHandle();

   private:
    MetricsRegistry* registry_ = nullptr;
    int64_t id_ = 0;
  };
  [[nodiscard]] CollectorHandle AddCollector(Collector collector);

  // Every family once (# HELP, # TYPE, then its samples), families sorted by name.
  std::string Render() const;

 private:
  struct Family;
  Family& FamilyFor(const std::string& name, const std::string& help, MetricType type);
  void RemoveCollector(int64_t id);

  mutable absl::Mutex mutex_;
  std::map<std::string, std::unique_ptr<Family>> families_ ABSL_GUARDED_BY(mutex_);
  std::map<int64_t, Collector> collectors_ ABSL_GUARDED_BY(mutex_);
  int64_t next_collector_id_ ABSL_GUARDED_BY(mutex_) = 1;
};

// A Prometheus sample value: "NaN", "+Inf", "-Inf" or the shortest round-tripping decimal.
std::string FormatSampleValue(double value);

// Label values escaped for the text format (\\, \", \n).
std::string EscapeLabelValue(const std::string& value);

}  // namespace rlj::telemetry
