// checkpoint.h: a model checkpoint is a Hugging Face-style directory: config.json (LlamaForCausalLM,
// Qwen2ForCausalLM or MistralForCausalLM), model.safetensors (or shards named by model.safetensors.index.json
// when loading), the tokenizer files of the model it descends from, and rlj_state.json (step, policy
// version). Written to a temporary directory and renamed into place, so a reader never sees half a checkpoint.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "model/checkpoint/safetensors.h"
#include "model/model_config.h"
#include "model/transformer.h"

namespace rlj {

struct CheckpointState {
  int64_t step = 0;
  int64_t policy_version = 0;
};

struct LoadedCheckpoint {
  TransformerConfig config;
  Transformer model{nullptr};  // float32, on the CPU; its source_dir() is the checkpoint directory
  CheckpointState state;
};

// The tokenizer files a checkpoint carries along, when its model's source directory has them.
const std::vector<std::string>& TokenizerFileNames();

// Writes the model (float32) and state; copies TokenizerFileNames() from model->source_dir() when it has them.
absl::Status SaveCheckpoint(const std::string& dir, Transformer& model, const CheckpointState& state);
// Reads config.json once, maps every weight file once (single or sharded) and copies the tensors into a new
// float32 model, converting F32/BF16/F16.
absl::StatusOr<LoadedCheckpoint> LoadCheckpoint(const std::string& dir);

// Hugging Face config.json text for `config`, and back. The parser accepts model_type llama, qwen2 and mistral
// and refuses, naming the field, what would otherwise give a wrong model (another model_type or hidden_act,
// mlp_bias, an unknown rope_scaling, a head_dim that is not hidden_size / num_attention_heads, Qwen2's sliding
// window on only some layers).
struct HfConfigExtras {
  std::string torch_dtype = "float32";
  int bos_token_id = -1;           // written when >= 0
  std::vector<int> eos_token_ids;  // written when not empty (one id as a number, several as a list)
};
std::string TransformerConfigToHfJson(const TransformerConfig& config, const HfConfigExtras& extras = {});
absl::StatusOr<TransformerConfig> TransformerConfigFromHfJson(std::string_view json, std::string_view source);

// The weight tensors of a checkpoint directory: model.safetensors, or the shards model.safetensors.index.json
// names (each tensor must be in the shard its weight_map names; a tensor in two shards is an error). Views of
// the mapped files (see ReadSafetensors).
absl::StatusOr<NamedTensors> ReadCheckpointTensors(const std::string& dir);

// Copies `tensors` into the model's parameters: every parameter must be present with its exact shape, and
// no unknown names may remain; errors name the tensor. Dtypes are converted to the parameter's.
absl::Status LoadNamedTensors(Transformer& model, const NamedTensors& tensors);

// The model's parameters by name (tied embeddings appear once, as model.embed_tokens.weight).
NamedTensors NamedParameters(Transformer& model);

}  // namespace rlj
