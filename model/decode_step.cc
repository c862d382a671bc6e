// decode_step.cc: the fused CPU decode step: RMSNorm, q/k/v projections with RoPE, the cache write, attention
// over the cached slots, the output projection, SwiGLU and the logits, as loops over raw float32 buffers.
#include "model/decode_step.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "model/cpu_matvec.h"

namespace rlj {
namespace {

// Attention work (key slots x head dims x query heads) below which one thread does all of it.
constexpr int64_t kAttentionWorkPerThread = 1 << 16;

// out[r] = x[r] * rsqrt(mean(x[r]^2) + eps) * weight, for rows [rows, dim].
void RmsNormRows(const float* x, const float* weight, int64_t rows, int64_t dim, double eps, float* out) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* row = x + r * dim;
    double squares = 0;
    for (int64_t i = 0; i < dim; ++i) squares += static_cast<double>(row[i]) * row[i];
    const auto inverse_rms = static_cast<float>(1.0 / std::sqrt(squares / static_cast<double>(dim) + eps));
    for (int64_t i = 0; i < dim; ++i) out[r * dim + i] = row[i] * inverse_rms * weight[i];
  }
}

// x [heads, head_dim] in place: x * cos + rotate_half(x) * signed_sin, rotate_half swapping the halves (its
// sign is in the sin factors).
void ApplyRopeInPlace(float* x, int64_t heads, int64_t head_dim, const float* cos, const float* signed_sin) {
  const int64_t half = head_dim / 2;
  for (int64_t h = 0; h < heads; ++h) {
    float* v = x + h * head_dim;
    for (int64_t i = 0; i < half; ++i) {
      const float first = v[i], second = v[i + half];
      v[i] = first * cos[i] + second * signed_sin[i];
      v[i + half] = second * cos[i + half] + first * signed_sin[i + half];
    }
  }
}

// Attention of one row's query heads that share key/value head `kv_head`: queries [group, head_dim] (RoPE'd
// and scaled), out [group, head_dim]. scores is scratch of group * capacity floats.
void AttendGroup(const DecodeStep& step, const DecodeLayerWeights& layer, int64_t row, int64_t kv_head,
                 const float* queries, int64_t group, float* out, float* scores) {
  const int64_t head_dim = step.head_dim;
  const int64_t base = (row * step.n_kv_heads + kv_head) * step.capacity * head_dim;
  const float* keys = layer.keys + base + step.first_key * head_dim;
  const float* values = layer.values + base + step.first_key * head_dim;
  const int64_t num_keys = step.slot + 1 - step.first_key;
  // scores[g * num_keys + j] = q_g . key_j: the keys as the rows of a matrix, the group's queries as its rows.
  MatVecJob job;
  job.weight = keys;
  job.out = scores;
  job.out_features = num_keys;
  MatVecRowsSerial(job, queries, group, head_dim);
  const bool* mask = step.key_mask != nullptr ? step.key_mask + row * step.key_mask_stride + step.first_key : nullptr;
  for (int64_t g = 0; g < group; ++g) {
    float* row_scores = scores + g * num_keys;
    float largest = -std::numeric_limits<float>::infinity();
    for (int64_t j = 0; j < num_keys; ++j) {
      if (mask != nullptr && !mask[j] && j != num_keys - 1) {
        row_scores[j] = -std::numeric_limits<float>::infinity();
      } else {
        largest = std::max(largest, row_scores[j]);
      }
    }
    float total = 0;
    for (int64_t j = 0; j < num_keys; ++j) {
      row_scores[j] = std::exp(row_scores[j] - largest);  // exp(-inf) = 0 for masked keys
      total += row_scores[j];
    }
    const float scale = 1.0f / total;
    float* mixed = out + g * head_dim;
    std::fill(mixed, mixed + head_dim, 0.0f);
    for (int64_t j = 0; j < num_keys; ++j) {
      const float weight = row_scores[j] * scale;
      if (weight == 0) continue;
      const float* value = values + j * head_dim;
      for (int64_t i = 0; i < head_dim; ++i) mixed[i] += weight * value[i];
    }
  }
}

}  // namespace

