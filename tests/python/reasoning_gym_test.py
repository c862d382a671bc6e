#!/usr/bin/env python3
"""reasoning_gym_test.py: Reasoning Gym (the `reasoning-gym` package, pinned in tools/python-requirements.txt) as
an externally written verifiable task for rlj.

1. tools/reasoning_gym_dataset.py (what `rlj dataset reasoning-gym` runs) writes train.jsonl / eval.jsonl that
   rlj loads: the task's questions and answers, held-out questions disjoint from the training ones, and
   reasoning_gym.json. With an rlj that has the subcommand, `rlj dataset reasoning-gym` writes the same files.
2. examples/reasoning_gym_judge/judge.py, started from the argv of configs/reasoning-gym.yaml and fed request lines
   as rlj's command backend writes them (judge/backends/command_backend.cc), rewards a right answer 1, a wrong one
   0, and in general exactly what the task's own score_answer gives for the task's own entry; it refuses (an
   error, not a reward) a prompt that is not the one its id names.
3. A short `rlj run` of configs/reasoning-gym.yaml (a tiny random student, 2 steps; the judge an ensemble of that
   command judge and a rule that gives a random model a learning signal) has every sample scored by the judge
   through rlj's own command backend, with no failed verdict, and `rlj logs rescore` with the example's judge
   section agrees.

Usage: python3 tests/python/reasoning_gym_test.py PATH/TO/rlj   (exit 77: skipped, the reason printed)
"""

import json
import os
import sqlite3
import subprocess
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the checkout
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rlj_test_util as util  # noqa: E402

reasoning_gym = util.require("reasoning_gym", "reasoning-gym")
yaml = util.require("yaml", "pyyaml")

SCRIPT = os.path.join(util.SOURCE_DIR, "tools", "reasoning_gym_dataset.py")
EXAMPLE_CONFIG = os.path.join(util.SOURCE_DIR, "configs", "reasoning-gym.yaml")
TASK = "basic_arithmetic"
TASK_SETS = ["min_terms=2", "max_terms=2", "max_digits=2", 'operators=["+"]', "allow_parentheses=false",
             "allow_negation=false"]
TASK_CONFIG = dict(min_terms=2, max_terms=2, max_digits=2, operators=("+",), allow_parentheses=False,
                   allow_negation=False)
TRAIN, EVAL, SEED = 300, 40, 7


def dataset_args(out):
    args = ["--task", TASK, "--out", out, "--train", str(TRAIN), "--eval", str(EVAL), "--seed", str(SEED)]
    for item in TASK_SETS:
        args += ["--set", item]
    return args


