#!/usr/bin/env python3
"""surpass_summary_test.py: tools/surpass_summary.py (the surpass demo's summary) over `rlj eval --json` outputs
and a run's summary.json: the four accuracies side by side, the margin in points, and a clear error naming the
file when the run has no after-RL evaluation.

Usage: python3 tests/python/surpass_summary_test.py PATH/TO/rlj   (the rlj path is not used)
"""

import json
import os
import subprocess
import sys
import tempfile

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools", "surpass_summary.py")


def write(directory, name, value):
    path = os.path.join(directory, name)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(value, f)
    return path


def run(directory, run_summary):
    solve = write(directory, "solve.json", {"accuracy": 0.434, "correct": 217, "total": 500,
                                            "data": "data/arithmetic-fw/eval.jsonl"})
    grade = write(directory, "grade.json", {"accuracy": 0.98, "correct": 1960, "total": 2000})
    summary = write(directory, "summary.json", run_summary)
    out = os.path.join(directory, "surpass.json")
    return subprocess.run([sys.executable, SCRIPT, "--teacher-solve", solve, "--teacher-grade", grade, "--run",
                           summary, "--seed", "8", "--out", out], capture_output=True, text=True), out


def main():
    with tempfile.TemporaryDirectory() as directory:
        finished = {"eval_before": {"accuracy": 0.19, "correct": 95, "total": 500},
                    "eval_after": {"accuracy": 0.9, "correct": 450, "total": 500}}
        result, out = run(directory, finished)
        assert result.returncode == 0, result.stderr
        with open(out, encoding="utf-8") as f:
            summary = json.load(f)
        assert summary["seed"] == "8", summary
        assert summary["held_out_problems"] == 500, summary
        assert summary["teacher_solve"] == {"accuracy": 0.434, "correct": 217, "total": 500}, summary
        assert summary["teacher_grading"]["accuracy"] == 0.98, summary
        assert summary["student_before"]["correct"] == 95, summary
        assert summary["student_after"]["accuracy"] == 0.9, summary
        assert summary["student_after_minus_teacher_solve_points"] == 46.6, summary
        assert "student after RL                  0.900  (450 of 500)" in result.stdout, result.stdout
        assert "46.6 points above its teacher's solving" in result.stdout, result.stdout

        stopped = {"eval_before": finished["eval_before"]}
        result, _ = run(directory, stopped)
        assert result.returncode != 0
        assert "has no eval_after: was the run stopped?" in result.stderr, result.stderr
        assert "summary.json" in result.stderr, result.stderr
    print("surpass_summary: ok")


if __name__ == "__main__":
    main()
