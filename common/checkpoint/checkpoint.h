// checkpoint.h: a model checkpoint is a Hugging Face-style directory: config.json (LlamaForCausalLM),
// model.safetensors, and rlj_state.json (step, policy version). Written to a temporary directory and
// renamed into place, so a reader never sees half a checkpoint.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "common/checkpoint/safetensors.h"
#include "common/model/model_config.h"
#include "common/model/transformer.h"

namespace rlj {

struct CheckpointState {
  int64_t step = 0;
  int64_t policy_version = 0;
};

struct LoadedCheckpoint {
  TransformerConfig config;
  Transformer model{nullptr};  // float32, on the CPU
  CheckpointState state;
};

absl::Status SaveCheckpoint(const std::string& dir, Transformer& model, const CheckpointState& state);
absl::StatusOr<LoadedCheckpoint> LoadCheckpoint(const std::string& dir);

// Hugging Face config.json text for `config`, and back (llama only, here).
std::string TransformerConfigToHfJson(const TransformerConfig& config);
absl::StatusOr<TransformerConfig> TransformerConfigFromHfJson(std::string_view json, std::string_view source);

// Copies `tensors` into the model's parameters: every parameter must be present with its exact shape, and
// no unknown names may remain; errors name the tensor. Dtypes are converted to the parameter's.
absl::Status LoadNamedTensors(Transformer& model, const NamedTensors& tensors);

// The model's parameters by name (tied embeddings appear once, as model.embed_tokens.weight).
NamedTensors NamedParameters(Transformer& model);

}  // namespace rlj
