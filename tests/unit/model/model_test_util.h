// model_test_util.h: small models and tensor comparisons shared by the model tests.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <vector>

#include "model/model_config.h"
#include "model/transformer.h"

namespace rlj::testing {

// A small Llama: 2 layers, d_model 32, 4 heads, the byte tokenizer's vocabulary.
inline TransformerConfig SmallConfig(int n_kv_heads = 2, bool tie_embeddings = true) {
  TransformerConfig config;
  config.vocab_size = 259;
  config.d_model = 32;
  config.n_layers = 2;
  config.n_heads = 4;
  config.n_kv_heads = n_kv_heads;
  config.ffn_hidden = 64;
  config.max_seq_len = 64;
  config.tie_embeddings = tie_embeddings;
  return config;
}

// A model seeded with `seed`; matrices redrawn from normal(0, matrix_std) when it is not the default
// 0.02, so the logits are far from uniform (argmax decisions then have wide margins) and norm weights
// drawn from [0.5, 1.5] so they are exercised.
inline Transformer MakeModel(const TransformerConfig& config, uint64_t seed, double matrix_std = 0.02) {
  torch::manual_seed(seed);
  Transformer model(config);
  if (matrix_std != 0.02) {
    torch::NoGradGuard no_grad;
    for (auto& parameter : model->parameters()) {
      if (parameter.dim() == 2) {
        parameter.normal_(0.0, matrix_std);
      } else {
        parameter.uniform_(0.5, 1.5);
      }
    }
  }
  return model;
}

inline double MaxAbsDiff(const torch::Tensor& a, const torch::Tensor& b) {
  return (a.to(torch::kDouble) - b.to(torch::kDouble)).abs().max().item<double>();
}

inline torch::Tensor TokensTensor(const std::vector<std::vector<int64_t>>& rows) {
  const int64_t width = static_cast<int64_t>(rows.at(0).size());
  torch::Tensor tokens = torch::empty({static_cast<int64_t>(rows.size()), width}, torch::kLong);
  for (size_t r = 0; r < rows.size(); ++r) {
    for (int64_t i = 0; i < width; ++i) tokens[r][i] = rows[r].at(i);
  }
  return tokens;
}

}  // namespace rlj::testing
