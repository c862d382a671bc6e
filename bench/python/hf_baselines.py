#!/usr/bin/env python3
# hf_baselines.py: what users would pick instead of rlj, on the same GPU and the same model shape as `rlj bench
# generate` / `rlj bench train --device cuda` (a random Qwen2-style model, Hugging Face's Qwen2ForCausalLM(config),
# no download): Hugging Face transformers' generate (bf16, sdpa) and a plain PyTorch GRPO step on that model
# (policy forward + backward, frozen reference forward, PPO-clipped loss + k3 KL over completion tokens, grad clip
# 1.0, AdamW, bf16 autocast). One JSON line each, with the fields of the C++ benches; FLOPs are counted as they do.
#   python3 bench/python/hf_baselines.py generate --device cuda --batch 64 --prompt-len 128 --new-tokens 256
#   python3 bench/python/hf_baselines.py train --device cuda --batch 16 --seq-len 1024 --peak-tflops 790
# Shape flags as the C++ benches: --layers --d-model --heads --kv-heads --ffn --vocab --rope-theta.
import argparse
import contextlib
import json
import math
import time

import torch
import transformers


def model_config(args, max_positions):
    return transformers.Qwen2Config(
        vocab_size=args.vocab, hidden_size=args.d_model, intermediate_size=args.ffn, num_hidden_layers=args.layers,
        num_attention_heads=args.heads, num_key_value_heads=args.kv_heads or args.heads,
        max_position_embeddings=max_positions, rope_theta=args.rope_theta, tie_word_embeddings=True,
        use_sliding_window=False)


def attention_kind():
    # sdpa needs torch >= 2.1.1 in transformers; the Debian CPU torch 1.13 of a dry run gets eager attention.
    major, minor = (int(part) for part in torch.__version__.split(".")[:2])
    return "sdpa" if (major, minor) >= (2, 1) else "eager"


def build(args, max_positions, dtype):
    torch.manual_seed(args.seed)
    config = model_config(args, max_positions)
    config._attn_implementation = attention_kind()
    return transformers.Qwen2ForCausalLM(config).to(device=args.device, dtype=dtype)


def sync(device):
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def linear_weights(args):
    d, f, v = args.d_model, args.ffn, args.vocab
    kv = d // args.heads * (args.kv_heads or args.heads)
    return args.layers * (2 * d * d + 2 * d * kv + 3 * d * f) + v * d


def gemm_tflops(device, dtype, n=8192):
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    torch.mm(a, b)
    best = 1e9
    for _ in range(5):
        sync(device)
        start = time.perf_counter()
        torch.mm(a, b)
        sync(device)
        best = min(best, time.perf_counter() - start)
    return 2.0 * n ** 3 / best / 1e12


def common_fields(args, dtype, impl, params):
    return {"impl": impl, "architecture": "qwen2", "layers": args.layers, "d_model": args.d_model,
            "heads": args.heads, "kv_heads": args.kv_heads or args.heads, "ffn": args.ffn, "vocab": args.vocab,
            "device": args.device, "dtype": str(dtype).replace("torch.", ""), "params": params,
            "torch": torch.__version__, "transformers": transformers.__version__, "attention": attention_kind()}


