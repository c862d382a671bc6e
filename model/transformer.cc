// transformer.cc: the Llama-family decoder (RMSNorm, RoPE attention with grouped-query heads, optional
// q/k/v(/o) biases and a sliding window, a KV cache, SwiGLU MLP) as torch::nn::Modules whose parameter names
// match Hugging Face's LlamaForCausalLM / Qwen2ForCausalLM / MistralForCausalLM.
#include "model/transformer.h"

#include <c10/core/GradMode.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>

#include <cmath>
#include <limits>
#include <vector>

#include "model/cpu_matvec.h"
#include "model/decode_step.h"
#include "model/kv_cache.h"
#include "model/tensor/torch_compat.h"

namespace rlj {
namespace {

constexpr double kInitStd = 0.02;

// True when no autograd graph is recorded (InferenceMode, NoGradGuard): fresh temporaries may then be
// updated in place, which saves an allocation per op on the decode path.
bool InPlaceAllowed() { return !c10::GradMode::is_enabled(); }

// What every attention layer of one pass shares: RoPE factors per (row, position) and the additive mask.
struct AttentionContext {
  at::Tensor key_cos, key_sin;      // [B, T, 1, head_dim]
  at::Tensor query_cos, query_sin;  // same, times 1/sqrt(head_dim)
  at::Tensor mask_bias;             // [B, 1, 1, T, S]: 0 where a query may attend, -inf elsewhere; undefined:
                                    // a decode step (T = 1) that attends to every cached slot
  KvCache* cache = nullptr;         // incremental pass: keys/values go to slots [cache_start, cache_start + T)
  int64_t cache_start = 0;
};

// x [B, T, n, head_dim] → x * cos + rotate_half(x) * sin, Hugging Face's convention; the sign of
// rotate_half(x) = cat(-x2, x1) is folded into the sin table, so only the halves are swapped here.
at::Tensor ApplyRope(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& signed_sin) {
  const int64_t half = x.size(-1) / 2;
  const at::Tensor swapped = at::cat({x.narrow(-1, half, half), x.narrow(-1, 0, half)}, -1);
  return x.mul(cos).addcmul_(swapped, signed_sin);  // in place on a fresh product: fine for autograd
}

// allowed[b, i, j] = key j is at or before query i (absolute slots query_start + i) and is real; a query
// always sees itself, so the rows of pad queries are not empty (their outputs are never used). With a sliding
// window W > 0, key j must also be within the last W slots (j > i - W): a row's real tokens occupy consecutive
// slots (left-padded prompts, then the completion), so slot distance is position distance.
at::Tensor MaskBias(const at::Tensor& key_mask, int64_t batch, int64_t query_start, int64_t num_queries,
                    int64_t num_keys, int64_t window, const at::TensorOptions& options) {
  const auto long_options = at::TensorOptions().dtype(at::kLong).device(options.device());
  const at::Tensor key_index = at::arange(num_keys, long_options).view({1, num_keys});
  const at::Tensor query_index =
      at::arange(query_start, query_start + num_queries, long_options).view({num_queries, 1});
  at::Tensor allowed = key_index.le(query_index);  // [T, S]
  if (window > 0 && query_start + num_queries > window)
    allowed = allowed.logical_and(key_index.gt(query_index - window));
  if (key_mask.defined()) {
    allowed = allowed.logical_and(key_mask.view({batch, 1, num_keys}).logical_or(key_index.eq(query_index)));
  } else {
    allowed = allowed.unsqueeze(0);
  }
  const at::Tensor bias = at::zeros(allowed.sizes(), options);
  bias.masked_fill_(allowed.logical_not(), -std::numeric_limits<double>::infinity());
  return bias.view({allowed.size(0), 1, 1, num_queries, num_keys});
}

}  // namespace

// Root-mean-square normalisation, computed in float32 whatever the activations' dtype.
class RMSNormImpl : public torch::nn::Module {
 public:
  RMSNormImpl(int64_t dim, double eps) : eps_(eps) { weight = register_parameter("weight", torch::ones({dim})); }

