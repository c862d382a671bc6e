// cpu_matvec.h: float32 weight matrices times a few activation rows on the CPU (the projections of a decode
// step at a small batch): each weight is read once for up to kMatVecRowBlock rows, with AVX2/FMA when the CPU
// has it, and the output features are split over LibTorch's intra-op threads. No LibTorch types: raw pointers.
#pragma once

#include <cstdint>
#include <span>

namespace rlj {

// Rows multiplied per pass over the weights; more rows take several passes.
inline constexpr int64_t kMatVecRowBlock = 4;

// One product: out[r * out_features + o] = (or += when accumulate) bias[o] + sum_i weight[o * in + i] * x[r * in + i].
struct MatVecJob {
  const float* weight = nullptr;  // [out_features, in], row-major
  const float* bias = nullptr;    // [out_features], or null for none
  float* out = nullptr;           // [rows, out_features]
  int64_t out_features = 0;
  bool accumulate = false;
};

// Runs jobs that share the input rows x [rows, in] as one parallel region over their output features
// (at::parallel_for; a region is split only when each thread gets enough weights to outweigh waking it).
void MatVecRows(std::span<const MatVecJob> jobs, const float* x, int64_t rows, int64_t in);

// The same product for one job on the calling thread only (for callers that parallelise themselves).
void MatVecRowsSerial(const MatVecJob& job, const float* x, int64_t rows, int64_t in);

}  // namespace rlj
