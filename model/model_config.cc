// model_config.cc: TransformerConfig validation, parameter count, RoPE frequencies and conversion from/to the
// config proto.
#include "model/model_config.h"

#include <cmath>
#include <numbers>
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
  const int64_t q_dim = static_cast<int64_t>(n_heads) * head_dim();
  const int64_t kv_dim = static_cast<int64_t>(n_kv_heads) * head_dim();
  const int64_t per_layer = 2 * d                         // input_layernorm, post_attention_layernorm
                            + d * q_dim + 2 * d * kv_dim  // q_proj, k_proj, v_proj
                            + (qkv_bias() ? q_dim + 2 * kv_dim : 0) + q_dim * d + (o_proj_bias() ? d : 0)  // o_proj
                            + 3 * d * ffn_hidden;  // gate_proj, up_proj, down_proj
  const int64_t embedding = static_cast<int64_t>(vocab_size) * d;
  return embedding + n_layers * per_layer + d /* model.norm */ + (tie_embeddings ? 0 : embedding);
}

std::vector<double> TransformerConfig::RopeInverseFrequencies() const {
  const int half = head_dim() / 2;
  std::vector<double> inv_freq(static_cast<size_t>(std::max(half, 0)));
  for (int i = 0; i < half; ++i) {
    inv_freq[static_cast<size_t>(i)] = std::pow(rope_theta, -2.0 * i / static_cast<double>(head_dim()));
  }
  if (rope_scaling.type == "linear") {
    for (double& f : inv_freq) f /= rope_scaling.factor;
  } else if (rope_scaling.type == "llama3") {
    // Hugging Face's _compute_llama3_parameters: long wavelengths are divided by factor, short ones kept,
    // those between interpolated.
    const double old_context = rope_scaling.original_max_position_embeddings;
    const double low_freq_wavelen = old_context / rope_scaling.low_freq_factor;
    const double high_freq_wavelen = old_context / rope_scaling.high_freq_factor;
    for (double& f : inv_freq) {
      const double wavelen = 2 * std::numbers::pi / f;
      if (wavelen > low_freq_wavelen) {
        f /= rope_scaling.factor;
      } else if (!(wavelen < high_freq_wavelen)) {
        const double smooth = (old_context / wavelen - rope_scaling.low_freq_factor) /
                              (rope_scaling.high_freq_factor - rope_scaling.low_freq_factor);
        f = (1 - smooth) * f / rope_scaling.factor + smooth * f;
      }
    }
  }
  return inv_freq;
}

absl::Status TransformerConfig::Validate() const {
  if (architecture != "llama" && architecture != "qwen2" && architecture != "mistral") {
    return Invalid("model.architecture", absl::StrCat("must be llama, qwen2 or mistral, got '", architecture, "'"));
  }
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
  if (sliding_window < 0) return Invalid("model.sliding_window", "must be >= 0 (0 = unlimited)");
  if (attention_bias && architecture != "llama") {
    return Invalid("model.attention_bias", "is a llama option (qwen2 always has q/k/v biases, mistral none)");
  }
  const RopeScaling& s = rope_scaling;
  if (s.type != "none" && s.type != "linear" && s.type != "llama3") {
    return Invalid("model.rope_scaling.type", absl::StrCat("must be none, linear or llama3, got '", s.type, "'"));
  }
  if (!(s.factor >= 1)) return Invalid("model.rope_scaling.factor", "must be >= 1");
  if (s.type == "llama3") {
    if (!(s.low_freq_factor > 0)) return Invalid("model.rope_scaling.low_freq_factor", "must be > 0");
    if (!(s.high_freq_factor > s.low_freq_factor)) {
      return Invalid("model.rope_scaling.high_freq_factor", "must be > model.rope_scaling.low_freq_factor");
    }
    if (s.original_max_position_embeddings <= 0) {
      return Invalid("model.rope_scaling.original_max_position_embeddings", "must be > 0");
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<TransformerConfig> TransformerConfig::FromProto(const v1::ModelConfig& proto) {
  TransformerConfig config;
  config.architecture = v1::ModelConfig::Architecture_Name(proto.architecture());
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
  config.attention_bias = proto.attention_bias();
  config.sliding_window = proto.sliding_window();
  const v1::RopeScalingConfig& scaling = proto.rope_scaling();
  config.rope_scaling.type = v1::RopeScalingConfig::Type_Name(scaling.type());
  config.rope_scaling.factor = scaling.factor();
  config.rope_scaling.low_freq_factor = scaling.low_freq_factor();
  config.rope_scaling.high_freq_factor = scaling.high_freq_factor();
  config.rope_scaling.original_max_position_embeddings = scaling.original_max_position_embeddings();
  if (proto.n_kv_heads() < 0) return Invalid("model.n_kv_heads", "must be >= 0 (0 = model.n_heads)");
  if (absl::Status status = config.Validate(); !status.ok()) return status;
  return config;
}

v1::ModelConfig TransformerConfig::ToProto() const {
  v1::ModelConfig proto;
  // Validate() admits only the schema's names.
  v1::ModelConfig::Architecture architecture_value = v1::ModelConfig::llama;
  if (v1::ModelConfig::Architecture_Parse(architecture, &architecture_value))
    proto.set_architecture(architecture_value);
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
  if (attention_bias) proto.set_attention_bias(true);
  if (sliding_window != 0) proto.set_sliding_window(sliding_window);
  if (rope_scaling.type != "none") {
    v1::RopeScalingConfig* scaling = proto.mutable_rope_scaling();
    v1::RopeScalingConfig::Type type = v1::RopeScalingConfig::none;
    if (v1::RopeScalingConfig::Type_Parse(rope_scaling.type, &type)) scaling->set_type(type);
    scaling->set_factor(rope_scaling.factor);
    scaling->set_low_freq_factor(rope_scaling.low_freq_factor);
    scaling->set_high_freq_factor(rope_scaling.high_freq_factor);
    scaling->set_original_max_position_embeddings(rope_scaling.original_max_position_embeddings);
  }
  return proto;
}

}  // namespace rlj
