// model_config.cc: TransformerConfig validation, parameter count and conversion from/to the config proto.
#include "common/model/model_config.h"

#include <string>

#include "absl/strings/str_cat.h"

namespace rlj {
namespace {

absl::Status Invalid(const char* key, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat(key, ": ", what));
}

}  // namespace

int64_t TransformerConfig::num_parameters() const {
  const int64_t d = d_model;
  const int64_t kv_dim = static_cast<int64_t>(n_kv_heads) * head_dim();
  const int64_t per_layer = 2 * d                     // input_layernorm, post_attention_layernorm
                            + d * d + 2 * d * kv_dim  // q_proj, k_proj, v_proj
                            + d * d                   // o_proj
                            + 3 * d * ffn_hidden;     // gate_proj, up_proj, down_proj
  const int64_t embedding = static_cast<int64_t>(vocab_size) * d;
  return embedding + n_layers * per_layer + d /* model.norm */ + (tie_embeddings ? 0 : embedding);
}

absl::Status TransformerConfig::Validate() const {
  if (vocab_size <= 0) return Invalid("model.vocab_size", "must be > 0");
  if (d_model <= 0) return Invalid("model.d_model", "must be > 0");
  if (n_layers <= 0) return Invalid("model.n_layers", "must be > 0");
  if (n_heads <= 0) return Invalid("model.n_heads", "must be > 0");
  if (d_model % n_heads != 0) {
    return Invalid("model.d_model", absl::StrCat("must be divisible by model.n_heads (", n_heads, ")"));
  }
  if ((d_model / n_heads) % 2 != 0) {
    return Invalid("model.d_model", "head size (d_model / n_heads) must be even for RoPE");
  }
  if (n_kv_heads <= 0 || n_heads % n_kv_heads != 0) {
    return Invalid("model.n_kv_heads", absl::StrCat("must divide model.n_heads (", n_heads, "), got ", n_kv_heads));
  }
  if (ffn_hidden <= 0) return Invalid("model.ffn_hidden", "must be > 0");
  if (max_seq_len <= 1) return Invalid("model.max_seq_len", "must be > 1");
  if (!(rope_theta > 0)) return Invalid("model.rope_theta", "must be > 0");
  if (!(norm_eps > 0)) return Invalid("model.norm_eps", "must be > 0");
  return absl::OkStatus();
}

absl::StatusOr<TransformerConfig> TransformerConfig::FromProto(const v1::ModelConfig& proto) {
  if (proto.architecture() != "llama") {
    return Invalid("model.architecture", absl::StrCat("must be llama, got '", proto.architecture(), "'"));
  }
  TransformerConfig config;
  config.vocab_size = proto.vocab_size();
  config.d_model = proto.d_model();
  config.n_layers = proto.n_layers();
  config.n_heads = proto.n_heads();
  config.n_kv_heads = proto.n_kv_heads() == 0 ? proto.n_heads() : proto.n_kv_heads();
  config.ffn_hidden = proto.ffn_hidden();
  config.max_seq_len = proto.max_seq_len();
  config.rope_theta = proto.rope_theta();
  config.norm_eps = proto.norm_eps();
  config.tie_embeddings = proto.tie_embeddings();
  if (proto.n_kv_heads() < 0) return Invalid("model.n_kv_heads", "must be >= 0 (0 = model.n_heads)");
  if (absl::Status status = config.Validate(); !status.ok()) return status;
  return config;
}

v1::ModelConfig TransformerConfig::ToProto() const {
  v1::ModelConfig proto;
  proto.set_architecture("llama");
  proto.set_vocab_size(vocab_size);
  proto.set_d_model(d_model);
  proto.set_n_layers(n_layers);
  proto.set_n_heads(n_heads);
  proto.set_n_kv_heads(n_kv_heads);
  proto.set_ffn_hidden(ffn_hidden);
  proto.set_max_seq_len(max_seq_len);
  proto.set_rope_theta(rope_theta);
  proto.set_norm_eps(norm_eps);
  proto.set_tie_embeddings(tie_embeddings);
  return proto;
}

}  // namespace rlj