  torch::Tensor forward(const torch::Tensor& x) {
    const at::Tensor x32 = x.to(at::kFloat);
    const at::Tensor inverse_rms = x32.square().mean(-1, /*keepdim=*/true).add_(eps_).rsqrt_();
    at::Tensor normed = x32.mul(inverse_rms).to(x.scalar_type());
    return InPlaceAllowed() && normed.scalar_type() == weight.scalar_type() ? normed.mul_(weight) : weight * normed;
  }

  torch::Tensor weight;

 private:
  double eps_;
};
TORCH_MODULE(RMSNorm);

// Weights from normal(0, 0.02), biases zero (Hugging Face's _init_weights).
torch::nn::Linear MakeLinear(int64_t in, int64_t out, bool bias = false) {
  torch::nn::Linear linear(torch::nn::LinearOptions(in, out).bias(bias));
  torch::NoGradGuard no_grad;
  linear->weight.normal_(0.0, kInitStd);
  if (bias) linear->bias.zero_();
  return linear;
}

namespace {

// Row counts up to this go to the CPU matrix-times-rows kernel when no autograd graph is recorded (short
// prefills, small-batch decode): BLAS's GEMM packs the whole weight matrix on every call, which at a few rows
// costs more than the product (OpenBLAS: ~250 us against ~30 us for one row of a 1024x256 weight). From 16
// rows on OpenBLAS is as fast or faster (1024x256 weights, 2 threads: 97 against 113 GFLOP/s at 16 rows,
// 125 against 110 at 32).
constexpr int64_t kMaxMatVecLinearRows = 8;

bool MatVecApplies(const at::Tensor& rows, const at::Tensor& weight, const at::Tensor& bias) {
  auto float_cpu = [](const at::Tensor& t) { return t.is_cpu() && t.scalar_type() == at::kFloat; };
  return !c10::GradMode::is_enabled() && rows.size(0) <= kMaxMatVecLinearRows && float_cpu(rows) && float_cpu(weight) &&
         weight.is_contiguous() && (!bias.defined() || (float_cpu(bias) && bias.is_contiguous()));
}

// rows [N, in] W^T (+ b) → [N, out]; an undefined bias is none. With autograd, a single row (a batch-1 decode
// step) goes to a matrix-vector product, which is differentiable, and more rows to at::linear.
at::Tensor LinearRows(const at::Tensor& rows, const at::Tensor& weight, const at::Tensor& bias = {}) {
  if (MatVecApplies(rows, weight, bias)) {
    const at::Tensor x = rows.contiguous();
    at::Tensor out = at::empty({x.size(0), weight.size(0)}, x.options());
    const MatVecJob job{weight.data_ptr<float>(), bias.defined() ? bias.data_ptr<float>() : nullptr,
                        out.data_ptr<float>(), weight.size(0), false};
    MatVecRows({&job, 1}, x.data_ptr<float>(), x.size(0), x.size(1));
    return out;
  }
  if (rows.size(0) != 1) return at::linear(rows, weight, bias);
  const at::Tensor row = rows.select(0, 0);
  return (bias.defined() ? at::addmv(bias, weight, row) : at::mv(weight, row)).unsqueeze(0);
}

}  // namespace

// x W^T (+ b) for a Linear, x [N, in].
at::Tensor Project(const at::Tensor& x, const torch::nn::Linear& linear) {
  return LinearRows(x, linear->weight, linear->bias);
}

// Multi-head attention with grouped key/value heads: query head h uses key/value head h / (H / KVH).
class AttentionImpl : public torch::nn::Module {
 public:
  explicit AttentionImpl(const TransformerConfig& config)
      : n_heads_(config.n_heads), n_kv_heads_(config.n_kv_heads), head_dim_(config.head_dim()) {
    q_proj = register_module("q_proj", MakeLinear(config.d_model, n_heads_ * head_dim_, config.qkv_bias()));
    k_proj = register_module("k_proj", MakeLinear(config.d_model, n_kv_heads_ * head_dim_, config.qkv_bias()));
    v_proj = register_module("v_proj", MakeLinear(config.d_model, n_kv_heads_ * head_dim_, config.qkv_bias()));
    o_proj = register_module("o_proj", MakeLinear(n_heads_ * head_dim_, config.d_model, config.o_proj_bias()));
  }

