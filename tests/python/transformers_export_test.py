#!/usr/bin/env python3
"""transformers_export_test.py: Hugging Face transformers loads what `rlj export` writes, and computes what rlj does.

For each checkpoint kind rlj trains and exports (llama with tied embeddings, llama with grouped-query attention
and an untied head, llama with attention biases, qwen2 with its q/k/v biases, mistral with a sliding window
shorter than the sequence), in float32 and bfloat16: `rlj sft` trains a small byte-level model a little (so its
greedy choices have margins), `rlj export` writes it, and transformers' AutoModelForCausalLM and AutoTokenizer
load the directory. Then, on a fixed prompt:
  - the tokenizer files give the ids `rlj tokenize --prompt` gives;
  - rlj's greedy tokens (`rlj generate --json`, KV cache) are transformers' greedy tokens, and their
    log-probabilities agree within 1e-4 (bfloat16 weights are compared as float32, as rlj loads them);
  - the checked-in golden checkpoints (tests/golden/tiny_*, written by rlj) load too, and transformers' logits
    over the golden token sequence equal the NumPy reference of tests/golden/tiny_llama_logits.json (1e-4): the
    library users trust agrees with the golden file the C++ model tests compare against.

Needs torch and transformers (tools/python-requirements-heavy.txt, a venv of its own: transformers 4.46 needs the
Debian python3-torch 1.13 that matches rlj's libtorch, and tokenizers < 0.21).
Usage: python3 tests/python/transformers_export_test.py PATH/TO/rlj   (exit 77: skipped, the reason printed)
"""

import json
import os
import subprocess
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the checkout
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rlj_test_util as util  # noqa: E402

HEAVY = "tools/python-requirements-heavy.txt"
torch = util.require("torch", "torch (Debian python3-torch)", HEAVY)
transformers = util.require("transformers", requirements=HEAVY)

GOLDEN = os.path.join(util.SOURCE_DIR, "tests", "golden")
PROMPT = "12+34=46 7+8="  # longer than the mistral window (4): the window masks most positions
NEW_TOKENS = 8
TOLERANCE = 1e-4

# name -> the model section of the sft config (a byte vocabulary, so rlj's tokenizer and generate apply).
KINDS = {
    "llama-tied": dict(architecture="llama", tie_embeddings=True),
    "llama-gqa-untied": dict(architecture="llama", n_kv_heads=2, tie_embeddings=False),
    "llama-attention-bias": dict(architecture="llama", attention_bias=True, n_kv_heads=2),
    "qwen2": dict(architecture="qwen2", n_kv_heads=2, tie_embeddings=False),
    "mistral-window": dict(architecture="mistral", n_kv_heads=2, sliding_window=4, tie_embeddings=False),
}


def sft_config(dir, name, model):
    lines = [f"name: {name}", f"runs_root: {dir}/runs", "seed: 3", "runtime:", "  threads: 1", "model:",
             "  vocab_size: 259", "  d_model: 32", "  n_layers: 2", "  n_heads: 4", "  ffn_hidden: 64",
             "  max_seq_len: 32"]
    lines += [f"  {k}: {json.dumps(v)}" for k, v in model.items()]
    lines += ["sampling:", "  max_new_tokens: 8", "data:", f"  train_path: {dir}/train.jsonl", "sft:", "  steps: 60", "  batch_size: 16",
              "  lr: 1.0e-2", "  warmup_steps: 2"]
    path = os.path.join(dir, f"{name}.yaml")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


def load(exported):
    model = transformers.AutoModelForCausalLM.from_pretrained(exported, torch_dtype=torch.float32,
                                                              attn_implementation="eager")
    model.eval()
    return model


def logprobs_of(model, ids):
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0].double()
    return torch.log_softmax(logits, dim=-1)


def greedy(model, prompt_ids, eos):
    """transformers' greedy tokens: a full forward pass per step. (Not model.generate(): transformers 4.46 imports
    torch.distributed.fsdp there, which torch 1.13 cannot import on Python 3.11.)"""
    ids = list(prompt_ids)
    with torch.no_grad():
        for _ in range(NEW_TOKENS):
            token = int(model(torch.tensor([ids])).logits[0, -1].argmax())
            ids.append(token)
            if token == eos:
                break
    return ids[len(prompt_ids):]


def check_chat_template(rlj, exported, where):
    """rlj export writes rlj's chat template as Jinja too: transformers renders a chat as rlj does."""
    tokenizer = transformers.AutoTokenizer.from_pretrained(exported)
    assert tokenizer.chat_template, f"{where}: the export has rlj_chat_template but no Jinja chat_template"
    hf_chat = tokenizer.apply_chat_template([{"role": "user", "content": PROMPT}], tokenize=True,
                                            add_generation_prompt=True)
    rlj_chat = json.loads(util.run_rlj(rlj, ["tokenize", "--tokenizer", exported, "--prompt", "--chat-template", "auto"],
                                       input=json.dumps(PROMPT) + "\n"))
    assert list(hf_chat) == rlj_chat, (where, list(hf_chat), rlj_chat)


