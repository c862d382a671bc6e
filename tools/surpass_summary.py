#!/usr/bin/env python3
"""surpass_summary.py: the summary of the surpass demo (CONFIG=configs/demo-surpass.yaml tools/demo.sh).

Puts side by side, from the same held-out problems: how many the teacher solves (its greedy answers, `rlj eval
--json`), how many held-out candidate answers it grades right (`rlj eval --json` on the grading triples), and the
student's accuracy before and after RL (the run's summary.json). Prints a table and writes it as JSON.
"""
import argparse
import json
import sys


def read_json(path, what):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        sys.exit(f"surpass_summary: {what} ({path}): {e}")


def accuracy(result, what, path):
    for key in ("accuracy", "correct", "total"):
        if key not in result:
            sys.exit(f"surpass_summary: {what} ({path}) has no '{key}'")
    return {"accuracy": result["accuracy"], "correct": result["correct"], "total": result["total"]}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teacher-solve", required=True, help="rlj eval --json of the teacher on the held-out problems")
    parser.add_argument("--teacher-grade", required=True, help="rlj eval --json of the teacher on held-out grading rows")
    parser.add_argument("--run", required=True, help="summary.json of the student's RL run")
    parser.add_argument("--seed", required=True, help="the seed of the trainings")
    parser.add_argument("--out", required=True, help="where to write the summary (JSON)")
    args = parser.parse_args()

    run = read_json(args.run, "the RL run's summary")
    for key in ("eval_before", "eval_after"):
        if key not in run:
            sys.exit(f"surpass_summary: the RL run's summary ({args.run}) has no {key}: was the run stopped?")
    solve = read_json(args.teacher_solve, "the teacher's solving")
    summary = {
        "seed": args.seed,
        "held_out_problems": solve.get("total"),
        "held_out_data": solve.get("data"),
        "teacher_solve": accuracy(solve, "the teacher's solving", args.teacher_solve),
        "teacher_grading": accuracy(read_json(args.teacher_grade, "the teacher's grading"), "the teacher's grading",
                                    args.teacher_grade),
        "student_before": accuracy(run["eval_before"], "eval_before", args.run),
        "student_after": accuracy(run["eval_after"], "eval_after", args.run),
    }
    margin = summary["student_after"]["accuracy"] - summary["teacher_solve"]["accuracy"]
    summary["student_after_minus_teacher_solve_points"] = round(100 * margin, 1)
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=2)
        f.write("\n")

    def row(name, result):
        return f"  {name:<32} {result['accuracy']:6.3f}  ({result['correct']} of {result['total']})"

    print(f"held-out problems: {summary['held_out_problems']} ({summary['held_out_data']}), seed {args.seed}")
    print(row("teacher solves", summary["teacher_solve"]))
    print(row("teacher grades (held-out pairs)", summary["teacher_grading"]))
    print(row("student before RL", summary["student_before"]))
    print(row("student after RL", summary["student_after"]))
    if margin > 0:
        print(f"  the student ends {100 * margin:.1f} points above its teacher's solving ({args.out})")
    else:
        print(f"  the student ends {-100 * margin:.1f} points below its teacher's solving ({args.out})")


if __name__ == "__main__":
    main()