def bench_generate(args):
    if attention_kind() == "eager":
        # A dry run on Debian's torch 1.13: transformers 4.46's generate imports torch.distributed.fsdp to ask
        # whether the model is sharded, which torch 1.13 cannot import on Python 3.11. It is not sharded.
        import transformers.generation.utils as generation_utils
        generation_utils.is_fsdp_managed_module = lambda module: False
    dtype = torch.bfloat16 if args.device.startswith("cuda") else torch.float32
    model = build(args, args.prompt_len + args.new_tokens, dtype).eval()
    generator = torch.Generator().manual_seed(args.seed)
    prompts = torch.randint(0, args.vocab, (args.batch, args.prompt_len), generator=generator).to(args.device)
    mask = torch.ones_like(prompts)
    # Sampling at temperature 1 over the whole vocabulary, exactly new_tokens each (no stop token), as rlj's bench.
    settings = dict(do_sample=True, temperature=1.0, top_k=0, top_p=1.0, max_new_tokens=args.new_tokens,
                    min_new_tokens=args.new_tokens, pad_token_id=0, eos_token_id=None, use_cache=True)
    with torch.inference_mode():
        model.generate(prompts, attention_mask=mask, **settings)  # warm-up
        seconds = []
        for _ in range(args.repeats):
            sync(args.device)
            start = time.perf_counter()
            out = model.generate(prompts, attention_mask=mask, **settings)
            sync(args.device)
            seconds.append(time.perf_counter() - start)
    generated = (out.shape[1] - args.prompt_len) * args.batch
    seconds.sort()
    median = seconds[len(seconds) // 2]
    d, layers, b, p, n = args.d_model, args.layers, args.batch, args.prompt_len, args.new_tokens
    attention = sum(4.0 * q * d * layers for q in range(1, p + 1)) * b
    attention += sum(4.0 * (p + s + 1) * d * layers * b for s in range(n - 1))
    flops = 2.0 * linear_weights(args) * (b * p + b * (n - 1)) + attention
    line = {"bench": "generate", **common_fields(args, dtype, "hf-transformers-generate",
                                                 sum(t.numel() for t in model.parameters())),
            "batch": b, "prompt_len": p, "new_tokens": n, "generated_tokens": generated, "seconds": median,
            "tokens_per_s": generated / median, "best_tokens_per_s": generated / seconds[0],
            "gflops": flops / median / 1e9}
    print(json.dumps(line), flush=True)


def bench_train(args):
    gpu = args.device.startswith("cuda")
    b, s, g = args.batch, args.seq_len, args.group_size
    policy = build(args, s, torch.float32).train()
    reference = build(args, s, torch.float32).eval()
    reference.load_state_dict(policy.state_dict())
    for parameter in reference.parameters():
        parameter.requires_grad_(False)
    fused = {"fused": True} if gpu else {}  # the fused CUDA AdamW, as a user on a GPU would pick
    optimizer = torch.optim.AdamW(policy.parameters(), lr=1e-5, betas=(0.9, 0.99), eps=1e-8, weight_decay=0.0,
                                  **fused)
    generator = torch.Generator().manual_seed(args.seed)
    prompt_len = max(1, s // 4)
    tokens = torch.randint(0, args.vocab, (b, s), generator=generator)
    for row in range(b):  # one prompt per group
        tokens[row, :prompt_len] = tokens[row - row % g, :prompt_len]
    tokens = tokens.to(args.device)
    inputs, targets = tokens[:, :-1], tokens[:, 1:]
    mask = torch.zeros(b, s - 1, device=args.device)
    mask[:, prompt_len - 1:] = 1.0
    behaviour = (-math.log(args.vocab) + 0.05 * torch.randn(b, s - 1, generator=generator)).to(args.device)
    rewards = (torch.arange(b) % 2).float().view(b // g, g)
    advantages = ((rewards - rewards.mean(1, keepdim=True)) / (rewards.std(1, keepdim=True) + 1e-6)).view(b, 1)
    advantages = advantages.to(args.device)
    clip, kl_coef = 0.2, 0.04
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if gpu else contextlib.nullcontext()

    def logprobs(model, micro):
        with autocast:
            logits = model(inputs[micro]).logits
        return torch.log_softmax(logits.float(), dim=-1).gather(-1, targets[micro].unsqueeze(-1)).squeeze(-1)

    # Micro-batches of micro_batch rows, or of micro_batch_tokens / seq_len rows as rlj's learner.micro_batch_tokens
    # (0 = all), gradients accumulated.
    rows = args.micro_batch or (max(1, args.micro_batch_tokens // s) if args.micro_batch_tokens else b)
    chunks = [slice(start, min(b, start + rows)) for start in range(0, b, rows)]

    def step():
        optimizer.zero_grad(set_to_none=True)
        total = mask.sum()
        for micro in chunks:
            with torch.no_grad():
                ref = logprobs(reference, micro)
            logp = logprobs(policy, micro)
            ratio = torch.exp(logp - behaviour[micro])
            adv = advantages[micro]
            pg = -torch.min(ratio * adv, ratio.clamp(1 - clip, 1 + clip) * adv)
            kl = torch.exp(ref - logp) - (ref - logp) - 1
            loss = ((pg + kl_coef * kl) * mask[micro]).sum() / total
            loss.backward()
        torch.nn.utils.clip_grad_norm_(policy.parameters(), 1.0)
        optimizer.step()
        return loss.item()

    step()  # warm-up
    seconds = []
    for _ in range(args.repeats):
        sync(args.device)
        start = time.perf_counter()
        step()
        sync(args.device)
        seconds.append(time.perf_counter() - start)
    seconds.sort()
    median = seconds[len(seconds) // 2]
    positions = b * (s - 1)
    attention_forward = 4.0 * (s - 1) * args.d_model * args.layers * positions
    flops = 8.0 * linear_weights(args) * positions + 4.0 * attention_forward
    dtype = torch.bfloat16 if gpu else torch.float32
    line = {"bench": "train", **common_fields(args, dtype, "pytorch-hf-model-grpo-step",
                                              sum(t.numel() for t in policy.parameters())),
            "batch": b, "seq_len": s, "tokens_per_step": b * s, "seconds": median, "tokens_per_s": b * s / median,
            "best_tokens_per_s": b * s / seconds[0], "gflops": flops / median / 1e9, "micro_batch_rows": rows}
    if args.peak_tflops > 0:
        line["mfu"] = flops / median / (args.peak_tflops * 1e12)
    if gpu:
        line["gemm_gflops_8192"] = gemm_tflops(args.device, dtype) * 1e3
        line["peak_memory_gb"] = torch.cuda.max_memory_allocated() / 1e9
    print(json.dumps(line), flush=True)


def main():
    parser = argparse.ArgumentParser(description="Hugging Face / PyTorch baselines for rlj bench on one device")
    parser.add_argument("bench", choices=["generate", "train"])
    for name, default in [("layers", 4), ("d-model", 256), ("heads", 8), ("kv-heads", 0), ("ffn", 1024),
                          ("vocab", 256), ("batch", 16), ("prompt-len", 16), ("new-tokens", 64), ("seq-len", 80),
                          ("group-size", 4), ("micro-batch", 0), ("micro-batch-tokens", 0), ("repeats", 3), ("seed", 1), ("threads", 0)]:
        parser.add_argument("--" + name, type=int, default=default)
    parser.add_argument("--rope-theta", type=float, default=10000.0)
    parser.add_argument("--architecture", default="qwen2", choices=["qwen2"], help="the C++ benches' flag")
    parser.add_argument("--peak-tflops", type=float, default=0.0)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    bench_generate(args) if args.bench == "generate" else bench_train(args)


if __name__ == "__main__":
    main()
