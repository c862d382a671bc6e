// statistics_test.cc: mean, spread, quantiles, correlations and histograms against hand-computed values.
#include "logs/statistics.h"

#include <gtest/gtest.h>

#include <cmath>

namespace rlj::logs {
namespace {

TEST(Statistics, MeanStdDevAndQuantiles) {
  const std::vector<double> v = {2, 4, 4, 4, 5, 5, 7, 9};
  EXPECT_DOUBLE_EQ(Mean(v), 5.0);
  EXPECT_DOUBLE_EQ(StdDev(v), 2.0);  // the textbook population example
  EXPECT_DOUBLE_EQ(Quantile(v, 0), 2);
  EXPECT_DOUBLE_EQ(Quantile(v, 1), 9);
  EXPECT_DOUBLE_EQ(Quantile(v, 0.5), 4.5);           // position 3.5 between 4 and 5
  EXPECT_DOUBLE_EQ(Quantile(v, 0.1), 3.4);           // position 0.7: 2 + 0.7 * (4 - 2)
  EXPECT_DOUBLE_EQ(Quantile({3, 1, 2}, 0.25), 1.5);  // unsorted input; position 0.5
  EXPECT_TRUE(std::isnan(Mean({})));
  EXPECT_TRUE(std::isnan(Quantile({}, 0.5)));
  EXPECT_DOUBLE_EQ(StdDev({7}), 0);
}

TEST(Statistics, PearsonAndSpearman) {
  EXPECT_DOUBLE_EQ(Pearson({1, 2, 3}, {2, 4, 6}), 1.0);
  EXPECT_DOUBLE_EQ(Pearson({1, 2, 3}, {3, 2, 1}), -1.0);
  // x = 1..4, y = 1,3,2,4: means 2.5; sxy = 1.5*1.5 + 0.5*(-0.5)... = 2.25 - 0.25 - 0.25 + 2.25 = 4; sxx = syy = 5.
  EXPECT_DOUBLE_EQ(Pearson({1, 2, 3, 4}, {1, 3, 2, 4}), 0.8);
  // Monotone but not linear: Spearman 1, Pearson below 1.
  EXPECT_DOUBLE_EQ(Spearman({1, 2, 3, 4}, {1, 10, 100, 1000}), 1.0);
  EXPECT_LT(Pearson({1, 2, 3, 4}, {1, 10, 100, 1000}), 0.9);
  EXPECT_TRUE(std::isnan(Pearson({1, 1, 1}, {1, 2, 3})));  // constant side
  EXPECT_TRUE(std::isnan(Spearman({1}, {2})));
}

TEST(Statistics, AverageRanksShareTies) {
  EXPECT_EQ(AverageRanks({10, 20, 20, 30}), (std::vector<double>{1, 2.5, 2.5, 4}));
  EXPECT_EQ(AverageRanks({5, 5, 5}), (std::vector<double>{2, 2, 2}));
  // Ties: x ranks 1, 2.5, 2.5, 4; y ranks 1, 2, 3, 4. Pearson of those: sxy = 4.5, sxx = 4.5, syy = 5.
  EXPECT_NEAR(Spearman({1, 2, 2, 3}, {1, 2, 3, 4}), 4.5 / std::sqrt(4.5 * 5), 1e-12);
}

TEST(Statistics, HistogramBinsAndClamps) {
  const Histogram h = MakeHistogram({0, 0.1, 0.5, 0.99, 1.0, 2.0, -1.0}, 4, 0, 1);
  EXPECT_DOUBLE_EQ(h.bin_width(), 0.25);
  // [0,.25): 0, 0.1, -1 (clamped) | [.25,.5): - | [.5,.75): 0.5 | [.75,1]: 0.99, 1.0, 2.0 (clamped)
  EXPECT_EQ(h.counts, (std::vector<int64_t>{3, 0, 1, 3}));
  const Histogram constant = MakeHistogram({3, 3}, 2, 3, 3);
  EXPECT_DOUBLE_EQ(constant.low, 2.5);
  EXPECT_DOUBLE_EQ(constant.high, 3.5);
  EXPECT_EQ(constant.counts, (std::vector<int64_t>{0, 2}));
}

}  // namespace
}  // namespace rlj::logs
