// cpu_matvec_test.cc: MatVecRows against LibTorch's matmul: every row count up to two row blocks, input widths
// with and without an 8-float tail, biases, accumulation, several jobs in one region, one and two threads.
#include "model/cpu_matvec.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <vector>

#include "model_test_util.h"

namespace rlj {
namespace {

using ::rlj::testing::MaxAbsDiff;

struct ThreadCount {
  explicit ThreadCount(int threads) : saved(torch::get_num_threads()) { torch::set_num_threads(threads); }
  ~ThreadCount() { torch::set_num_threads(saved); }
  int saved;
};

TEST(CpuMatVec, EqualsMatmulForEveryRowCountWidthAndThreadCount) {
  torch::manual_seed(5);
  for (const int threads : {1, 2}) {
    ThreadCount thread_count(threads);
    for (const int64_t in : {8, 37, 256}) {
      // 1100 features x 256 inputs x 2 or more rows is past the per-thread share: two threads really split it.
      for (const int64_t out : {1, 5, 1100}) {
        for (int64_t rows = 1; rows <= 2 * kMatVecRowBlock + 1; ++rows) {
          const torch::Tensor weight = torch::randn({out, in});
          const torch::Tensor bias = torch::randn({out});
          const torch::Tensor x = torch::randn({rows, in});
          torch::Tensor result = torch::full({rows, out}, 1e6);  // overwritten, not added to
          const MatVecJob job{weight.data_ptr<float>(), bias.data_ptr<float>(), result.data_ptr<float>(), out, false};
          MatVecRows({&job, 1}, x.data_ptr<float>(), rows, in);
          const torch::Tensor expected = torch::addmm(bias, x, weight.t());
          EXPECT_LT(MaxAbsDiff(result, expected), 1e-4 * std::sqrt(static_cast<double>(in)))
              << "threads " << threads << " in " << in << " out " << out << " rows " << rows;
          torch::Tensor serial = torch::zeros({rows, out});
          const MatVecJob serial_job{weight.data_ptr<float>(), nullptr, serial.data_ptr<float>(), out, false};
          MatVecRowsSerial(serial_job, x.data_ptr<float>(), rows, in);
          EXPECT_LT(MaxAbsDiff(serial, torch::mm(x, weight.t())), 1e-4 * std::sqrt(static_cast<double>(in)));
        }
      }
    }
  }
}

TEST(CpuMatVec, SeveralJobsShareTheInputsAndAccumulateWhenAsked) {
  torch::manual_seed(6);
  ThreadCount thread_count(2);
  const int64_t in = 96, rows = 3;
  const torch::Tensor x = torch::randn({rows, in});
  const torch::Tensor w1 = torch::randn({700, in}), w2 = torch::randn({3, in}), w3 = torch::randn({500, in});
  const torch::Tensor start = torch::randn({rows, 500});
  torch::Tensor out1 = torch::empty({rows, 700}), out2 = torch::empty({rows, 3}), out3 = start.clone();
  const MatVecJob jobs[] = {{w1.data_ptr<float>(), nullptr, out1.data_ptr<float>(), 700, false},
                            {w2.data_ptr<float>(), nullptr, out2.data_ptr<float>(), 3, false},
                            {w3.data_ptr<float>(), nullptr, out3.data_ptr<float>(), 500, /*accumulate=*/true}};
  MatVecRows(jobs, x.data_ptr<float>(), rows, in);
  EXPECT_LT(MaxAbsDiff(out1, torch::mm(x, w1.t())), 1e-3);
  EXPECT_LT(MaxAbsDiff(out2, torch::mm(x, w2.t())), 1e-3);
  EXPECT_LT(MaxAbsDiff(out3, start + torch::mm(x, w3.t())), 1e-3);
}

}  // namespace
}  // namespace rlj
