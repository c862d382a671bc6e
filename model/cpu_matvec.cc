// cpu_matvec.cc: the weight-times-rows kernels: an AVX2/FMA one (chosen at run time) and a portable one, and
// the split of the output features over threads.
#include "model/cpu_matvec.h"

#include <ATen/Parallel.h>

#include <algorithm>

#if defined(__x86_64__)
#include <immintrin.h>
#define RLJ_MATVEC_X86 1
#endif

namespace rlj {
namespace {

// A thread is woken for a share of at least this many multiply-adds (weights x rows; ~40 us of one core's work
// at one row, when reading 2 MB of weights): below that the wake-up and the join (a futex round trip with
// OMP_WAIT_POLICY=PASSIVE, and a second vCPU that is not always scheduled at once) cost more than they save.
constexpr int64_t kMultiplyAddsPerThread = 1 << 19;

inline void Store(const MatVecJob& job, int64_t row, int64_t feature, float sum) {
  if (job.bias != nullptr) sum += job.bias[feature];
  float& target = job.out[row * job.out_features + feature];
  target = job.accumulate ? target + sum : sum;
}

// Portable: R rows at a time, one output feature per pass.
template <int R>
void KernelPortable(const MatVecJob& job, const float* x, int64_t in, int64_t begin, int64_t end) {
  for (int64_t o = begin; o < end; ++o) {
    const float* w = job.weight + o * in;
    float sums[R] = {};
    for (int64_t i = 0; i < in; ++i) {
      for (int r = 0; r < R; ++r) sums[r] += w[i] * x[r * in + i];
    }
    for (int r = 0; r < R; ++r) Store(job, r, o, sums[r]);
  }
}

#ifdef RLJ_MATVEC_X86
__attribute__((target("avx2,fma"))) inline float HorizontalSum(__m256 v) {
  const __m128 halves = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  const __m128 pairs = _mm_add_ps(halves, _mm_movehl_ps(halves, halves));
  return _mm_cvtss_f32(_mm_add_ss(pairs, _mm_shuffle_ps(pairs, pairs, 1)));
}

// F output features x R rows per pass: F * R independent accumulators keep the FMA units busy while each
// 8-float slice of a weight row is loaded once for all R rows.
template <int R, int F>
__attribute__((target("avx2,fma"))) void PassAvx2(const MatVecJob& job, const float* x, int64_t in, int64_t o) {
  const int64_t vector_end = in - in % 8;
  __m256 acc[F][R];
#pragma GCC unroll 8
  for (int f = 0; f < F; ++f) {
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) acc[f][r] = _mm256_setzero_ps();
  }
  for (int64_t i = 0; i < vector_end; i += 8) {
    __m256 xs[R];
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) xs[r] = _mm256_loadu_ps(x + r * in + i);
#pragma GCC unroll 8
    for (int f = 0; f < F; ++f) {
      const __m256 w = _mm256_loadu_ps(job.weight + (o + f) * in + i);
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) acc[f][r] = _mm256_fmadd_ps(w, xs[r], acc[f][r]);
    }
  }
  for (int f = 0; f < F; ++f) {
    const float* w = job.weight + (o + f) * in;
    for (int r = 0; r < R; ++r) {
      float sum = HorizontalSum(acc[f][r]);
      for (int64_t i = vector_end; i < in; ++i) sum += w[i] * x[r * in + i];
      Store(job, r, o + f, sum);
    }
  }
}

template <int R>
__attribute__((target("avx2,fma"))) void KernelAvx2(const MatVecJob& job, const float* x, int64_t in, int64_t begin,
                                                    int64_t end) {
  constexpr int kFeatures = R <= 2 ? 4 : 2;
  int64_t o = begin;
  for (; o + kFeatures <= end; o += kFeatures) PassAvx2<R, kFeatures>(job, x, in, o);
  for (; o < end; ++o) PassAvx2<R, 1>(job, x, in, o);
}

bool CpuHasAvx2Fma() {
  static const bool has = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return has;
}
#endif

template <int R>
void Kernel(const MatVecJob& job, const float* x, int64_t in, int64_t begin, int64_t end) {
#ifdef RLJ_MATVEC_X86
  if (CpuHasAvx2Fma()) return KernelAvx2<R>(job, x, in, begin, end);
#endif
  KernelPortable<R>(job, x, in, begin, end);
}

// Output features [begin, end) of one job, for all rows, a block of rows per pass over the weights.
void RunRange(const MatVecJob& job, const float* x, int64_t rows, int64_t in, int64_t begin, int64_t end) {
  for (int64_t first = 0; first < rows; first += kMatVecRowBlock) {
    MatVecJob block = job;
    block.out = job.out + first * job.out_features;
    const float* block_x = x + first * in;
    switch (std::min(rows - first, kMatVecRowBlock)) {
      case 1:
        Kernel<1>(block, block_x, in, begin, end);
        break;
      case 2:
        Kernel<2>(block, block_x, in, begin, end);
        break;
      case 3:
        Kernel<3>(block, block_x, in, begin, end);
        break;
      default:
        Kernel<4>(block, block_x, in, begin, end);
        break;
    }
  }
}

}  // namespace

void MatVecRowsSerial(const MatVecJob& job, const float* x, int64_t rows, int64_t in) {
  RunRange(job, x, rows, in, 0, job.out_features);
}

void MatVecRows(std::span<const MatVecJob> jobs, const float* x, int64_t rows, int64_t in) {
  int64_t total = 0;
  for (const MatVecJob& job : jobs) total += job.out_features;
  const int64_t grain = std::max<int64_t>(1, kMultiplyAddsPerThread / std::max<int64_t>(1, in * rows));
  // The jobs' features laid end to end; each thread takes a contiguous range of them.
  at::parallel_for(0, total, grain, [&](int64_t begin, int64_t end) {
    int64_t offset = 0;
    for (const MatVecJob& job : jobs) {
      const int64_t lo = std::max(begin, offset), hi = std::min(end, offset + job.out_features);
      if (lo < hi) RunRange(job, x, rows, in, lo - offset, hi - offset);
      offset += job.out_features;
    }
  });
}

}  // namespace rlj
