#!/usr/bin/env python3
"""tensorboard_test.py: a short `rlj run` (tiny model, rule judge with canaries and self-consistency, periodic
held-out evaluation), then TensorBoard's own code reads `<run dir>/tensorboard` as `tensorboard --logdir` would
(the plugin event multiplexer, each record's CRC checked by TensorBoard's record reader) and must see every tag
docs/CONFIG.md lists (and no learner/judge tag it does not), with finite values at increasing steps that agree
with metrics.jsonl, eval_curve.jsonl and the reward log.

Usage: python3 tests/python/tensorboard_test.py PATH/TO/rlj   (exit 77: skipped, the reason printed)
"""

import glob
import json
import math
import os
import re
import sqlite3
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the checkout
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rlj_test_util as util  # noqa: E402

util.require("tensorboard")
from tensorboard.backend.event_processing import plugin_event_multiplexer  # noqa: E402
from tensorboard.compat.proto import event_pb2  # noqa: E402
from tensorboard.compat.tensorflow_stub import errors, pywrap_tensorflow  # noqa: E402
from tensorboard.util import tensor_util  # noqa: E402

STEPS = 4
CONFIG = """name: tiny
runs_root: {dir}/runs
runtime:
  threads: 1
model:
  d_model: 32
  n_layers: 2
  n_heads: 2
  ffn_hidden: 64
  max_seq_len: 24
data:
  train_path: {dir}/train.jsonl
  eval_path: {dir}/eval.jsonl
sampling:
  group_size: 4
  max_new_tokens: 4
judge:
  rule:
    mode: regex
    pattern: "^[ -~]"
quality:
  canary_path: {dir}/canaries.jsonl
  canary_rate: 0.2
  self_consistency_rate: 0.2
learner:
  steps: {steps}
  groups_per_step: 4
  lr: 1.0e-3
  max_staleness: 4
actor:
  count: 1
  prompts_per_batch: 4
eval:
  every_steps: 2
"""


def documented_tags():
    """The tags docs/CONFIG.md lists, by the directory under tensorboard/ they are written to."""
    with open(os.path.join(util.SOURCE_DIR, "docs", "CONFIG.md")) as f:
        text = f.read()
    tags = {"learner": set(), "judge": set(), "run": set()}
    for tag in re.findall(r"`((?:learner|judge|eval)/[a-z_]+)`", text):
        tags["run" if tag.startswith("eval/") else tag.split("/")[0]].add(tag)
    tags["judge"].discard("judge/reward")  # the histogram
    return tags


def read_records(path):
    """Every event of one file through TensorBoard's record reader, which checks both CRCs of each record."""
    reader = pywrap_tensorflow.PyRecordReader_New(path)
    events = []
    while True:
        try:
            reader.GetNext()
        except errors.OutOfRangeError:
            break
        events.append(event_pb2.Event.FromString(reader.record()))
    return events