  // x [B, T, D] → [B, T, D].
  torch::Tensor forward(const torch::Tensor& x, const AttentionContext& context, int64_t layer) {
    const int64_t batch = x.size(0), length = x.size(1);
    const int64_t group = n_heads_ / n_kv_heads_;
    const at::Tensor rows = x.reshape({batch * length, x.size(2)});
    const at::Tensor q = ApplyRope(Project(rows, q_proj).view({batch, length, n_heads_, head_dim_}), context.query_cos,
                                   context.query_sin);
    const at::Tensor k = ApplyRope(Project(rows, k_proj).view({batch, length, n_kv_heads_, head_dim_}), context.key_cos,
                                   context.key_sin);
    const at::Tensor v = Project(rows, v_proj).view({batch, length, n_kv_heads_, head_dim_});

    at::Tensor keys, values;  // [B, KVH, S, head_dim]
    if (context.cache != nullptr) {
      const int64_t total = context.cache_start + length;
      const at::Tensor cached_keys = context.cache->keys(layer);
      const at::Tensor cached_values = context.cache->values(layer);
      cached_keys.narrow(2, context.cache_start, length).copy_(k.transpose(1, 2));
      cached_values.narrow(2, context.cache_start, length).copy_(v.transpose(1, 2));
      keys = cached_keys.narrow(2, 0, total);
      values = cached_values.narrow(2, 0, total);
    } else {
      keys = k.transpose(1, 2);
      values = v.transpose(1, 2);
    }
    const int64_t num_keys = keys.size(2);

    // LibTorch 2.x: scaled_dot_product_attention (flash / memory-efficient kernels on CUDA) for prefills and
    // training passes everywhere, and for decode steps off the CPU (on the CPU the step below is faster).
    if (torch_compat::HasFusedAttention() && (length > 1 || !q.is_cpu())) {
      return Project(FusedMix(q, keys, values, context, length), o_proj).view({batch, length, -1});
    }
    if (length == 1) {
      // One query per row (a decode step): broadcast-multiply and sum. at::matmul would run B * H tiny GEMMs
      // one by one (LibTorch's CPU bmm loops over the batch), ~3x slower here. The products go to the
      // cache's workspace (when no autograd graph is recorded: out= ops are not differentiable), as a fresh
      // [B, H, S, head_dim] temporary every step costs page faults.
      const bool use_workspace = context.cache != nullptr && InPlaceAllowed();
      const at::Tensor grouped_q = q.view({batch, n_kv_heads_, group, 1, head_dim_});
      const at::Tensor shared_keys = keys.unsqueeze(2);  // [B, KVH, 1, S, hd]
      const at::Tensor shared_values = values.unsqueeze(2);
      at::Tensor products;
      if (use_workspace) {
        products = context.cache->attention_workspace().narrow(3, 0, num_keys);  // [B, KVH, group, S, hd]
        at::mul_out(products, grouped_q, shared_keys);
      } else {
        products = grouped_q.mul(shared_keys);
      }
      at::Tensor scores = products.sum(-1);  // [B, KVH, group, S]
      if (context.mask_bias.defined()) scores.add_(context.mask_bias.view({-1, 1, 1, num_keys}));
      const at::Tensor probs = at::softmax(scores, -1).unsqueeze(-1);
      if (use_workspace) {
        at::mul_out(products, probs, shared_values);
      } else {
        products = probs.mul(shared_values);
      }
      const at::Tensor mixed = products.sum(3);  // [B, KVH, group, hd]
      return Project(mixed.view({batch, n_heads_ * head_dim_}), o_proj).view({batch, 1, -1});
    }
    // Queries of one key/value group side by side: [B, KVH, group * T, head_dim].
    const at::Tensor grouped_q = q.view({batch, length, n_kv_heads_, group, head_dim_})
                                     .permute({0, 2, 3, 1, 4})
                                     .reshape({batch, n_kv_heads_, group * length, head_dim_});
    at::Tensor scores = at::matmul(grouped_q, keys.transpose(2, 3));  // scale is in the query RoPE factors
    scores.view({batch, n_kv_heads_, group, length, num_keys}).add_(context.mask_bias);
    const at::Tensor probs = at::softmax(scores, -1);
    const at::Tensor mixed = at::matmul(probs, values)  // [B, KVH, group * T, head_dim]
                                 .view({batch, n_kv_heads_, group, length, head_dim_})
                                 .permute({0, 3, 1, 2, 4})
                                 .reshape({batch * length, n_heads_ * head_dim_});
    return Project(mixed, o_proj).view({batch, length, -1});
  }

