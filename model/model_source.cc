// model_source.cc: LoadStartingModel: init checkpoint (checked against the explicitly set model.* keys) or a
// seeded random init.
#include "model/model_source.h"

#include <ATen/Context.h>

#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/log.h"
#include "common/status.h"
#include "model/tensor/torch_util.h"

namespace rlj {

std::string ExplicitModelKeyMismatches(const v1::ModelConfig& m, const TransformerConfig& c) {
  std::vector<std::string> differences;
  const auto compare = [&](bool set, const char* key, const char* hf_key, auto configured, auto actual) {
    if (set && configured != actual) {
      differences.push_back(absl::StrCat("model.", key, " is ", configured, " in the config but ", actual,
                                         " in config.json (", hf_key, ")"));
    }
  };
  compare(m.has_architecture(), "architecture", "model_type", v1::ModelConfig::Architecture_Name(m.architecture()),
          c.architecture);
  compare(m.has_vocab_size(), "vocab_size", "vocab_size", m.vocab_size(), c.vocab_size);
  compare(m.has_d_model(), "d_model", "hidden_size", m.d_model(), c.d_model);
  compare(m.has_n_layers(), "n_layers", "num_hidden_layers", m.n_layers(), c.n_layers);
  compare(m.has_n_heads(), "n_heads", "num_attention_heads", m.n_heads(), c.n_heads);
  if (m.has_n_kv_heads()) {  // 0 = n_heads (the config's own, else the checkpoint's)
    const int configured = m.n_kv_heads() != 0 ? m.n_kv_heads() : (m.has_n_heads() ? m.n_heads() : c.n_heads);
    compare(true, "n_kv_heads", "num_key_value_heads", configured, c.n_kv_heads);
  }
  compare(m.has_ffn_hidden(), "ffn_hidden", "intermediate_size", m.ffn_hidden(), c.ffn_hidden);
  compare(m.has_max_seq_len(), "max_seq_len", "max_position_embeddings", m.max_seq_len(), c.max_seq_len);
  compare(m.has_rope_theta(), "rope_theta", "rope_theta", m.rope_theta(), c.rope_theta);
  compare(m.has_norm_eps(), "norm_eps", "rms_norm_eps", m.norm_eps(), c.norm_eps);
  compare(m.has_tie_embeddings(), "tie_embeddings", "tie_word_embeddings", m.tie_embeddings(), c.tie_embeddings);
  compare(m.has_attention_bias(), "attention_bias", "attention_bias", m.attention_bias(), c.attention_bias);
  compare(m.has_sliding_window(), "sliding_window", "sliding_window", m.sliding_window(), c.sliding_window);
  if (m.has_rope_scaling()) {
    const v1::RopeScalingConfig& r = m.rope_scaling();
    const RopeScaling& s = c.rope_scaling;
    compare(r.has_type(), "rope_scaling.type", "rope_scaling.rope_type", v1::RopeScalingConfig::Type_Name(r.type()),
            s.type);
    compare(r.has_factor(), "rope_scaling.factor", "rope_scaling.factor", r.factor(), s.factor);
    compare(r.has_low_freq_factor(), "rope_scaling.low_freq_factor", "rope_scaling.low_freq_factor",
            r.low_freq_factor(), s.low_freq_factor);
    compare(r.has_high_freq_factor(), "rope_scaling.high_freq_factor", "rope_scaling.high_freq_factor",
            r.high_freq_factor(), s.high_freq_factor);
    compare(r.has_original_max_position_embeddings(), "rope_scaling.original_max_position_embeddings",
            "rope_scaling.original_max_position_embeddings", r.original_max_position_embeddings(),
            s.original_max_position_embeddings);
  }
  return absl::StrJoin(differences, "; ");
}

absl::Status LoadStartingModel(const v1::RunConfig& config, Transformer* model, StartingModelInfo* info) {
  const std::string& init = config.model().init_checkpoint();
  if (!init.empty()) {
    RLJ_ASSIGN_OR_RETURN(LoadedCheckpoint checkpoint, LoadCheckpoint(init));
    if (const std::string mismatches = ExplicitModelKeyMismatches(config.model(), checkpoint.config);
        !mismatches.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("model.init_checkpoint ", init, ": ", mismatches));
    }
    RLJ_RETURN_IF_ERROR(TorchCall("seeding", [&] { at::manual_seed(config.seed()); }));
    log::Info("student from {}: {} {} parameters (its step {})", init, checkpoint.config.architecture,
              checkpoint.config.num_parameters(), checkpoint.state.step);
    *model = checkpoint.model;
    if (info != nullptr) *info = StartingModelInfo{init, checkpoint.state};
    return absl::OkStatus();
  }
  RLJ_ASSIGN_OR_RETURN(const TransformerConfig shape, TransformerConfig::FromProto(config.model()));
  RLJ_RETURN_IF_ERROR(TorchCall("building the initial model", [&] {
    at::manual_seed(config.seed());
    *model = Transformer(shape);
  }));
  if (info != nullptr) *info = StartingModelInfo{};
  return absl::OkStatus();
}

}  // namespace rlj
