#!/usr/bin/env bash
# compare_distill.sh: per-token distillation against the sequence-level likelihood reward, side by side. Both RL
# runs start from the README demo's warm start with its teacher (run tools/demo.sh first, or set WARMSTART and
# TEACHER), one after the other on the same machine, for the same number of steps (their wall times are
# printed; the RL work per step is the same), with a held-out evaluation every EVERY steps. Prints both
# held-out curves (accuracy by seconds and step), and draws them with the teacher's accuracy as
# $RUNS/compare-distill.svg. Further arguments go to both `rlj run`s (e.g. --set learner.lr=1e-4).
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
RLJ=${BUILD_DIR:-build}/rlj
RUNS=${RUNS:-runs}
STEPS=${STEPS:-800}
EVERY=${EVERY:-100}
WARMSTART=${WARMSTART:-$RUNS/demo-warmstart/checkpoint}
TEACHER=${TEACHER:-$RUNS/demo-teacher/checkpoint}
for dir in "$WARMSTART" "$TEACHER"; do
  [[ -d $dir ]] || { echo "compare_distill.sh: $dir is missing: run tools/demo.sh first" >&2; exit 1; }
done
teacher_accuracy=$("$RLJ" eval configs/demo-teacher.yaml --checkpoint "$TEACHER" | sed -n 's/^accuracy \([0-9.]*\).*/\1/p')
declare -A config=([distill]=configs/demo-teacher-judged.yaml [likelihood]=configs/demo-likelihood.yaml)
for mode in distill likelihood; do
  start=$(date +%s)
  "$RLJ" run "${config[$mode]}" --run-dir "$RUNS/compare-$mode" --overwrite \
    --set "model.init_checkpoint=$WARMSTART" --set "teacher.model=$TEACHER" \
    --set "learner.steps=$STEPS" --set "eval.every_steps=$EVERY" "$@" >"$RUNS/compare-$mode.out" 2>&1 ||
    { echo "rlj run ($mode) failed; see $RUNS/compare-$mode.out" >&2; tail -n 20 "$RUNS/compare-$mode.out" >&2; exit 1; }
  echo "== $mode: $(( $(date +%s) - start )) s for $STEPS steps"
done
python3 tools/plot_eval_curves.py "$RUNS/compare-distill.svg" --teacher "$teacher_accuracy" \
  "per-token distillation=$RUNS/compare-distill" "sequence likelihood=$RUNS/compare-likelihood"
