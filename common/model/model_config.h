// model_config.h: the student's architecture as a plain struct (no LibTorch), converted from and to
// the config schema's ModelConfig.
#pragma once

#include <cstdint>

#include "absl/status/statusor.h"
#include "rlj/v1/config.pb.h"

namespace rlj {

struct TransformerConfig {
  int vocab_size = 259;
  int d_model = 128;
  int n_layers = 4;
  int n_heads = 4;
  int n_kv_heads = 4;  // grouped-query attention when < n_heads
  int ffn_hidden = 384;
  int max_seq_len = 256;
  double rope_theta = 10000.0;
  double norm_eps = 1e-5;
  bool tie_embeddings = true;

  int head_dim() const { return d_model / n_heads; }
  int64_t num_parameters() const;

  // The rules of FromProto on a filled-in struct (n_kv_heads must already be resolved); errors name the
  // config key ("model.d_model: ...").
  absl::Status Validate() const;

  // Checks the same rules as the config validator (divisibility, positivity).
  static absl::StatusOr<TransformerConfig> FromProto(const v1::ModelConfig& proto);
  v1::ModelConfig ToProto() const;  // init_checkpoint left unset
};

}  // namespace rlj
