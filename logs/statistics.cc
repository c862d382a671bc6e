// statistics.cc: mean, standard deviation, quantiles, Pearson and Spearman correlation, histograms.
#include "logs/statistics.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

namespace rlj::logs {
namespace {
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
}  // namespace

double Mean(const std::vector<double>& values) {
  if (values.empty()) return kNaN;
  return std::accumulate(values.begin(), values.end(), 0.0) / static_cast<double>(values.size());
}

double StdDev(const std::vector<double>& values) {
  if (values.empty()) return kNaN;
  const double mean = Mean(values);
  double sum = 0;
  for (double v : values) sum += (v - mean) * (v - mean);
  return std::sqrt(sum / static_cast<double>(values.size()));
}

double Quantile(std::vector<double> values, double q) {
  if (values.empty()) return kNaN;
  std::sort(values.begin(), values.end());
  q = std::clamp(q, 0.0, 1.0);
  const double position = q * static_cast<double>(values.size() - 1);
  const size_t below = static_cast<size_t>(std::floor(position));
  const size_t above = std::min(below + 1, values.size() - 1);
  const double fraction = position - static_cast<double>(below);
  return values[below] + fraction * (values[above] - values[below]);
}

double Pearson(const std::vector<double>& x, const std::vector<double>& y) {
  const size_t n = std::min(x.size(), y.size());
  if (n < 2) return kNaN;
  double mean_x = 0, mean_y = 0;
  for (size_t i = 0; i < n; ++i) {
    mean_x += x[i];
    mean_y += y[i];
  }
  mean_x /= static_cast<double>(n);
  mean_y /= static_cast<double>(n);
  double sxy = 0, sxx = 0, syy = 0;
  for (size_t i = 0; i < n; ++i) {
    sxy += (x[i] - mean_x) * (y[i] - mean_y);
    sxx += (x[i] - mean_x) * (x[i] - mean_x);
    syy += (y[i] - mean_y) * (y[i] - mean_y);
  }
  if (sxx <= 0 || syy <= 0) return kNaN;
  return std::clamp(sxy / std::sqrt(sxx * syy), -1.0, 1.0);
}

std::vector<double> AverageRanks(const std::vector<double>& values) {
  const size_t n = values.size();
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return values[a] < values[b]; });
  std::vector<double> ranks(n);
  size_t i = 0;
  while (i < n) {
    size_t j = i;
    while (j + 1 < n && values[order[j + 1]] == values[order[i]]) ++j;
    const double rank = (static_cast<double>(i) + static_cast<double>(j)) / 2.0 + 1.0;  // ranks i+1..j+1
    for (size_t k = i; k <= j; ++k) ranks[order[k]] = rank;
    i = j + 1;
  }
  return ranks;
}

double Spearman(const std::vector<double>& x, const std::vector<double>& y) {
  const size_t n = std::min(x.size(), y.size());
  if (n < 2) return kNaN;
  const std::vector<double> xs(x.begin(), x.begin() + static_cast<std::ptrdiff_t>(n));
  const std::vector<double> ys(y.begin(), y.begin() + static_cast<std::ptrdiff_t>(n));
  return Pearson(AverageRanks(xs), AverageRanks(ys));
}

Histogram MakeHistogram(const std::vector<double>& values, int bins, double low, double high) {
  Histogram histogram;
  if (bins < 1) bins = 1;
  if (!(high > low)) {
    low -= 0.5;
    high += 0.5;
  }
  histogram.low = low;
  histogram.high = high;
  histogram.counts.assign(static_cast<size_t>(bins), 0);
  const double width = (high - low) / bins;
  for (double v : values) {
    if (!std::isfinite(v)) continue;
    int bin = static_cast<int>(std::floor((v - low) / width));
    bin = std::clamp(bin, 0, bins - 1);
    ++histogram.counts[static_cast<size_t>(bin)];
  }
  return histogram;
}

}  // namespace rlj::logs
