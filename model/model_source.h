// model_source.h: the one place that decides the starting student of every process: model.init_checkpoint (an
// rlj checkpoint or a Hugging Face model directory, whose config.json defines the architecture), else a seeded
// random model of the config's shape.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "model/checkpoint/checkpoint.h"
#include "model/transformer.h"
#include "rlj/v1/config.pb.h"

namespace rlj {

struct StartingModelInfo {
  std::string source;     // the checkpoint directory, or "" for a random init
  CheckpointState state;  // the checkpoint's step and version (zeros for a random init)
};

// With model.init_checkpoint: loads it (float32, CPU); every model.* shape key the config sets explicitly
// (architecture, vocab_size, d_model, n_layers, n_heads, n_kv_heads, ffn_hidden, max_seq_len, rope_theta,
// norm_eps, tie_embeddings, attention_bias, sliding_window, rope_scaling.*) must agree with its config.json,
// else InvalidArgument naming every such key with both values. Without it: the config's shape with weights
// drawn after torch::manual_seed(config.seed()), so every process that asks gets the same model. An output
// parameter, as StatusOr<Transformer> is ambiguous (ModuleHolder converts from anything).
absl::Status LoadStartingModel(const v1::RunConfig& config, Transformer* model, StartingModelInfo* info = nullptr);

// The disagreements between the explicitly set keys of `proto` and `checkpoint` ("" when none), for the above.
std::string ExplicitModelKeyMismatches(const v1::ModelConfig& proto, const TransformerConfig& checkpoint);

}  // namespace rlj
