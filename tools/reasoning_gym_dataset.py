#!/usr/bin/env python3
"""reasoning_gym_dataset.py: a Reasoning Gym task (https://github.com/open-thought/reasoning-gym, the
`reasoning-gym` package pinned in tools/python-requirements.txt) as rlj's prompt JSONL.

Writes, like `rlj dataset arithmetic`:
  OUT/train.jsonl   {"id": "train-<i>", "prompt": ..., "reference": <the task's answer>} per line
  OUT/eval.jsonl    {"id": "eval-<i>", ...}: held out, no question of it is in train.jsonl
  OUT/reasoning_gym.json   what the rows were made from (task, its config, seeds, sizes, prompt template), so
                    that examples/reasoning_gym_judge/judge.py can rebuild each row's own entry (question, answer,
                    metadata) from its id and score answers with the task's own score_answer.
The rows are entries of one `reasoning_gym.create_dataset(task, seed=--seed, size=..., **config)`: "train-<i>" is
entry i (i < --train), "eval-<i>" entry i past those. (Reasoning Gym draws entry i from Random(seed + i), so the
entries of seed s + 1 are those of seed s shifted by one: a second seed would not hold anything out.) The judge
gets the very same entry back from the id.

Usage (the project venv has the package: tools/install-deps.sh; `rlj dataset reasoning-gym` runs this):
  .venv/bin/python3 tools/reasoning_gym_dataset.py --task basic_arithmetic --out data/rg \
      --train 20000 --eval 500 --seed 1 --set min_terms=2 --set max_terms=2 --set 'operators=["+"]'
  .venv/bin/python3 tools/reasoning_gym_dataset.py --list      # the task names
"""

import argparse
import json
import os
import sys
import tempfile

MANIFEST = "reasoning_gym.json"


def parse_value(text):
    """A --set value: JSON when it parses (numbers, booleans, lists), else the string itself."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def package_version():
    try:
        from importlib.metadata import version
        return version("reasoning-gym")  # the package's own __version__ lags its releases
    except Exception:  # noqa: BLE001 - informational only
        return "unknown"


def task_config(args):
    config = json.loads(args.config) if args.config else {}
    if not isinstance(config, dict):
        raise SystemExit("--config must be a JSON object")
    for item in args.set or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"--set {item!r}: expected KEY=VALUE")
        config[key] = parse_value(value)
    return config


def create(reasoning_gym, task, config, seed, size):
    """The task's dataset; a list from JSON becomes the tuple Reasoning Gym's configs use."""
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in config.items()}
    return reasoning_gym.create_dataset(task, seed=seed, size=size, **kwargs)


def render(template, entry):
    return template.replace("{question}", entry["question"])


def reference(entry):
    answer = entry.get("answer")
    return None if answer is None else str(answer)


def write_atomically(path, text):
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-" + os.path.basename(path))
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def rows_text(rows):
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)


def main(argv=None):
    parser = argparse.ArgumentParser(description="A Reasoning Gym task as rlj's train.jsonl and eval.jsonl")
    parser.add_argument("--task", help="Reasoning Gym task name (--list prints them)")
    parser.add_argument("--out", help="Output directory")
    parser.add_argument("--train", type=int, default=2000, help="Training problems (default 2000)")
    parser.add_argument("--eval", type=int, default=200, help="Held-out problems (default 200)")
    parser.add_argument("--seed", type=int, default=1, help="Seed of the task's dataset (default 1)")
    parser.add_argument("--config", help="The task's config as a JSON object, e.g. '{\"max_terms\": 2}'")
    parser.add_argument("--set", action="append", metavar="KEY=VALUE",
                        help="One config key (repeatable; the value is JSON when it parses, else a string)")
    parser.add_argument("--template", default="{question}",
                        help="The prompt: the task's question substituted for {question} (default: the question)")
    parser.add_argument("--list", action="store_true", help="Print the task names and exit")
    args = parser.parse_args(argv)

    try:
        import reasoning_gym
        from reasoning_gym.factory import DATASETS
    except ImportError as e:
        print(f"reasoning_gym_dataset: the Python package reasoning-gym is not installed for {sys.executable} ({e}); "
              "tools/install-deps.sh installs tools/python-requirements.txt into the project venv (.venv)",
              file=sys.stderr)
        return 3
    if args.list:
        print("\n".join(sorted(DATASETS)))
        return 0
    if not args.task or not args.out:
        parser.error("--task and --out are required")
    if args.task not in DATASETS:
        print(f"reasoning_gym_dataset: unknown task {args.task!r}; --list prints the {len(DATASETS)} tasks",
              file=sys.stderr)
        return 2
    if args.train < 1 or args.eval < 0:
        parser.error("--train must be at least 1 and --eval at least 0")
    if "{question}" not in args.template:
        parser.error("--template must hold {question}")
    config = task_config(args)
    # Held out: entries past the training ones whose question is not among them (small tasks repeat questions),
    # each question once; up to 20x --eval (at least 1000) candidates. The size bounds the indices the judge takes.
    size = args.train + max(20 * args.eval, 1000)
    try:
        dataset = create(reasoning_gym, args.task, config, args.seed, size)
    except (TypeError, ValueError, AssertionError) as e:
        print(f"reasoning_gym_dataset: task {args.task} refuses the config {json.dumps(config)}: {e}", file=sys.stderr)
        return 2

    def row(split, i, entry):
        r = {"id": f"{split}-{i}", "prompt": render(args.template, entry)}
        if reference(entry) is not None:
            r["reference"] = reference(entry)
        return r

    train_rows, eval_rows, seen = [], [], set()
    for i in range(args.train):
        entry = dataset[i]
        seen.add(entry["question"])
        train_rows.append(row("train", i, entry))
    for i in range(args.train, size):
        if len(eval_rows) == args.eval:
            break
        entry = dataset[i]
        if entry["question"] in seen:
            continue
        seen.add(entry["question"])
        eval_rows.append(row("eval", i, entry))
    if len(eval_rows) < args.eval:
        print(f"reasoning_gym_dataset: only {len(eval_rows)} held-out questions of {args.task} are not in the "
              f"training split (asked for {args.eval}): the task's space is too small for these sizes",
              file=sys.stderr)
        return 2

    os.makedirs(args.out, exist_ok=True)
    manifest = {
        "generator": "tools/reasoning_gym_dataset.py",
        "reasoning_gym_version": package_version(),
        "task": args.task,
        "config": config,
        "template": args.template,
        "seed": args.seed,
        "size": size,
        "train": args.train,
    }
    write_atomically(os.path.join(args.out, "train.jsonl"), rows_text(train_rows))
    write_atomically(os.path.join(args.out, "eval.jsonl"), rows_text(eval_rows))
    write_atomically(os.path.join(args.out, MANIFEST), json.dumps(manifest, indent=2) + "\n")
    print(f"wrote {len(train_rows)} rows to {os.path.join(args.out, 'train.jsonl')}")
    print(f"wrote {len(eval_rows)} rows to {os.path.join(args.out, 'eval.jsonl')}")
    print(f"wrote {os.path.join(args.out, MANIFEST)} ({args.task}, for examples/reasoning_gym_judge/judge.py)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