def check(dir, run_dir):
    tb_root = os.path.join(run_dir, "tensorboard")
    files = sorted(glob.glob(os.path.join(tb_root, "*", "events.out.tfevents.*")))
    assert {os.path.basename(os.path.dirname(f)) for f in files} == {"learner", "judge-0", "run"}, files
    for path in files:
        events = read_records(path)  # raises DataLossError on a bad CRC or a truncated record
        assert events and events[0].file_version == "brain.Event:2", (path, events[:1])

    # What `tensorboard --logdir RUN/tensorboard` loads: one TensorBoard run per process directory.
    multiplexer = plugin_event_multiplexer.EventMultiplexer(
        size_guidance={"scalars": 0, "histograms": 0, "tensors": 0})
    multiplexer.AddRunsFromDirectory(tb_root)
    multiplexer.Reload()
    scalars = multiplexer.PluginRunToTagToContent("scalars")
    histograms = multiplexer.PluginRunToTagToContent("histograms")

    def series(run, tag):
        points = [(e.step, float(tensor_util.make_ndarray(e.tensor_proto))) for e in multiplexer.Tensors(run, tag)]
        steps = [s for s, _ in points]
        # Non-decreasing: a judge writes its scalars as it goes, at the newest policy version it has scored (a
        # version can hold several writes), and the run's eval tags may hold the final step twice (its last
        # periodic point and the after-RL one). The learner's steps are checked one by one below.
        assert steps == sorted(steps), f"{run} {tag}: steps out of order: {steps}"
        assert points, f"{run} {tag}: no points"
        for step, value in points:
            assert math.isfinite(value), f"{run} {tag}: {value} at step {step}"
        return points

    docs = documented_tags()
    problems = []
    for directory, run in (("learner", "learner"), ("judge", "judge-0"), ("run", "run")):
        written = set(scalars.get(run, {}))
        missing = sorted(docs[directory] - written)
        if missing:
            problems.append(f"tensorboard/{run}/ lacks documented tags {missing} (it has {sorted(written)})")
        undocumented = sorted(t for t in written - docs[directory] if not t.startswith("teacher/"))
        if undocumented:
            problems.append(f"tensorboard/{run}/ writes tags docs/CONFIG.md does not list: {undocumented}")
    assert not problems, "\n".join(problems)

    # Learner: one point per step 1..STEPS, equal to metrics.jsonl (TensorBoard keeps float32).
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        metrics = [json.loads(line) for line in f if line.strip()]
    applied = {int(m["step"]): m for m in metrics if not m.get("batch_skipped")}
    for tag in sorted(scalars["learner"]):
        points = series("learner", tag)
        assert [s for s, _ in points] == list(range(1, STEPS + 1)), f"{tag}: steps {[s for s, _ in points]}"
        field = tag.split("/", 1)[1]
        for step, value in points:
            expected = float(applied[step][field])
            assert math.isclose(value, expected, rel_tol=1e-6, abs_tol=1e-6), f"{tag}@{step}: {value} vs {expected}"
    assert [v for _, v in series("learner", "learner/version")] == list(range(1, STEPS + 1))

    # Judge: every sample of the reward log is counted once, at the policy version it was sampled with.
    samples = series("judge-0", "judge/samples")
    with sqlite3.connect(os.path.join(run_dir, "reward_log", "judge-0.sqlite")) as db:
        logged = dict(db.execute("select kind, count(*) from verdicts group by kind").fetchall())
    total = sum(v for _, v in samples)
    # Canaries and self-consistency re-scores are logged as their own kinds and are not samples.
    assert total == logged.get("train"), f"judge/samples sum to {total}, the reward log holds {logged}"
    assert logged.get("canary", 0) > 0 and logged.get("consistency", 0) > 0, logged
    for tag in ("judge/reward_mean", "judge/error_rate", "judge/cache_hit_rate"):
        for _, value in series("judge-0", tag):
            assert 0 <= value <= 1, (tag, value)
    for tag in ("judge/canary_accuracy", "judge/self_consistency"):
        for _, value in series("judge-0", tag):
            assert value == 1.0, f"{tag}: a rule judge is deterministic and the canaries are right, got {value}"
    assert "judge/reward" in histograms.get("judge-0", {}), histograms
    # Each write holds a histogram and a mean of the same rewards (a version scored again after the judge wrote it,
    # by a batch that arrived late, is written again at the same step).
    reward_means = {}
    for step, mean in series("judge-0", "judge/reward_mean"):
        reward_means.setdefault(step, []).append(mean)
    for event in multiplexer.Tensors("judge-0", "judge/reward"):
        buckets = tensor_util.make_ndarray(event.tensor_proto)  # [k, 3]: left edge, right edge, count
        count = buckets[:, 2].sum()
        assert count > 0 and buckets[:, 0].min() >= 0 and buckets[:, 1].max() <= 1, buckets
        # The rule judge's rewards are 0 or 1: the histogram's mass at 1 is that write's mean reward.
        ones = buckets[buckets[:, 1] > 0.5][:, 2].sum()
        assert any(math.isclose(ones / count, mean, abs_tol=1e-6) for mean in reward_means.get(event.step, [])), (
            event.step, buckets, reward_means)

    # Held-out evaluation: every point of eval_curve.jsonl (before RL at step 0, the periodic ones, after RL at the
    # final version; a periodic point and the after-RL one may share the final step, with the same greedy accuracy).
    with open(os.path.join(run_dir, "eval_curve.jsonl")) as f:
        curve = [json.loads(line) for line in f]
    kinds = [p["kind"] for p in curve]
    assert kinds[0] == "before" and kinds[-1] == "after", kinds
    assert curve[0]["step"] == 0 and curve[-1]["step"] == STEPS, curve
    by_step = {p["step"]: p["accuracy"] for p in curve}
    accuracy = series("run", "eval/accuracy")
    assert sorted(set(s for s, _ in accuracy)) == sorted(by_step), (accuracy, curve)
    for step, value in accuracy:
        assert math.isclose(value, by_step[step], abs_tol=1e-6), (step, value, curve)
    print(f"# learner: {len(scalars['learner'])} tags x {STEPS} steps; judge-0: {len(scalars['judge-0'])} tags at "
          f"versions {[s for s, _ in samples]}; run: eval at steps {[s for s, _ in accuracy]}")


def main():
    rlj = util.rlj_binary()
    checks = util.Checks()
    with util.scratch_dir("rlj-tensorboard-") as dir:
        util.run_rlj(rlj, ["dataset", "arithmetic", "--out", dir, "--train", "200", "--eval", "20",
                           "--max-operand", "20"])
        with open(os.path.join(dir, "canaries.jsonl"), "w") as f:
            f.write(json.dumps({"id": "c-printable", "prompt": "1+1=", "completion": "2", "reference": "2",
                                "expected_reward": 1.0}) + "\n")
            f.write(json.dumps({"id": "c-control", "prompt": "1+2=", "completion": "\u0001", "reference": "3",
                                "expected_reward": 0.0}) + "\n")
        config = os.path.join(dir, "tiny.yaml")
        with open(config, "w") as f:
            f.write(CONFIG.format(dir=dir, steps=STEPS))
        util.run_rlj(rlj, ["run", config], timeout=300)
        checks.run("TensorBoard reads every documented tag of a short run", check, dir, os.path.join(dir, "runs", "tiny"))
    checks.finish()


if __name__ == "__main__":
    main()
