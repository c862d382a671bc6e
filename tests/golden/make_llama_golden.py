#!/usr/bin/python3
"""make_llama_golden.py: expected logits for the golden test, from an independent NumPy Llama forward.

Reads the small checkpoints tests/golden/tiny_llama/ (multi-head, tied embeddings),
tests/golden/tiny_llama_gqa/ (grouped-query: 2 key/value heads for 4 query heads, untied lm_head),
tests/golden/tiny_qwen2/ (q/k/v biases, grouped-query) and tests/golden/tiny_mistral/ (sliding window 4) -
config.json and model.safetensors as Hugging Face writes them - runs a float64 NumPy implementation of
LlamaForCausalLM written from the Hugging Face modeling code (not from the C++), and writes the logits for a
fixed token sequence to tests/golden/tiny_llama_logits.json. The C++ test Golden.LogitsMatchNumPyReference
(tests/unit/model/golden_test.cc) compares the C++ model's logits with them (max abs diff <= 1e-4).

Regenerate (only needed when the checkpoints or the token sequence change):
  1. ninja -C build-model rlj_model_tests
  2. build-model/tests/rlj_model_tests --gtest_also_run_disabled_tests \
         --gtest_filter='Golden.DISABLED_WriteTinyCheckpoints'      # rewrites the two checkpoint dirs
  3. /usr/bin/python3 tests/golden/make_llama_golden.py             # needs python3-numpy (Debian)
Only NumPy and the standard library are used; safetensors is parsed by hand.
"""

import json
import os
import struct
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
CHECKPOINTS = ["tiny_llama", "tiny_llama_gqa", "tiny_qwen2", "tiny_mistral"]
TOKENS = [1, 7, 13, 2, 40, 47, 0, 5, 9, 30, 31, 12, 44, 3]

DTYPES = {"F32": np.float32, "F16": np.float16, "I32": np.int32, "I64": np.int64, "U8": np.uint8}


def read_safetensors(path):
    with open(path, "rb") as f:
        blob = f.read()
    (header_size,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8 : 8 + header_size])
    data = blob[8 + header_size :]
    tensors = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        begin, end = entry["data_offsets"]
        dtype = np.dtype(DTYPES[entry["dtype"]]).newbyteorder("<")
        tensors[name] = np.frombuffer(data[begin:end], dtype=dtype).reshape(entry["shape"]).astype(np.float64)
    return tensors


def rms_norm(x, weight, eps):
    variance = np.mean(x * x, axis=-1, keepdims=True)
    return weight * (x / np.sqrt(variance + eps))


def rotate_half(x):
    half = x.shape[-1] // 2
    return np.concatenate([-x[..., half:], x[..., :half]], axis=-1)


def llama_logits(config, w, tokens):
    d = config["hidden_size"]
    n_heads = config["num_attention_heads"]
    n_kv = config.get("num_key_value_heads", n_heads)
    head_dim = d // n_heads
    eps = config["rms_norm_eps"]
    theta = config.get("rope_theta", 10000.0)
    seq = len(tokens)

    # RoPE as in Hugging Face's LlamaRotaryEmbedding: inv_freq over even dims, cos/sin of cat(freqs, freqs).
    inv_freq = 1.0 / (theta ** (np.arange(0, head_dim, 2, dtype=np.float64) / head_dim))
    freqs = np.outer(np.arange(seq, dtype=np.float64), inv_freq)
    emb = np.concatenate([freqs, freqs], axis=-1)  # [T, head_dim]
    cos, sin = np.cos(emb)[None], np.sin(emb)[None]  # broadcast over heads: [1, T, head_dim]

    causal = np.tril(np.ones((seq, seq), dtype=bool))
    # Mistral's sliding window (transformers' sliding_window_overlay): key j is visible to query i when
    # i - window < j <= i. Qwen2 uses it only with use_sliding_window (not in these checkpoints).
    window = config.get("sliding_window") if config["model_type"] == "mistral" else None
    if window:
        index = np.arange(seq)
        causal &= index[None, :] > index[:, None] - window
    x = w["model.embed_tokens.weight"][np.array(tokens)]  # [T, D]
    for i in range(config["num_hidden_layers"]):
        p = f"model.layers.{i}."
        h = rms_norm(x, w[p + "input_layernorm.weight"], eps)
        # Qwen2 (and Llama with attention_bias) add biases to q/k/v: nn.Linear(bias=True).
        def project(name):
            y = h @ w[p + f"self_attn.{name}.weight"].T
            return y + w[p + f"self_attn.{name}.bias"] if p + f"self_attn.{name}.bias" in w else y
        q = project("q_proj").reshape(seq, n_heads, head_dim).transpose(1, 0, 2)
        k = project("k_proj").reshape(seq, n_kv, head_dim).transpose(1, 0, 2)
        v = project("v_proj").reshape(seq, n_kv, head_dim).transpose(1, 0, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        # repeat_kv: query head j uses key/value head j // (n_heads // n_kv).
        k = np.repeat(k, n_heads // n_kv, axis=0)
        v = np.repeat(v, n_heads // n_kv, axis=0)
        scores = q @ k.transpose(0, 2, 1) / np.sqrt(head_dim)  # [H, T, T]
        scores = np.where(causal[None], scores, -np.inf)
        scores = scores - scores.max(axis=-1, keepdims=True)
        probs = np.exp(scores)
        probs /= probs.sum(axis=-1, keepdims=True)
        attn = (probs @ v).transpose(1, 0, 2).reshape(seq, n_heads * head_dim)
        out = attn @ w[p + "self_attn.o_proj.weight"].T
        x = x + (out + w[p + "self_attn.o_proj.bias"] if p + "self_attn.o_proj.bias" in w else out)

        h = rms_norm(x, w[p + "post_attention_layernorm.weight"], eps)
        gate = h @ w[p + "mlp.gate_proj.weight"].T
        up = h @ w[p + "mlp.up_proj.weight"].T
        x = x + ((gate / (1.0 + np.exp(-gate))) * up) @ w[p + "mlp.down_proj.weight"].T

    x = rms_norm(x, w["model.norm.weight"], eps)
    head = w["model.embed_tokens.weight"] if config.get("tie_word_embeddings", False) else w["lm_head.weight"]
    return x @ head.T  # [T, V]


def main():
    cases = []
    for name in CHECKPOINTS:
        directory = os.path.join(HERE, name)
        with open(os.path.join(directory, "config.json")) as f:
            config = json.load(f)
        weights = read_safetensors(os.path.join(directory, "model.safetensors"))
        logits = llama_logits(config, weights, TOKENS)
        cases.append({
            "checkpoint": name,
            "tokens": TOKENS,
            "logits": [[float(f"{value:.9g}") for value in row] for row in logits],
        })
        print(f"{name}: logits {logits.shape}, max |logit| {np.abs(logits).max():.4f}", file=sys.stderr)
    with open(os.path.join(HERE, "tiny_llama_logits.json"), "w") as f:
        json.dump({"generator": "tests/golden/make_llama_golden.py", "cases": cases}, f, separators=(",", ":"))
        f.write("\n")


if __name__ == "__main__":
    main()
