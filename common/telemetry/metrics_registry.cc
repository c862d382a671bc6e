// metrics_registry.cc: metric families, collectors and the Prometheus text exposition format.
#include "common/telemetry/metrics_registry.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/log.h"

namespace rlj::telemetry {
namespace {

bool ValidName(const std::string& name) {
  if (name.empty()) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool letter = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
    const bool digit = c >= '0' && c <= '9';
    if (!(letter || (i > 0 && digit))) return false;
  }
  return true;
}

const char* TypeName(MetricType type) {
  switch (type) {
    case MetricType::kCounter:
      return "counter";
    case MetricType::kGauge:
      return "gauge";
    case MetricType::kHistogram:
      return "histogram";
  }
  return "untyped";
}

std::string EscapeHelp(const std::string& help) {
  std::string out;
  for (char c : help) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
  return out;
}

std::string LabelText(const Labels& labels, const std::string& extra_name = "", const std::string& extra_value = "") {
  if (labels.empty() && extra_name.empty()) return "";
  std::string out = "{";
  bool first = true;
  for (const auto& [name, value] : labels) {
    if (!first) out += ",";
    out += absl::StrCat(name, "=\"", EscapeLabelValue(value), "\"");
    first = false;
  }
  if (!extra_name.empty()) {
    if (!first) out += ",";
    out += absl::StrCat(extra_name, "=\"", EscapeLabelValue(extra_value), "\"");
  }
  return out + "}";
}

void Fail(const std::string& message) {
  log::Error("metrics registry: {}", message);
  std::abort();  // a broken invariant of the code, not of the input
}

}  // namespace

std::string FormatSampleValue(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  if (value == std::floor(value) && std::abs(value) < 1e15) return absl::StrCat(static_cast<int64_t>(value));
  char buffer[40];
  for (int precision = 15; precision <= 17; ++precision) {  // the shortest that reads back as the same double
    std::snprintf(buffer, sizeof(buffer), "%.*g", precision, value);
    if (std::strtod(buffer, nullptr) == value) break;
  }
  return buffer;
}

std::string EscapeLabelValue(const std::string& value) {
  std::string out;
  for (char c : value) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '"')
      out += "\\\"";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
  return out;
}

void Counter::Increment(double by) {
  if (!(by >= 0)) return;  // counters never go down
  double current = value_.load(std::memory_order_relaxed);
  while (!value_.compare_exchange_weak(current, current + by, std::memory_order_relaxed)) {
  }
}

void Gauge::Add(double by) {
  double current = value_.load(std::memory_order_relaxed);
  while (!value_.compare_exchange_weak(current, current + by, std::memory_order_relaxed)) {
  }
}

Histogram::Histogram(std::vector<double> upper_bounds) : upper_bounds_(std::move(upper_bounds)) {
  absl::MutexLock lock(&mutex_);
  counts_.assign(upper_bounds_.size() + 1, 0);
}

void Histogram::Observe(double value) {
  if (std::isnan(value)) return;
  const size_t bucket =
      static_cast<size_t>(std::lower_bound(upper_bounds_.begin(), upper_bounds_.end(), value) - upper_bounds_.begin());
  absl::MutexLock lock(&mutex_);
  ++counts_[bucket];
  sum_ += value;
  ++count_;
}

Histogram::Snapshot Histogram::snapshot() const {
  Snapshot snapshot;
  snapshot.upper_bounds = upper_bounds_;
  absl::MutexLock lock(&mutex_);
  uint64_t cumulative = 0;
  for (uint64_t c : counts_) {
    cumulative += c;
    snapshot.cumulative_counts.push_back(cumulative);
  }
  snapshot.sum = sum_;
  snapshot.count = count_;
  return snapshot;
}

std::vector<double> LatencySecondsBuckets() {
  return {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120};
}

struct MetricsRegistry::Family {
  std::string help;
  MetricType type;
  std::map<Labels, std::unique_ptr<Counter>> counters;
  std::map<Labels, std::unique_ptr<Gauge>> gauges;
  std::map<Labels, std::unique_ptr<Histogram>> histograms;
};

MetricsRegistry::MetricsRegistry() = default;
MetricsRegistry::~MetricsRegistry() = default;

MetricsRegistry::Family& MetricsRegistry::FamilyFor(const std::string& name, const std::string& help, MetricType type) {
  if (!ValidName(name)) Fail(absl::StrCat("invalid metric name '", name, "'"));
  if (type == MetricType::kCounter && !absl::EndsWith(name, "_total")) {
    Fail(absl::StrCat("counter '", name, "' must end in _total"));
  }
  auto& family = families_[name];
  if (family == nullptr) {
    family = std::make_unique<Family>();
    family->help = help;
    family->type = type;
  } else if (family->type != type) {
    Fail(absl::StrCat("metric '", name, "' registered as ", TypeName(family->type), " and ", TypeName(type)));
  }
  return *family;
}

Counter& MetricsRegistry::GetCounter(const std::string& name, const std::string& help, const Labels& labels) {
  absl::MutexLock lock(&mutex_);
  auto& slot = FamilyFor(name, help, MetricType::kCounter).counters[labels];
  if (slot == nullptr) slot = std::make_unique<Counter>();
  return *slot;
}