def check_golden_chat_template(rlj, dir):
    """tests/golden/tiny_byte_llama names rlj's plain template (rlj_chat_template) and no Jinja one."""
    exported = os.path.join(dir, "tiny-byte-llama-export")
    util.run_rlj(rlj, ["export", "--checkpoint", os.path.join(util.SOURCE_DIR, "tests", "golden", "tiny_byte_llama"),
                       "--out", exported])
    check_chat_template(rlj, exported, "tiny_byte_llama")


def check_kind(rlj, dir, name, model_section):
    checkpoint = os.path.join(dir, f"{name}-ckpt")
    util.run_rlj(rlj, ["sft", sft_config(dir, name, model_section), "--output", checkpoint])
    prompt_ids = json.loads(util.run_rlj(rlj, ["tokenize", "--tokenizer", "byte", "--prompt", "--chat-template", ""],
                                         input=json.dumps(PROMPT) + "\n"))
    for dtype in ("float32", "bfloat16"):
        exported = os.path.join(dir, f"{name}-{dtype}")
        util.run_rlj(rlj, ["export", "--checkpoint", checkpoint, "--out", exported, "--dtype", dtype])
        with open(os.path.join(exported, "config.json")) as f:
            config = json.load(f)
        model = load(exported)
        where = f"{name} {dtype}"
        assert config["model_type"] == model_section["architecture"], (where, config["model_type"])
        assert type(model).__name__ == config["architectures"][0], (where, type(model).__name__)
        if "sliding_window" in model_section:
            assert model.config.sliding_window == model_section["sliding_window"], where

        tokenizer = transformers.AutoTokenizer.from_pretrained(exported)
        assert tokenizer(PROMPT)["input_ids"] == prompt_ids, (where, tokenizer(PROMPT)["input_ids"], prompt_ids)
        with open(os.path.join(exported, "tokenizer_config.json")) as f:
            rlj_template = json.load(f).get("rlj_chat_template", "")
        if rlj_template:
            check_chat_template(rlj, exported, where)

        generated = json.loads(util.run_rlj(rlj, [
            "generate", "--model", exported, "--prompt-ids", ",".join(map(str, prompt_ids)), "--max-new-tokens",
            str(NEW_TOKENS), "--temperature", "0", "--json"]))
        ids = generated["ids"]
        assert generated["prompt_ids"] == prompt_ids, (where, generated["prompt_ids"])
        eos = tokenizer.eos_token_id
        hf = greedy(model, prompt_ids, eos)
        # rlj reports the tokens it generated, the stopping <eos> included when it stopped.
        assert ids == hf, f"{where}: rlj greedy {ids}, transformers greedy {hf}"
        table = logprobs_of(model, prompt_ids + ids)
        for i, (token, lp) in enumerate(zip(ids, generated["logprobs"])):
            row = table[len(prompt_ids) + i - 1]
            assert abs(row[token].item() - lp) < TOLERANCE, f"{where}: token {i}: transformers {row[token].item()}, rlj {lp}"
            top2 = torch.topk(row, 2).values
            assert row[token].item() == top2[0].item(), f"{where}: token {i} is not transformers' argmax"
        margins = [(table[len(prompt_ids) + i - 1].topk(2).values.diff().abs().item()) for i in range(len(ids))]
        print(f"# {where}: {len(ids)} greedy tokens agree (smallest margin {min(margins):.3g})")


def check_goldens(rlj, dir):
    with open(os.path.join(GOLDEN, "tiny_llama_logits.json")) as f:
        cases = json.load(f)["cases"]
    assert len(cases) >= 4
    for case in cases:
        # Written by rlj (Golden.DISABLED_WriteTinyCheckpoints) in the Hugging Face layout; their 48-token vocabulary
        # takes no tokenizer, so `rlj export` (which ships one) does not apply: transformers loads them as they are.
        model = load(os.path.join(GOLDEN, case["checkpoint"]))
        with torch.no_grad():
            logits = model(torch.tensor([case["tokens"]])).logits[0].double()
        expected = torch.tensor(case["logits"], dtype=torch.float64)
        assert logits.shape == expected.shape, (case["checkpoint"], logits.shape, expected.shape)
        diff = (logits - expected).abs().max().item()
        assert diff <= TOLERANCE, f"{case['checkpoint']}: transformers and the NumPy golden differ by {diff}"
        print(f"# golden {case['checkpoint']}: transformers' logits within {diff:.2g} of the NumPy reference")


def main():
    rlj = util.rlj_binary()
    torch.set_num_threads(1)
    checks = util.Checks()
    print(f"# torch {torch.__version__}, transformers {transformers.__version__}")
    with util.scratch_dir("rlj-transformers-") as dir:
        util.run_rlj(rlj, ["dataset", "arithmetic", "--out", dir, "--train", "200", "--eval", "20",
                           "--max-operand", "20"])
        checks.run("golden checkpoints: transformers' logits equal the NumPy reference", check_goldens, rlj, dir)
        checks.run("rlj's chat template reaches transformers' apply_chat_template", check_golden_chat_template, rlj, dir)
        for name, model_section in KINDS.items():
            checks.run(f"{name}: transformers loads rlj's export and agrees", check_kind, rlj, dir, name, model_section)
    checks.finish()


if __name__ == "__main__":
    main()