  torch::nn::Linear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, o_proj{nullptr};

 private:
  // The attention mix through torch_compat::FusedAttention: q [B, T, H, hd], keys / values [B, KVH, S, hd] (each
  // key/value head repeated for its group of query heads) → [B * T, H * hd].
  at::Tensor FusedMix(const at::Tensor& q, const at::Tensor& keys, const at::Tensor& values,
                      const AttentionContext& context, int64_t length) {
    const int64_t batch = q.size(0), num_keys = keys.size(2), group = n_heads_ / n_kv_heads_;
    auto per_head = [&](const at::Tensor& t) {
      return group == 1 ? t
                        : t.unsqueeze(2)
                              .expand({batch, n_kv_heads_, group, num_keys, head_dim_})
                              .reshape({batch, n_heads_, num_keys, head_dim_});
    };
    at::Tensor bias = context.mask_bias;
    if (bias.defined()) bias = bias.view({bias.size(0), 1, bias.size(-2) == length ? length : 1, num_keys});
    // The scale is in the query's RoPE factors; no mask on a decode step without pad keys.
    const at::Tensor mixed = torch_compat::FusedAttention(q.transpose(1, 2), per_head(keys), per_head(values), bias,
                                                          /*causal=*/false, /*scale=*/1.0);  // [B, H, T, hd]
    return mixed.transpose(1, 2).reshape({batch * length, n_heads_ * head_dim_});
  }

  int64_t n_heads_, n_kv_heads_, head_dim_;
};
TORCH_MODULE(Attention);

// SwiGLU: down_proj(silu(gate_proj(x)) * up_proj(x)).
class MlpImpl : public torch::nn::Module {
 public:
  explicit MlpImpl(const TransformerConfig& config) {
    gate_proj = register_module("gate_proj", MakeLinear(config.d_model, config.ffn_hidden));
    up_proj = register_module("up_proj", MakeLinear(config.d_model, config.ffn_hidden));
    down_proj = register_module("down_proj", MakeLinear(config.ffn_hidden, config.d_model));
  }

  torch::Tensor forward(const torch::Tensor& x) {
    const at::Tensor rows = x.reshape({-1, x.size(-1)});
    at::Tensor gate = LinearRows(rows, gate_proj->weight);
    const at::Tensor up = LinearRows(rows, up_proj->weight);
    const at::Tensor hidden = InPlaceAllowed() ? at::silu_(gate).mul_(up) : at::silu(gate) * up;
    return LinearRows(hidden, down_proj->weight).view(x.sizes());
  }

  torch::nn::Linear gate_proj{nullptr}, up_proj{nullptr}, down_proj{nullptr};
};
TORCH_MODULE(Mlp);

// One pre-norm block: x + attention(norm(x)), then h + mlp(norm(h)).
class DecoderLayerImpl : public torch::nn::Module {
 public:
  explicit DecoderLayerImpl(const TransformerConfig& config) {
    input_layernorm = register_module("input_layernorm", RMSNorm(config.d_model, config.norm_eps));
    self_attn = register_module("self_attn", Attention(config));
    post_attention_layernorm = register_module("post_attention_layernorm", RMSNorm(config.d_model, config.norm_eps));
    mlp = register_module("mlp", Mlp(config));
  }

  torch::Tensor forward(const torch::Tensor& x, const AttentionContext& context, int64_t layer) {
    if (InPlaceAllowed()) {  // the sublayer outputs are fresh tensors: add the residual into them
      const at::Tensor h = self_attn->forward(input_layernorm->forward(x), context, layer).add_(x);
      return mlp->forward(post_attention_layernorm->forward(h)).add_(h);
    }
    const at::Tensor h = x + self_attn->forward(input_layernorm->forward(x), context, layer);
    return h + mlp->forward(post_attention_layernorm->forward(h));
  }

