// model_config.h: the student's architecture as a plain struct (no LibTorch), converted from and to
// the config schema's ModelConfig.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "rlj/v1/config.pb.h"

namespace rlj {

// RoPE frequency scaling (config.json's rope_scaling): none, linear (positions / factor) or llama3.
struct RopeScaling {
  std::string type = "none";
  double factor = 1.0;
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  int original_max_position_embeddings = 8192;
};

struct TransformerConfig {
  std::string architecture = "llama";  // llama | qwen2 | mistral (Hugging Face's model_type)
  int vocab_size = 259;
  int d_model = 128;
  int n_layers = 4;
  int n_heads = 4;
  int n_kv_heads = 4;  // grouped-query attention when < n_heads
  int ffn_hidden = 384;
  int max_seq_len = 256;  // max_position_embeddings
  double rope_theta = 10000.0;
  double norm_eps = 1e-5;
  bool tie_embeddings = true;
  bool attention_bias = false;  // llama: biases on q/k/v/o
  int sliding_window = 0;       // a query sees itself and the previous sliding_window - 1 positions; 0 = all
  RopeScaling rope_scaling;

  int head_dim() const { return d_model / n_heads; }
  // Qwen2 always has q/k/v biases; Llama's attention_bias puts them on q/k/v and o.
  bool qkv_bias() const { return architecture == "qwen2" || attention_bias; }
  bool o_proj_bias() const { return architecture != "qwen2" && attention_bias; }
  int64_t num_parameters() const;

  // RoPE inverse frequencies [head_dim / 2] (theta^(-2i/head_dim)), with rope_scaling applied.
  std::vector<double> RopeInverseFrequencies() const;

  // The rules of FromProto on a filled-in struct (n_kv_heads must already be resolved); errors name the
  // config key ("model.d_model: ...").
  absl::Status Validate() const;

  // Checks the same rules as the config validator (divisibility, positivity).
  static absl::StatusOr<TransformerConfig> FromProto(const v1::ModelConfig& proto);
  v1::ModelConfig ToProto() const;  // init_checkpoint left unset
};

}  // namespace rlj
