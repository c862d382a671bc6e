#!/usr/bin/python3
# train_baseline.py: the Python baseline for `rlj bench train`: the same GRPO learner step in straightforward
# PyTorch on a random Llama-style model of the same shape (generate_baseline.py's model): policy forward +
# backward, frozen reference forward, PPO-clipped loss + k3 KL over the completion tokens (token mean), global
# grad-norm clip 1.0, AdamW. Same data layout as the C++ bench: batch sequences of seq_len tokens, a quarter
# prompt, groups of 4 with rewards 0/1, GRPO advantages. Prints one JSON line with the same fields.
#   OMP_WAIT_POLICY=PASSIVE /usr/bin/python3 bench/python/train_baseline.py --batch 16 --seq-len 80 --threads 2
import argparse
import copy
import json
import math
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from generate_baseline import Llama, gemm_rate  # noqa: E402


def forward_logits(model, tokens):
    caches = [None] * len(model.layers)
    logits, _ = model(tokens, 0, caches)
    return logits


def token_logprobs(logits, targets):
    return torch.log_softmax(logits.float(), dim=-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)


def main():
    parser = argparse.ArgumentParser(description="Python baseline for rlj bench train")
    for name, default in [("layers", 4), ("d-model", 256), ("heads", 8), ("ffn", 1024), ("vocab", 256), ("batch", 16),
                          ("seq-len", 80), ("group-size", 4), ("threads", 2), ("repeats", 5), ("seed", 1)]:
        parser.add_argument("--" + name, type=int, default=default)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    b, s, g = args.batch, args.seq_len, args.group_size
    policy = Llama(args.layers, args.d_model, args.heads, args.ffn, args.vocab, s).train()
    reference = copy.deepcopy(policy).eval()
    for p in reference.parameters():
        p.requires_grad_(False)
    optimizer = torch.optim.AdamW(policy.parameters(), lr=1e-5, betas=(0.9, 0.99), eps=1e-8, weight_decay=0.0)

    generator = torch.Generator().manual_seed(args.seed)
    prompt_len = max(1, s // 4)
    tokens = torch.randint(0, args.vocab, (b, s), generator=generator)
    for row in range(b):  # one prompt per group
        tokens[row, :prompt_len] = tokens[row - row % g, :prompt_len]
    inputs, targets = tokens[:, :-1], tokens[:, 1:]
    mask = torch.zeros(b, s - 1)
    mask[:, prompt_len - 1:] = 1.0  # targets that are completion tokens
    behaviour = -math.log(args.vocab) + 0.05 * torch.randn(b, s - 1, generator=generator)
    rewards = (torch.arange(b) % 2).float().view(b // g, g)
    mean, std = rewards.mean(1, keepdim=True), rewards.std(1, keepdim=True)  # unbiased, as GRPO
    advantages = ((rewards - mean) / (std + 1e-6)).view(b, 1)
    clip, kl_coef = 0.2, 0.04

    def step():
        with torch.no_grad():
            ref = token_logprobs(forward_logits(reference, inputs), targets)
        logp = token_logprobs(forward_logits(policy, inputs), targets)
        ratio = torch.exp(logp - behaviour)
        pg = -torch.min(ratio * advantages, ratio.clamp(1 - clip, 1 + clip) * advantages)
        kl = torch.exp(ref - logp) - (ref - logp) - 1
        loss = ((pg + kl_coef * kl) * mask).sum() / mask.sum()
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(policy.parameters(), 1.0)
        optimizer.step()
        return loss.item(), ((kl * mask).sum() / mask.sum()).item()

    step()  # warm-up
    seconds = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        loss, kl = step()
        seconds.append(time.perf_counter() - start)
    seconds.sort()
    median = seconds[len(seconds) // 2]
    d, f, v, layers = args.d_model, args.ffn, args.vocab, args.layers
    positions = b * (s - 1)
    linear_weights = layers * (4 * d * d + 3 * d * f) + v * d
    attention_forward = 4.0 * (s - 1) * d * layers * positions
    flops = 8.0 * linear_weights * positions + 4.0 * attention_forward
    gemm = gemm_rate(1024, 1024, 1024)
    print(json.dumps({
        "bench": "train", "impl": "python-pytorch", "layers": layers, "d_model": d, "heads": args.heads, "ffn": f,
        "vocab": v, "batch": b, "seq_len": s, "threads": args.threads,
        "params": sum(t.numel() for t in policy.parameters()), "tokens_per_step": b * s,
        "completion_tokens_per_step": int(mask.sum().item()), "seconds": median, "tokens_per_s": b * s / median,
        "best_tokens_per_s": b * s / seconds[0], "completion_tokens_per_s": mask.sum().item() / median,
        "gflops": flops / median / 1e9, "gemm_gflops_1024": gemm / 1e9,
        "gemm_gflops_step_shape": gemm_rate(positions, d, f) / 1e9, "fraction_of_gemm": flops / median / gemm,
        "loss": loss, "kl": kl, "torch": torch.__version__}))


if __name__ == "__main__":
    main()
