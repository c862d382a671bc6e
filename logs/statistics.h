// statistics.h: the small statistics the log tools need: mean, spread, quantiles, rank correlation,
// histograms. Plain functions over vectors of doubles; empty inputs give NaN, never a crash.
#pragma once

#include <cstdint>
#include <vector>

namespace rlj::logs {

double Mean(const std::vector<double>& values);

// Population standard deviation (divides by n); 0 for one value.
double StdDev(const std::vector<double>& values);

// The q-quantile (0 <= q <= 1) with linear interpolation between order statistics (NumPy's default).
double Quantile(std::vector<double> values, double q);

// Pearson correlation of paired values; NaN when fewer than two pairs or either side is constant.
double Pearson(const std::vector<double>& x, const std::vector<double>& y);

// Ranks 1..n, ties sharing the average of their ranks.
std::vector<double> AverageRanks(const std::vector<double>& values);

// Spearman rank correlation: Pearson over average ranks (correct with ties).
double Spearman(const std::vector<double>& x, const std::vector<double>& y);

struct Histogram {
  double low = 0;
  double high = 0;  // bins are [low + i*w, low + (i+1)*w), the last one closed
  std::vector<int64_t> counts;
  double bin_width() const { return counts.empty() ? 0 : (high - low) / static_cast<double>(counts.size()); }
};

// `bins` equal bins over [low, high]; values outside are clamped into the first/last bin. When
// low == high the range is widened by 0.5 on each side so a constant series still has a bin.
Histogram MakeHistogram(const std::vector<double>& values, int bins, double low, double high);

}  // namespace rlj::logs