def read_jsonl(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def check_dataset(rlj, dir):
    out = os.path.join(dir, "data")
    subprocess.run([sys.executable, SCRIPT, *dataset_args(out)], check=True, capture_output=True, text=True)
    train, held_out = read_jsonl(os.path.join(out, "train.jsonl")), read_jsonl(os.path.join(out, "eval.jsonl"))
    with open(os.path.join(out, "reasoning_gym.json")) as f:
        manifest = json.load(f)
    assert manifest["task"] == TASK and manifest["seed"] == SEED and manifest["train"] == TRAIN, manifest
    assert len(train) == TRAIN and len(held_out) == EVAL, (len(train), len(held_out))
    # The task's own entries, generated here independently: same questions and answers, in order.
    reference = reasoning_gym.create_dataset(TASK, seed=SEED, size=manifest["size"], **TASK_CONFIG)
    for row in train + held_out:
        assert set(row) == {"id", "prompt", "reference"}, row
        index = int(row["id"].split("-")[1])
        assert row["prompt"] == reference[index]["question"] and row["reference"] == reference[index]["answer"], row
    assert [r["id"] for r in train] == [f"train-{i}" for i in range(TRAIN)]
    assert all(int(r["id"].split("-")[1]) >= TRAIN for r in held_out)
    train_questions = {r["prompt"] for r in train}
    assert not any(r["prompt"] in train_questions for r in held_out), "a held-out question is in train.jsonl"
    assert len({r["prompt"] for r in held_out}) == EVAL
    # rlj reads the rows (its loader checks every line): grading rows need integer references, as these are.
    grading = os.path.join(dir, "grading.jsonl")
    util.run_rlj(rlj, ["dataset", "grading", "--from", os.path.join(out, "train.jsonl"), "--out", grading])
    assert len(read_jsonl(grading)) >= TRAIN

    # `rlj dataset reasoning-gym`, where this rlj has it, is the same script with the project venv's Python.
    help_text = subprocess.run([rlj, "dataset", "--help"], capture_output=True, text=True).stdout
    if "reasoning-gym" in help_text:
        via_rlj = os.path.join(dir, "via-rlj")
        # rlj finds the script in the checkout above its own directory (build/rlj); a binary elsewhere is told.
        in_checkout = os.path.exists(os.path.join(os.path.dirname(os.path.dirname(rlj)), "tools",
                                                  "reasoning_gym_dataset.py"))
        script = [] if in_checkout else ["--script", SCRIPT]
        util.run_rlj(rlj, ["dataset", "reasoning-gym", "--python", sys.executable, *script, *dataset_args(via_rlj)])
        for name in ("train.jsonl", "eval.jsonl", "reasoning_gym.json"):
            with open(os.path.join(out, name)) as a, open(os.path.join(via_rlj, name)) as b:
                assert a.read() == b.read(), f"rlj dataset reasoning-gym wrote another {name}"
        missing = subprocess.run([rlj, "dataset", "reasoning-gym", "--python", "/nonexistent/python3", *script,
                                  *dataset_args(os.path.join(dir, "x"))], capture_output=True, text=True)
        assert missing.returncode != 0 and "/nonexistent/python3" in missing.stderr, missing.stderr
    else:
        print("# this rlj has no `rlj dataset reasoning-gym` yet: checked the script alone")
    return out, train, held_out, manifest


def example_judge_argv(data_dir):
    """judge.command.argv of configs/reasoning-gym.yaml, with this venv's Python and the test's data."""
    with open(EXAMPLE_CONFIG) as f:
        config = yaml.safe_load(f)
    argv = list(config["judge"]["command"]["argv"])
    assert argv[0] == ".venv/bin/python3" and argv[1] == "examples/reasoning_gym_judge/judge.py", argv
    argv[0], argv[1] = sys.executable, os.path.join(util.SOURCE_DIR, argv[1])
    argv[argv.index("--dataset") + 1] = data_dir
    return config, argv


def request_line(id, row, completion, prompt_id=None, prompt=None):
    """A request exactly as judge/backends/command_backend.cc writes it (RequestLine)."""
    return json.dumps({"id": id, "prompt": row["prompt"] if prompt is None else prompt, "completion": completion,
                       "reference": row.get("reference", ""), "prompt_id": row["id"] if prompt_id is None else prompt_id,
                       "group_id": "actor-0-abc-g1", "index_in_group": 0, "policy_version": 3, "metadata": {}},
                      separators=(",", ":"))


def check_judge(data):
    out, train, held_out, manifest = data
    _, argv = example_judge_argv(out)
    entries = reasoning_gym.create_dataset(TASK, seed=SEED, size=manifest["size"], **TASK_CONFIG)
    row, other = train[5], held_out[3]
    answer = row["reference"]
    wrong = str(int(answer) + 1)
    cases = [  # (id, request, expected reward or None for an error)
        ("right", request_line("s1", row, answer), 1.0),
        ("right with spaces", request_line("s2", row, f" {answer}\n"), 1.0),
        ("wrong", request_line("s3", row, wrong), 0.0),
        ("answer tags", request_line("s4", row, f"thinking...<answer>{answer}</answer>"), 1.0),
        ("partial", request_line("s5", row, f"= {answer} ok"), None),  # score_answer's partial credit, below
        ("held out, right", request_line("s6", other, other["reference"]), 1.0),
        ("held out, wrong", request_line("s7", other, "0"), 0.0),
        ("canary id, reference", request_line("s8", row, answer, prompt_id="canary-7"), 1.0),
        ("prompt not its id's", request_line("s9", row, answer, prompt=other["prompt"]), "error"),
        ("split not its index's", request_line("s10", row, answer, prompt_id=f"eval-{int(row['id'][6:])}"), "error"),
    ]
    stdin = "".join(line + "\n" for _, line, _ in cases)
    result = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    answers = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(answers) == len(cases), result.stdout + result.stderr
    for (name, line, expected), got in zip(cases, answers):
        request = json.loads(line)
        assert got["id"] == request["id"], (name, got)
        if expected == "error":
            assert "reward" not in got and got.get("kind") == "invalid" and got.get("error"), (name, got)
            continue
        assert "error" not in got, (name, got)
        index = int(request["prompt_id"].split("-")[1]) if not request["prompt_id"].startswith("canary") else None
        entry = entries[index] if index is not None else entries[int(row["id"].split("-")[1])]
        given = request["completion"].strip()
        if "<answer>" in given:
            given = given.split("<answer>")[1].split("</answer>")[0].strip()
        own = entries.score_answer(given, entry)  # the task's own verdict on the same answer
        assert got["reward"] == own, (name, got, own)
        if expected is not None:
            assert got["reward"] == expected, (name, got)
        else:
            assert 0 < got["reward"] < 1, (name, got)
        assert got["components"]["score_answer"] == got["reward"]


def check_run(rlj, dir, data):
    out, _, _, manifest = data
    config, argv = example_judge_argv(out)
    entries = reasoning_gym.create_dataset(TASK, seed=SEED, size=manifest["size"], **TASK_CONFIG)
    # The example config, shrunk: a random tiny student, 2 steps; the judge an ensemble of the example's command
    # judge (weight 1) and a rule that a random model gets a signal from (weight 0.5): a random student never
    # answers right, and a batch whose rewards are all equal is not a step.
    config.update(name="rg-test", runs_root=os.path.join(dir, "runs"))
    config["model"] = dict(vocab_size=259, d_model=32, n_layers=2, n_heads=2, ffn_hidden=64, max_seq_len=32)
    config["data"] = dict(train_path=os.path.join(out, "train.jsonl"), eval_path=os.path.join(out, "eval.jsonl"))
    config["sampling"].update(group_size=4, max_new_tokens=4)
    command = dict(config["judge"]["command"], argv=argv)
    config["judge"] = {
        "backend": "ensemble",
        "rule": config["judge"]["rule"],
        "backends": {"rg": {"backend": "command", "command": command},
                     "signal": {"backend": "rule", "rule": {"mode": "regex", "pattern": "^[ -~]"}}},
        "ensemble": {"mode": "weighted", "components": [{"name": "rg", "backend": "rg", "weight": 1.0},
                                                         {"name": "signal", "backend": "signal", "weight": 0.5}]},
    }
    config["learner"].update(steps=2, groups_per_step=4)
    config["actor"].update(prompts_per_batch=4)
    config["eval"] = dict(batch_size=40, max_prompts=20, judge="rg")
    config.pop("sft", None)
    path = os.path.join(dir, "rg-test.yaml")
    with open(path, "w") as f:
        yaml.safe_dump(config, f)
    util.run_rlj(rlj, ["run", path], timeout=300)

    run_dir = os.path.join(dir, "runs", "rg-test")
    with open(os.path.join(run_dir, "summary.json")) as f:
        summary = json.load(f)
    assert summary["steps"] == 2, summary
    rows = []
    for name in os.listdir(os.path.join(run_dir, "reward_log")):
        if name.endswith(".sqlite"):
            with sqlite3.connect(os.path.join(run_dir, "reward_log", name)) as db:
                db.row_factory = sqlite3.Row
                rows += [dict(r) for r in db.execute("select * from verdicts where kind = 'train'")]
    assert len(rows) >= 2 * 4 * 4, len(rows)
    for r in rows:
        assert r["error_kind"] == "" and r["reward"] is not None, (r["error_kind"], r["error_message"])
        components = json.loads(r["components_json"])
        assert "rg" in components, components
        # The command judge's reward, through rlj, is the task's score_answer of the completion for the row's entry.
        entry = entries[int(r["prompt_id"].split("-")[1])]
        assert entry["question"] == r["prompt"], r
        assert components["rg"] == entries.score_answer(r["completion"].strip(), entry), r
        assert components["rg.score_answer"] == components["rg"]
        assert r["reward"] == components["rg"] + 0.5 * components["signal"], r
    # Held-out reward before and after from eval.judge: the command judge (a number: no verdict failed).
    for point in read_jsonl(os.path.join(run_dir, "eval_curve.jsonl")):
        assert point["reward"] is not None and point["reward"] == point["reward"], point

    # Offline re-scoring of the logged samples with the example's own judge section (the command backend alone).
    rescore_config = os.path.join(dir, "rescore.yaml")
    with open(rescore_config, "w") as f:
        yaml.safe_dump({"judge": {"backend": "command", "command": command}}, f)
    text = util.run_rlj(rlj, ["logs", run_dir, "rescore", "--judge", rescore_config, "--json"])
    rescored = json.loads(text[text.index("{"):])
    assert rescored["failed"] == 0 and rescored["rows"] >= len(rows), rescored
    print(f"# rlj run: {len(rows)} samples scored by the command judge through rlj; rescore: {rescored['rows']} rows,"
          f" {rescored['failed']} failed")


def main():
    rlj = util.rlj_binary()
    checks = util.Checks()
    with util.scratch_dir("rlj-reasoning-gym-") as dir:
        data = []
        checks.run("tools/reasoning_gym_dataset.py writes rlj's JSONL", lambda: data.append(check_dataset(rlj, dir)))
        if data:
            checks.run("the example judge scores as the task's score_answer does", check_judge, data[0])
            checks.run("rlj runs the example config's judge through its command backend", check_run, rlj, dir, data[0])
    checks.finish()


if __name__ == "__main__":
    main()
