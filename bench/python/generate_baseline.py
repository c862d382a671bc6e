#!/usr/bin/python3
# generate_baseline.py: the Python baseline for `rlj bench generate`: a straightforward PyTorch generate loop
# with a KV cache (Hugging Face style: keys/values concatenated per step) on a random Llama-style model of the
# same shape (RMSNorm, RoPE, SwiGLU, kv heads = heads, tied embeddings, no biases), sampling at temperature 1
# from random prompts. Prints one JSON line with the same fields as the C++ bench.
#   OMP_WAIT_POLICY=PASSIVE /usr/bin/python3 bench/python/generate_baseline.py --batch 32 --threads 2
import argparse
import json
import math
import time

import torch
import torch.nn.functional as F
from torch import nn


class RMSNorm(nn.Module):
    def __init__(self, dim, eps=1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x):
        return self.weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps))


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


class Attention(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.heads, self.head_dim = heads, d // heads
        self.q_proj = nn.Linear(d, d, bias=False)
        self.k_proj = nn.Linear(d, d, bias=False)
        self.v_proj = nn.Linear(d, d, bias=False)
        self.o_proj = nn.Linear(d, d, bias=False)

    def forward(self, x, cos, sin, cache, mask):
        b, t, d = x.shape
        q = self.q_proj(x).view(b, t, self.heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(b, t, self.heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(b, t, self.heads, self.head_dim).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        if cache is not None:
            k = torch.cat([cache[0], k], dim=2)
            v = torch.cat([cache[1], v], dim=2)
        scores = torch.matmul(q, k.transpose(2, 3)) / math.sqrt(self.head_dim)
        if mask is not None:
            scores = scores + mask
        probs = torch.softmax(scores, dim=-1)
        out = torch.matmul(probs, v).transpose(1, 2).reshape(b, t, d)
        return self.o_proj(out), (k, v)


class Block(nn.Module):
    def __init__(self, d, heads, ffn):
        super().__init__()
        self.input_layernorm = RMSNorm(d)
        self.self_attn = Attention(d, heads)
        self.post_attention_layernorm = RMSNorm(d)
        self.gate_proj = nn.Linear(d, ffn, bias=False)
        self.up_proj = nn.Linear(d, ffn, bias=False)
        self.down_proj = nn.Linear(ffn, d, bias=False)

    def forward(self, x, cos, sin, cache, mask):
        attended, cache = self.self_attn(self.input_layernorm(x), cos, sin, cache, mask)
        h = x + attended
        n = self.post_attention_layernorm(h)
        return h + self.down_proj(F.silu(self.gate_proj(n)) * self.up_proj(n)), cache


class Llama(nn.Module):
    def __init__(self, layers, d, heads, ffn, vocab, max_len, theta=10000.0):
        super().__init__()
        self.embed_tokens = nn.Embedding(vocab, d)
        self.layers = nn.ModuleList(Block(d, heads, ffn) for _ in range(layers))
        self.norm = RMSNorm(d)
        for p in self.parameters():
            if p.dim() == 2:
                nn.init.normal_(p, std=0.02)
        head_dim = d // heads
        inv_freq = 1.0 / theta ** (torch.arange(0, head_dim, 2).float() / head_dim)
        angles = torch.outer(torch.arange(max_len).float(), inv_freq)
        angles = torch.cat([angles, angles], dim=-1)
        self.cos, self.sin = angles.cos(), angles.sin()

    def forward(self, tokens, start, caches):
        t = tokens.shape[1]
        x = self.embed_tokens(tokens)
        cos = self.cos[start:start + t][None, None]
        sin = self.sin[start:start + t][None, None]
        mask = None
        if t > 1:
            mask = torch.full((t, t), float("-inf")).triu(1)
        new_caches = []
        for layer, cache in zip(self.layers, caches):
            x, cache = layer(x, cos, sin, cache, mask)
            new_caches.append(cache)
        return F.linear(self.norm(x), self.embed_tokens.weight), new_caches  # tied lm_head


@torch.inference_mode()
def generate(model, prompts, new_tokens, generator):
    caches = [None] * len(model.layers)
    logits, caches = model(prompts, 0, caches)
    position = prompts.shape[1]
    out = []
    next_logits = logits[:, -1]
    for step in range(new_tokens):
        probs = torch.softmax(next_logits.float(), dim=-1)
        ids = torch.multinomial(probs, 1, generator=generator)
        out.append(ids)
        if step + 1 == new_tokens:
            break
        logits, caches = model(ids, position, caches)
        position += 1
        next_logits = logits[:, -1]
    return torch.cat(out, dim=1)


def gemm_rate(m, k, n):
    a, b = torch.randn(m, k), torch.randn(k, n)
    c = torch.mm(a, b)
    calls = max(1, (1 << 30) // (m * k * n))
    best = 1e9
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(calls):
            torch.mm(a, b, out=c)
        best = min(best, (time.perf_counter() - start) / calls)
    return 2.0 * m * k * n / best


def main():
    parser = argparse.ArgumentParser(description="Python baseline for rlj bench generate")
    for name, default in [("layers", 4), ("d-model", 256), ("heads", 8), ("ffn", 1024), ("vocab", 256), ("batch", 1),
                          ("prompt-len", 16), ("new-tokens", 64), ("threads", 2), ("repeats", 3), ("seed", 1)]:
        parser.add_argument("--" + name, type=int, default=default)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    model = Llama(args.layers, args.d_model, args.heads, args.ffn, args.vocab, args.prompt_len + args.new_tokens).eval()
    prompts = torch.randint(0, args.vocab, (args.batch, args.prompt_len), generator=torch.Generator().manual_seed(args.seed))
    generate(model, prompts, args.new_tokens, torch.Generator().manual_seed(args.seed))  # warm-up
    seconds = []
    generated = 0
    for repeat in range(args.repeats):
        start = time.perf_counter()
        out = generate(model, prompts, args.new_tokens, torch.Generator().manual_seed(args.seed + 1 + repeat))
        seconds.append(time.perf_counter() - start)
        generated = out.numel()
    seconds.sort()
    median = seconds[len(seconds) // 2]
    d, f, v, layers, batch, p, n = args.d_model, args.ffn, args.vocab, args.layers, args.batch, args.prompt_len, args.new_tokens
    linear_weights = layers * (4 * d * d + 3 * d * f) + v * d
    attention = sum(4.0 * q * d * layers for q in range(1, p + 1)) * batch
    attention += sum(4.0 * (p + s + 1) * d * layers * batch for s in range(n - 1))
    flops = 2.0 * linear_weights * (batch * p + batch * (n - 1)) + attention
    params = sum(t.numel() for t in model.parameters())
    gemm = gemm_rate(1024, 1024, 1024)
    print(json.dumps({
        "bench": "generate", "impl": "python-pytorch", "layers": layers, "d_model": d, "heads": args.heads, "ffn": f,
        "vocab": v, "batch": batch, "prompt_len": p, "new_tokens": n, "threads": args.threads, "params": params,
        "generated_tokens": generated, "seconds": median, "tokens_per_s": generated / median,
        "best_tokens_per_s": generated / seconds[0], "gflops": flops / median / 1e9,
        "gemm_gflops_1024": gemm / 1e9, "gemm_gflops_decode_shape": gemm_rate(batch, d, f) / 1e9,
        "fraction_of_gemm": flops / median / gemm,
        "torch": torch.__version__}))


if __name__ == "__main__":
    main()