  RMSNorm input_layernorm{nullptr};
  Attention self_attn{nullptr};
  RMSNorm post_attention_layernorm{nullptr};
  Mlp mlp{nullptr};
};
TORCH_MODULE(DecoderLayer);

// Hugging Face's LlamaModel: embeddings, the decoder layers, the final norm (hidden states, no logits).
class LlamaModelImpl : public torch::nn::Module {
 public:
  explicit LlamaModelImpl(const TransformerConfig& config) {
    embed_tokens = register_module("embed_tokens", torch::nn::Embedding(config.vocab_size, config.d_model));
    {
      torch::NoGradGuard no_grad;
      embed_tokens->weight.normal_(0.0, kInitStd);
    }
    layers = register_module("layers", torch::nn::ModuleList());
    for (int i = 0; i < config.n_layers; ++i) {
      decoder_layers.push_back(DecoderLayer(config));
      layers->push_back(decoder_layers.back());
    }
    norm = register_module("norm", RMSNorm(config.d_model, config.norm_eps));
  }

  torch::Tensor forward(const torch::Tensor& tokens, const AttentionContext& context) {
    at::Tensor h = at::embedding(embed_tokens->weight, tokens);
    for (size_t i = 0; i < decoder_layers.size(); ++i) {
      h = decoder_layers[i]->forward(h, context, static_cast<int64_t>(i));
    }
    return norm->forward(h);
  }

