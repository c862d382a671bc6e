#!/usr/bin/env python3
"""plot_eval_curves.py: held-out accuracy over wall time and steps of several rlj runs, side by side: prints each
run's curve as a table and one JSON line, and draws them into one SVG (no dependencies: a picture a person can
open in any browser).

usage: plot_eval_curves.py OUT.svg LABEL=RUN_DIR [LABEL=RUN_DIR ...] [--teacher ACCURACY]
"""
import json
import sys

COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"]


def read_curve(run_dir):
    """(seconds since the run's first evaluation, step, accuracy) of each evaluation, in order."""
    points = []
    with open(f"{run_dir}/eval_curve.jsonl") as f:
        for line in f:
            if line.strip():
                points.append(json.loads(line))
    if not points:
        raise SystemExit(f"{run_dir}/eval_curve.jsonl: no evaluations")
    start = points[0]["unix_s"]
    return [(p["unix_s"] - start, p["step"], p["accuracy"]) for p in points]


def svg(curves, teacher, width=720, height=420, margin=60):
    max_s = max(s for _, points in curves for s, _, _ in points) or 1.0
    x = lambda s: margin + (width - 2 * margin) * s / max_s
    y = lambda a: height - margin - (height - 2 * margin) * a
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" '
           f'font-size="12"><rect width="100%" height="100%" fill="white"/>']
    for a in [i / 10 for i in range(11)]:
        out.append(f'<line x1="{margin}" x2="{width - margin}" y1="{y(a):.1f}" y2="{y(a):.1f}" stroke="#eee"/>')
        out.append(f'<text x="{margin - 8}" y="{y(a) + 4:.1f}" text-anchor="end">{a:.1f}</text>')
    for i in range(6):
        s = max_s * i / 5
        out.append(f'<text x="{x(s):.1f}" y="{height - margin + 16}" text-anchor="middle">{s:.0f}</text>')
    out.append(f'<text x="{width / 2}" y="{height - 15}" text-anchor="middle">seconds of RL (evaluations '
               f'included)</text>')
    out.append(f'<text x="15" y="{height / 2}" transform="rotate(-90 15 {height / 2})" text-anchor="middle">'
               f'held-out accuracy</text>')
    if teacher is not None:
        out.append(f'<line x1="{margin}" x2="{width - margin}" y1="{y(teacher):.1f}" y2="{y(teacher):.1f}" '
                   f'stroke="black" stroke-dasharray="6 4"/>')
        out.append(f'<text x="{width - margin}" y="{y(teacher) - 6:.1f}" text-anchor="end">teacher '
                   f'{teacher:.3f}</text>')
    for i, (label, points) in enumerate(curves):
        color = COLORS[i % len(COLORS)]
        path = " ".join(f"{x(s):.1f},{y(a):.1f}" for s, _, a in points)
        out.append(f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="2"/>')
        for s, _, a in points:
            out.append(f'<circle cx="{x(s):.1f}" cy="{y(a):.1f}" r="3" fill="{color}"/>')
        out.append(f'<text x="{margin + 10}" y="{margin - 30 + 16 * i}" fill="{color}">{label}: '
                   f'{points[0][2]:.3f} → {points[-1][2]:.3f} in {points[-1][0]:.0f} s</text>')
    out.append("</svg>")
    return "\n".join(out)


def main(argv):
    teacher = None
    if "--teacher" in argv:
        i = argv.index("--teacher")
        teacher = float(argv[i + 1])
        argv = argv[:i] + argv[i + 2:]
    if len(argv) < 3:
        raise SystemExit(__doc__)
    curves = []
    for arg in argv[2:]:
        label, _, run_dir = arg.partition("=")
        curves.append((label, read_curve(run_dir)))
    for label, points in curves:
        print(f"{label}:")
        print("  seconds  step  accuracy")
        for s, step, a in points:
            print(f"  {s:7.0f} {step:5d}  {a:.3f}")
    with open(argv[1], "w") as f:
        f.write(svg(curves, teacher))
    print(json.dumps({"svg": argv[1], "teacher": teacher,
                      "curves": {label: [{"seconds": round(s, 1), "step": step, "accuracy": a} for s, step, a in points]
                                 for label, points in curves}}))


if __name__ == "__main__":
    main(sys.argv)
