#!/usr/bin/env python3
"""judge.py: a `command` judge for Reasoning Gym tasks: the reward is the task's own score_answer.

rlj starts it once (judge.command.argv, no shell) and writes one JSON request per line on its stdin (`id`,
`prompt`, `completion`, `reference`, `prompt_id`, ...); it answers one JSON line per request on stdout:
{"id", "reward", "components", "rationale"} or {"id", "error", "kind"}.

  judge.py --dataset DIR   DIR holds reasoning_gym.json, written with train.jsonl and eval.jsonl by
                           `rlj dataset reasoning-gym` (tools/reasoning_gym_dataset.py): a request's prompt_id
                           ("train-17", "eval-5012") names the task's own entry (question, answer, metadata),
                           rebuilt here from the task, its config and seed, and the entry's score_answer grades
                           the completion. Prompts of other ids (canaries, a hand-written eval set) are scored
                           against {"question": prompt, "answer": reference}.
  judge.py --task NAME     no dataset: every request is scored against {"question": prompt, "answer": reference}
                           (enough for tasks whose score_answer reads only the answer).

The answer is the completion's <answer>...</answer> when it has one (Reasoning Gym's convention), else the whole
completion, stripped. Needs the `reasoning-gym` package: run it with the project venv's python
(.venv/bin/python3, tools/install-deps.sh). See examples/README.md and configs/reasoning-gym.yaml.
"""

import argparse
import json
import os
import sys


def load(args):
    import reasoning_gym

    if args.dataset:
        with open(os.path.join(args.dataset, "reasoning_gym.json")) as f:
            manifest = json.load(f)
        config = {k: tuple(v) if isinstance(v, list) else v for k, v in manifest["config"].items()}
        dataset = reasoning_gym.create_dataset(manifest["task"], seed=manifest["seed"], size=manifest["size"], **config)
        return dataset, manifest
    dataset = reasoning_gym.create_dataset(args.task, seed=0, size=1)
    return dataset, None


def entry_for(request, dataset, manifest):
    """The task's entry for a request: its own one when prompt_id names one, else the prompt and reference."""
    if manifest is not None:
        split, _, index = str(request.get("prompt_id", "")).rpartition("-")
        if split in ("train", "eval") and index.isdigit() and int(index) < manifest["size"]:
            i = int(index)
            if (split == "train") != (i < manifest["train"]):
                return None, f"prompt_id {request['prompt_id']} is not an index of the {split} split"
            entry = dataset[i]
            expected = manifest["template"].replace("{question}", entry["question"])
            if expected != request["prompt"]:
                return None, (f"prompt_id {request['prompt_id']} names the question {expected!r}, but the prompt is "
                              f"{request['prompt']!r}: the dataset was not made from {manifest['task']} with this "
                              "reasoning_gym.json")
            return entry, None
    if not request.get("reference"):
        return None, "the sample has no reference and its prompt_id names no entry of the dataset"
    return {"question": request["prompt"], "answer": request["reference"], "metadata": {}}, None


def extract(completion):
    begin, end = completion.find("<answer>"), completion.rfind("</answer>")
    if begin >= 0 and end > begin:
        return completion[begin + len("<answer>"):end].strip()
    return completion.strip()


def main():
    parser = argparse.ArgumentParser(description="Reasoning Gym's score_answer as an rlj command judge")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--dataset", help="Directory with reasoning_gym.json (rlj dataset reasoning-gym --out)")
    source.add_argument("--task", help="Task name, when there is no dataset directory")
    args = parser.parse_args()
    dataset, manifest = load(args)

    for line in sys.stdin:
        request = json.loads(line)
        entry, why = entry_for(request, dataset, manifest)
        if entry is None:
            answer = {"id": request["id"], "error": why, "kind": "invalid"}
        else:
            given = extract(request.get("completion", ""))
            try:
                reward = float(dataset.score_answer(given, entry))
            except Exception as e:  # noqa: BLE001 - a task's scorer failing on odd input is this sample's error
                answer = {"id": request["id"], "error": f"score_answer failed: {type(e).__name__}: {e}",
                          "kind": "invalid"}
            else:
                answer = {"id": request["id"], "reward": reward,
                          "components": {"score_answer": reward, "exact": float(given == str(entry.get("answer")))},
                          "rationale": f"score_answer({given!r}) against {entry.get('answer')!r}"}
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