  torch::nn::Embedding embed_tokens{nullptr};
  torch::nn::ModuleList layers{nullptr};
  std::vector<DecoderLayer> decoder_layers;  // the same modules as `layers`, typed
  RMSNorm norm{nullptr};
};

namespace {

// RoPE factors for positions [B, T], as one [B, T, 4, 1, head_dim] tensor in `dtype`: cos, rotate-half-signed
// sin, and both times 1/sqrt(head_dim) (queries carry the attention scale). Angles position * inv_freq are
// computed in double from the positions themselves, so no table bounds the context and long positions keep
// their precision; inv_freq repeats over both halves as in Hugging Face.
at::Tensor RopeFactors(const at::Tensor& inv_freq, int64_t head_dim, const at::Tensor& positions,
                       c10::ScalarType dtype) {
  const int64_t batch = positions.size(0), length = positions.size(1);
  const at::Tensor angles =
      positions.to(at::kDouble).unsqueeze(-1).mul(inv_freq.to(positions.device()));  // [B, T, hd/2]
  const at::Tensor cos = angles.cos(), sin = angles.sin();
  const at::Tensor full_cos = at::cat({cos, cos}, -1);
  const at::Tensor signed_sin = at::cat({sin.neg(), sin}, -1);
  const double scale = 1.0 / std::sqrt(static_cast<double>(head_dim));
  // One conversion for the four.
  return at::stack({full_cos, signed_sin, full_cos.mul(scale), signed_sin.mul(scale)}, 2)
      .to(dtype)
      .view({batch, length, 4, 1, head_dim});
}

void SetRope(const at::Tensor& factors, AttentionContext& context) {
  context.key_cos = factors.select(2, 0);
  context.key_sin = factors.select(2, 1);
  context.query_cos = factors.select(2, 2);
  context.query_sin = factors.select(2, 3);
}

// True when every position is in [0, limit); reads CPU positions directly (no tensor ops). Positions on
// another device are not inspected (false), as that would wait for the device.
bool PositionsBelow(const at::Tensor& positions, int64_t limit) {
  if (!positions.device().is_cpu() || positions.scalar_type() != at::kLong) return false;
  const at::Tensor dense = positions.contiguous();
  const int64_t* data = dense.data_ptr<int64_t>();
  for (int64_t i = 0; i < dense.numel(); ++i) {
    if (data[i] < 0 || data[i] >= limit) return false;
  }
  return true;
}

// The RoPE factors of an incremental pass: looked up in the cache's table of positions 0..capacity-1 (built
// on the first pass with the same arithmetic as RopeFactors, so the values are identical), which replaces a
// dozen small ops per decode step by one index_select; computed directly for positions outside the table.
at::Tensor CachedRopeFactors(const at::Tensor& inv_freq, int64_t head_dim, const at::Tensor& positions,
                             c10::ScalarType dtype, KvCache& cache) {
  if (!PositionsBelow(positions, cache.capacity())) return RopeFactors(inv_freq, head_dim, positions, dtype);
  if (!cache.position_table().defined() || cache.position_table().scalar_type() != dtype) {
    const at::Tensor all_positions = at::arange(cache.capacity(), positions.options()).view({1, cache.capacity()});
    cache.set_position_table(
        RopeFactors(inv_freq, head_dim, all_positions, dtype).view({cache.capacity(), 4 * head_dim}));
  }
  return cache.position_table()
      .index_select(0, positions.reshape({-1}))
      .view({positions.size(0), positions.size(1), 4, 1, head_dim});
}

// The additive mask of a decode step (one query per row, at the newest slot) over `key_mask` [B, S]:
// [B, S], -inf at pad keys, 0 elsewhere; the query's own slot always stays visible.
at::Tensor DecodeMaskBias(const at::Tensor& key_mask, const at::TensorOptions& options) {
  at::Tensor bias = at::zeros(key_mask.sizes(), options);
  bias.masked_fill_(key_mask.logical_not(), -std::numeric_limits<double>::infinity());
  bias.narrow(1, key_mask.size(1) - 1, 1).zero_();
  return bias;
}

at::Tensor CheckTokens(const torch::Tensor& tokens, const TransformerConfig& config, const char* what) {
  TORCH_CHECK(tokens.defined() && tokens.dim() == 2, what, ": tokens must be [B, T], got ", tokens.sizes());
  TORCH_CHECK(tokens.size(0) > 0 && tokens.size(1) > 0, what, ": empty token batch ", tokens.sizes());
  TORCH_CHECK(tokens.size(1) <= config.max_seq_len, what, ": ", tokens.size(1), " tokens exceed max_seq_len ",
              config.max_seq_len);
  return tokens.scalar_type() == at::kLong ? tokens : tokens.to(at::kLong);
}

}  // namespace

TransformerImpl::TransformerImpl(const TransformerConfig& config) : config_(config) {
  model_ = register_module("model", std::make_shared<LlamaModelImpl>(config));
  if (config.tie_embeddings) {
    lm_head_weight_ = model_->embed_tokens->weight;
  } else {
    lm_head_weight_ = register_module("lm_head", MakeLinear(config.d_model, config.vocab_size))->weight;
  }
  const std::vector<double> inv_freq = config.RopeInverseFrequencies();
  rope_inv_freq_ =
      torch::from_blob(const_cast<double*>(inv_freq.data()), {static_cast<int64_t>(inv_freq.size())}, torch::kDouble)
          .clone();
}

c10::ScalarType TransformerImpl::ActivationType() { return model_->embed_tokens->weight.scalar_type(); }

torch::Tensor TransformerImpl::Logits(const torch::Tensor& hidden) {
  at::Tensor logits = LinearRows(hidden.reshape({-1, hidden.size(-1)}), lm_head_weight_)
                          .view({hidden.size(0), hidden.size(1), lm_head_weight_.size(0)});
  return logits.scalar_type() == at::kFloat ? logits : logits.to(at::kFloat);
}

torch::Tensor TransformerImpl::forward(const torch::Tensor& tokens_in, const torch::Tensor& positions_in,
                                       const torch::Tensor& key_mask) {
  const at::Tensor tokens = CheckTokens(tokens_in, config_, "Transformer::forward");
  const int64_t batch = tokens.size(0), length = tokens.size(1);
  at::Tensor positions = positions_in;
  if (!positions.defined()) {
    positions = at::arange(length, tokens.options()).view({1, length}).expand({batch, length});
  }
  TORCH_CHECK(positions.sizes() == tokens.sizes(), "Transformer::forward: positions ", positions.sizes(),
              " must match tokens ", tokens.sizes());
  if (key_mask.defined()) {
    TORCH_CHECK(key_mask.sizes() == tokens.sizes(), "Transformer::forward: key_mask ", key_mask.sizes(),
                " must match tokens ", tokens.sizes());
  }
  AttentionContext context;
  SetRope(RopeFactors(rope_inv_freq_, config_.head_dim(), positions, ActivationType()), context);
  const at::Tensor mask = key_mask.defined() ? key_mask.to(at::kBool) : key_mask;
  context.mask_bias = MaskBias(mask, batch, 0, length, length, config_.sliding_window,
                               at::TensorOptions().dtype(ActivationType()).device(tokens.device()));
  return Logits(model_->forward(tokens, context));
}

torch::Tensor TransformerImpl::forward_cached(const torch::Tensor& tokens_in, const torch::Tensor& positions,
                                              KvCache& cache, bool last_logits_only) {
  const at::Tensor tokens = CheckTokens(tokens_in, config_, "Transformer::forward_cached");
  const int64_t batch = tokens.size(0), length = tokens.size(1);
  TORCH_CHECK(cache.num_layers() == config_.n_layers, "Transformer::forward_cached: cache has ", cache.num_layers(),
              " layers, the model ", config_.n_layers);
  TORCH_CHECK(cache.batch() == batch, "Transformer::forward_cached: cache holds ", cache.batch(), " rows, tokens ",
              batch);
  TORCH_CHECK(cache.pending() == length, "Transformer::forward_cached: ", length, " new tokens but the cache has ",
              cache.pending(), " reserved slots (call KvCache::Append first)");
  TORCH_CHECK(positions.defined() && positions.sizes() == tokens.sizes(), "Transformer::forward_cached: positions ",
              positions.sizes(), " must match tokens ", tokens.sizes());
  const at::Tensor rope_factors =
      CachedRopeFactors(rope_inv_freq_, config_.head_dim(), positions, ActivationType(), cache);
  const bool window_applies = config_.sliding_window > 0 && cache.length() > config_.sliding_window;
  if (length == 1 && FusedDecodeApplies(tokens, cache)) {
    // Under a sliding window the query (the newest slot) sees the last sliding_window slots.
    at::Tensor logits =
        FusedDecode(tokens, rope_factors, cache, window_applies ? cache.length() - config_.sliding_window : 0);
    if (logits.defined()) {
      cache.MarkWritten();
      return logits;
    }
  }
  AttentionContext context;
  SetRope(rope_factors, context);
  context.cache = &cache;
  context.cache_start = cache.length() - length;
  const auto options = at::TensorOptions().dtype(ActivationType()).device(tokens.device());
  if (length == 1 && !window_applies) {
    // A decode step: the query is the newest slot, so causality hides nothing; only pad keys need a mask, and
    // without any the step runs with none (mask_bias undefined).
    if (cache.has_pad_keys()) context.mask_bias = DecodeMaskBias(cache.key_mask(), options);
  } else {
    context.mask_bias =
        MaskBias(cache.key_mask(), batch, context.cache_start, length, cache.length(), config_.sliding_window, options);
  }
  at::Tensor hidden = model_->forward(tokens, context);
  if (last_logits_only && length > 1) hidden = hidden.narrow(1, length - 1, 1);
  at::Tensor logits = Logits(hidden);
  cache.MarkWritten();
  return logits;
}

bool TransformerImpl::FusedDecodeApplies(const at::Tensor& tokens, const KvCache& cache) {
  // The weights are checked where FusedDecode collects them.
  const at::Tensor keys = cache.keys(0);
  return fused_decode_ && !c10::GradMode::is_enabled() && tokens.size(0) <= kMaxFusedDecodeRows && tokens.is_cpu() &&
         keys.is_cpu() && keys.scalar_type() == at::kFloat && keys.is_contiguous();
}

// Returns undefined (and does nothing) when a weight is not CPU float32 and contiguous.
at::Tensor TransformerImpl::FusedDecode(const at::Tensor& tokens_in, const at::Tensor& rope_factors, KvCache& cache,
                                        int64_t first_key) {
  const at::Tensor tokens = tokens_in.contiguous();
  const int64_t rows = tokens.size(0);
  const int64_t* ids = tokens.data_ptr<int64_t>();
  for (int64_t r = 0; r < rows; ++r) {
    TORCH_CHECK(ids[r] >= 0 && ids[r] < config_.vocab_size, "Transformer::forward_cached: token id ", ids[r],
                " is outside the vocabulary (0..", config_.vocab_size - 1, ")");
  }
  // A weight's data, or null for an undefined bias; a weight that is not CPU float32 and contiguous makes the
  // whole step fall back to LibTorch ops (an undefined result).
  bool weights_usable = true;
  auto data = [&weights_usable](const at::Tensor& t) -> const float* {
    if (!t.defined()) return nullptr;
    if (!t.is_cpu() || t.scalar_type() != at::kFloat || !t.is_contiguous()) {
      weights_usable = false;
      return nullptr;
    }
    return t.data_ptr<float>();
  };
  DecodeStep step;
  step.d_model = config_.d_model;
  step.n_heads = config_.n_heads;
  step.n_kv_heads = config_.n_kv_heads;
  step.head_dim = config_.head_dim();
  step.ffn_hidden = config_.ffn_hidden;
  step.vocab_size = config_.vocab_size;
  step.norm_eps = config_.norm_eps;
  step.rows = rows;
  step.capacity = cache.capacity();
  step.slot = cache.length() - 1;
  step.first_key = first_key;
  step.tokens = ids;
  at::Tensor key_mask;
  if (cache.has_pad_keys()) {
    key_mask = cache.key_mask();
    step.key_mask = key_mask.data_ptr<bool>();
    step.key_mask_stride = key_mask.stride(0);
  }
  step.embed = data(model_->embed_tokens->weight);
  step.final_norm = data(model_->norm->weight);
  step.lm_head = data(lm_head_weight_);
  for (size_t i = 0; i < model_->decoder_layers.size(); ++i) {
    const DecoderLayerImpl& layer = *model_->decoder_layers[i];
    const AttentionImpl& attention = *layer.self_attn;
    const MlpImpl& mlp = *layer.mlp;
    DecodeLayerWeights weights;
    weights.input_norm = data(layer.input_layernorm->weight);
    weights.q = data(attention.q_proj->weight);
    weights.k = data(attention.k_proj->weight);
    weights.v = data(attention.v_proj->weight);
    weights.o = data(attention.o_proj->weight);
    weights.q_bias = data(attention.q_proj->bias);
    weights.k_bias = data(attention.k_proj->bias);
    weights.v_bias = data(attention.v_proj->bias);
    weights.o_bias = data(attention.o_proj->bias);
    weights.post_attention_norm = data(layer.post_attention_layernorm->weight);
    weights.gate = data(mlp.gate_proj->weight);
    weights.up = data(mlp.up_proj->weight);
    weights.down = data(mlp.down_proj->weight);
    weights.keys = cache.keys(static_cast<int64_t>(i)).data_ptr<float>();
    weights.values = cache.values(static_cast<int64_t>(i)).data_ptr<float>();
    step.layers.push_back(weights);
  }
  if (!weights_usable) return {};
  const at::Tensor rope = rope_factors.contiguous();
  step.rope = rope.data_ptr<float>();
  at::Tensor logits = at::empty({rows, 1, config_.vocab_size}, at::TensorOptions().dtype(at::kFloat));
  step.logits = logits.data_ptr<float>();
  RunDecodeStep(step);
  return logits;
}

Transformer CloneTransformer(Transformer& source) {
  Transformer copy(source->config());
  copy->set_source_dir(source->source_dir());
  torch::NoGradGuard no_grad;
  const auto source_parameters = source->named_parameters(/*recurse=*/true);
  auto copy_parameters = copy->named_parameters(/*recurse=*/true);
  for (const auto& item : source_parameters) {
    at::Tensor& target = copy_parameters[item.key()];
    target.set_data(item.value().detach().clone());
    target.set_requires_grad(item.value().requires_grad());
  }
  const auto source_buffers = source->named_buffers(/*recurse=*/true);
  auto copy_buffers = copy->named_buffers(/*recurse=*/true);
  for (const auto& item : source_buffers) copy_buffers[item.key()].set_data(item.value().detach().clone());
  return copy;
}

}  // namespace rlj
