// transformer.h: a Llama-family causal LM (RMSNorm, RoPE, SwiGLU, optional tied embeddings; Qwen2's q/k/v
// biases, Mistral's sliding window) as torch::nn::Modules. Parameter names follow Hugging Face's
// LlamaForCausalLM ("model.layers.0.self_attn.q_proj.weight", …) so checkpoints are Hugging Face directories.
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include <string>

#include "model/model_config.h"

namespace rlj {

class KvCache;
class LlamaModelImpl;  // "model": embed_tokens, layers, norm (transformer.cc)

class TransformerImpl : public torch::nn::Module {
 public:
  explicit TransformerImpl(const TransformerConfig& config);

  // Full pass. tokens [B, T] int64. positions [B, T] int64 (default: 0..T-1 per row) give RoPE angles.
  // key_mask [B, T] bool (default: all true): false marks padding keys no query attends to. Attention is
  // causal. Returns logits [B, T, vocab] float32.
  torch::Tensor forward(const torch::Tensor& tokens, const torch::Tensor& positions = {},
                        const torch::Tensor& key_mask = {});

  // Incremental pass: appends the keys/values of `tokens` [B, T_new] to `cache` (whose key mask must
  // already cover them, see KvCache::Append) and attends over everything cached. Returns [B, T_new, vocab], or
  // with last_logits_only [B, 1, vocab] of the last position (a prefill whose caller samples from its end: the
  // output projection of the other positions, a [B, T_new, vocab] tensor, is not computed).
  torch::Tensor forward_cached(const torch::Tensor& tokens, const torch::Tensor& positions, KvCache& cache,
                               bool last_logits_only = false);

  const TransformerConfig& config() const { return config_; }

  // Whether forward_cached may run a decode step of a small batch as one fused CPU step (decode_step.h) instead
  // of LibTorch ops (default on; it applies to float32 CPU models without autograd). Off compares the two.
  void set_fused_decode(bool enabled) { fused_decode_ = enabled; }

  // The checkpoint directory the weights were loaded from ("" for a fresh model): where SaveCheckpoint finds
  // the tokenizer files to carry along. CloneTransformer copies it.
  const std::string& source_dir() const { return source_dir_; }
  void set_source_dir(std::string dir) { source_dir_ = std::move(dir); }

 private:
  // The final hidden states → logits float32 [B, T, vocab].
  torch::Tensor Logits(const torch::Tensor& hidden);
  // The dtype of the activations (the parameters').
  c10::ScalarType ActivationType();
  // True when this decode step (one token per row) can run fused: see set_fused_decode.
  bool FusedDecodeApplies(const at::Tensor& tokens, const KvCache& cache);
  // The fused step: logits [B, 1, vocab]; first_key is the oldest slot attended to.
  at::Tensor FusedDecode(const at::Tensor& tokens, const at::Tensor& rope_factors, KvCache& cache, int64_t first_key);

  TransformerConfig config_;
  std::string source_dir_;
  bool fused_decode_ = true;
  std::shared_ptr<LlamaModelImpl> model_;  // registered as "model"
  torch::Tensor lm_head_weight_;           // lm_head.weight, or model.embed_tokens.weight when tied
  // RoPE inverse frequencies [head_dim / 2], double, on the CPU; not a buffer, so Module::to(dtype) never
  // rounds them. The angles are computed per pass from the positions.
  torch::Tensor rope_inv_freq_;
};
TORCH_MODULE(Transformer);

// Same architecture, parameters copied (a frozen reference policy, an actor's copy).
Transformer CloneTransformer(Transformer& source);

}  // namespace rlj