Gauge& MetricsRegistry::GetGauge(const std::string& name, const std::string& help, const Labels& labels) {
  absl::MutexLock lock(&mutex_);
  auto& slot = FamilyFor(name, help, MetricType::kGauge).gauges[labels];
  if (slot == nullptr) slot = std::make_unique<Gauge>();
  return *slot;
}

Histogram& MetricsRegistry::GetHistogram(const std::string& name, const std::string& help,
                                         const std::vector<double>& upper_bounds, const Labels& labels) {
  absl::MutexLock lock(&mutex_);
  auto& slot = FamilyFor(name, help, MetricType::kHistogram).histograms[labels];
  if (slot == nullptr) slot = std::make_unique<Histogram>(upper_bounds);
  return *slot;
}

MetricsRegistry::CollectorHandle& MetricsRegistry::CollectorHandle::operator=(CollectorHandle&& other) noexcept {
  if (this != &other) {
    if (registry_ != nullptr) registry_->RemoveCollector(id_);
    registry_ = other.registry_;
    id_ = other.id_;
    other.registry_ = nullptr;
  }
  return *this;
}

MetricsRegistry::CollectorHandle::~CollectorHandle() {
  if (registry_ != nullptr) registry_->RemoveCollector(id_);
}

MetricsRegistry::CollectorHandle MetricsRegistry::AddCollector(Collector collector) {
  absl::MutexLock lock(&mutex_);
  const int64_t id = next_collector_id_++;
  collectors_[id] = std::move(collector);
  return CollectorHandle(this, id);
}

void MetricsRegistry::RemoveCollector(int64_t id) {
  absl::MutexLock lock(&mutex_);
  collectors_.erase(id);
}

std::string MetricsRegistry::Render() const {
  // Families by name: help, type and their sample lines, so a name shows up once however many sources it has.
  struct Rendered {
    std::string help;
    MetricType type;
    std::vector<std::string> lines;
  };
  std::map<std::string, Rendered> rendered;
  class Writer : public MetricsSnapshotWriter {
   public:
    explicit Writer(std::map<std::string, Rendered>* out) : out_(out) {}
    void Counter(const std::string& name, const std::string& help, double value, const Labels& labels) override {
      Add(name, help, MetricType::kCounter, value, labels);
    }
    void Gauge(const std::string& name, const std::string& help, double value, const Labels& labels) override {
      Add(name, help, MetricType::kGauge, value, labels);
    }

   private:
    void Add(const std::string& name, const std::string& help, MetricType type, double value, const Labels& labels) {
      if (!ValidName(name)) Fail(absl::StrCat("invalid metric name '", name, "'"));
      if (type == MetricType::kCounter && !absl::EndsWith(name, "_total")) {
        Fail(absl::StrCat("counter '", name, "' must end in _total"));
      }
      auto [it, inserted] = out_->try_emplace(name, Rendered{help, type, {}});
      if (!inserted && it->second.type != type) Fail(absl::StrCat("metric '", name, "' has two types"));
      it->second.lines.push_back(absl::StrCat(name, LabelText(labels), " ", FormatSampleValue(value)));
    }
    std::map<std::string, Rendered>* out_;
  };
  Writer writer(&rendered);
  absl::MutexLock lock(&mutex_);
  for (const auto& [name, family] : families_) {
    Rendered& out = rendered.try_emplace(name, Rendered{family->help, family->type, {}}).first->second;
    for (const auto& [labels, counter] : family->counters) {
      out.lines.push_back(absl::StrCat(name, LabelText(labels), " ", FormatSampleValue(counter->value())));
    }
    for (const auto& [labels, gauge] : family->gauges) {
      out.lines.push_back(absl::StrCat(name, LabelText(labels), " ", FormatSampleValue(gauge->value())));
    }
    for (const auto& [labels, histogram] : family->histograms) {
      const Histogram::Snapshot s = histogram->snapshot();
      for (size_t i = 0; i < s.cumulative_counts.size(); ++i) {
        const std::string le = i < s.upper_bounds.size() ? FormatSampleValue(s.upper_bounds[i]) : "+Inf";
        out.lines.push_back(absl::StrCat(name, "_bucket", LabelText(labels, "le", le), " ", s.cumulative_counts[i]));
      }
      out.lines.push_back(absl::StrCat(name, "_sum", LabelText(labels), " ", FormatSampleValue(s.sum)));
      out.lines.push_back(absl::StrCat(name, "_count", LabelText(labels), " ", s.count));
    }
  }
  for (const auto& [id, collector] : collectors_) collector(writer);
  std::string text;
  for (const auto& [name, family] : rendered) {
    text += absl::StrCat("# HELP ", name, " ", EscapeHelp(family.help), "\n# TYPE ", name, " ", TypeName(family.type),
                         "\n");
    for (const std::string& line : family.lines) text += line + "\n";
  }
  return text;
}

}  // namespace rlj::telemetry