void RunDecodeStep(const DecodeStep& step) {
  const int64_t rows = step.rows, d = step.d_model, head_dim = step.head_dim;
  const int64_t q_width = step.n_heads * head_dim, kv_width = step.n_kv_heads * head_dim;
  const int64_t group = step.n_heads / step.n_kv_heads;
  const int64_t num_keys = step.slot + 1 - step.first_key;

  // Scratch: the residual stream, its normed copy, q/k/v, the attention output, gate and up.
  std::vector<float> hidden(rows * d), normed(rows * d), q(rows * q_width), k(rows * kv_width), v(rows * kv_width),
      mixed(rows * q_width), gate(rows * step.ffn_hidden), up(rows * step.ffn_hidden);

  for (int64_t r = 0; r < rows; ++r) {
    std::memcpy(hidden.data() + r * d, step.embed + step.tokens[r] * d, sizeof(float) * d);
  }
  for (const DecodeLayerWeights& layer : step.layers) {
    RmsNormRows(hidden.data(), layer.input_norm, rows, d, step.norm_eps, normed.data());
    const MatVecJob qkv[] = {{layer.q, layer.q_bias, q.data(), q_width, false},
                             {layer.k, layer.k_bias, k.data(), kv_width, false},
                             {layer.v, layer.v_bias, v.data(), kv_width, false}};
    MatVecRows(qkv, normed.data(), rows, d);
    for (int64_t r = 0; r < rows; ++r) {
      const float* rope = step.rope + r * 4 * head_dim;
      ApplyRopeInPlace(q.data() + r * q_width, step.n_heads, head_dim, rope + 2 * head_dim, rope + 3 * head_dim);
      ApplyRopeInPlace(k.data() + r * kv_width, step.n_kv_heads, head_dim, rope, rope + head_dim);
      for (int64_t h = 0; h < step.n_kv_heads; ++h) {
        const int64_t at = ((r * step.n_kv_heads + h) * step.capacity + step.slot) * head_dim;
        std::memcpy(layer.keys + at, k.data() + r * kv_width + h * head_dim, sizeof(float) * head_dim);
        std::memcpy(layer.values + at, v.data() + r * kv_width + h * head_dim, sizeof(float) * head_dim);
      }
    }
    // One task per (row, key/value head): its query group attends over the row's cached slots.
    const int64_t tasks = rows * step.n_kv_heads;
    const int64_t work_per_task = std::max<int64_t>(1, num_keys * head_dim * group);
    at::parallel_for(0, tasks, std::max<int64_t>(1, kAttentionWorkPerThread / work_per_task),
                     [&](int64_t begin, int64_t end) {
                       std::vector<float> scores(group * num_keys);
                       for (int64_t task = begin; task < end; ++task) {
                         const int64_t r = task / step.n_kv_heads, h = task % step.n_kv_heads;
                         const int64_t offset = r * q_width + h * group * head_dim;
                         AttendGroup(step, layer, r, h, q.data() + offset, group, mixed.data() + offset, scores.data());
                       }
                     });
    const MatVecJob output{layer.o, layer.o_bias, hidden.data(), d, /*accumulate=*/true};
    MatVecRows({&output, 1}, mixed.data(), rows, q_width);

    RmsNormRows(hidden.data(), layer.post_attention_norm, rows, d, step.norm_eps, normed.data());
    const MatVecJob gate_up[] = {{layer.gate, nullptr, gate.data(), step.ffn_hidden, false},
                                 {layer.up, nullptr, up.data(), step.ffn_hidden, false}};
    MatVecRows(gate_up, normed.data(), rows, d);
    for (size_t i = 0; i < gate.size(); ++i) gate[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];  // silu * up
    const MatVecJob down{layer.down, nullptr, hidden.data(), d, /*accumulate=*/true};
    MatVecRows({&down, 1}, gate.data(), rows, step.ffn_hidden);
  }
  RmsNormRows(hidden.data(), step.final_norm, rows, d, step.norm_eps, normed.data());
  const MatVecJob logits{step.lm_head, nullptr, step.logits, step.vocab_size, false};
  MatVecRows({&logits, 1}, normed.data(), rows, d);
}

}  // namespace rlj
