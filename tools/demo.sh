#!/usr/bin/env bash
# demo.sh: the README's main command: installs dependencies, builds, generates the arithmetic task, trains a
# larger teacher that solves it and warm-starts a small student (side by side, one core each), then runs RL in which
# the teacher, served by `rlj teacher`, is the judge, and prints held-out accuracy before and after, with the
# wall time of every stage (also in runs/<name>/stages.json). CONFIG=configs/demo.yaml runs the rule-judged
# demo instead (no teacher). SKIP_BUILD=1 uses the tree as built; RUNS=dir puts the run directories under dir
# (default runs); further arguments go to `rlj sft` and `rlj run` of the student (e.g. --set learner.steps=600).
set -euo pipefail
cd "$(dirname "$0")/.."
# Several rlj processes share the cores: OpenMP threads should sleep, not spin, while they wait.
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
[[ ${SKIP_BUILD:-0} == 1 ]] || bash tools/build.sh
RLJ=${BUILD_DIR:-build}/rlj
CONFIG=${CONFIG:-configs/demo-teacher-judged.yaml}
TEACHER_CONFIG=${TEACHER_CONFIG:-configs/demo-teacher.yaml}
RUN_NAME=$(sed -n 's/^name: *\([A-Za-z0-9_.-]*\).*/\1/p' "$CONFIG" | head -n 1)
RUN_NAME=${RUN_NAME:-$(basename "$CONFIG" .yaml)}
RUNS=${RUNS:-runs}
judged_by_teacher=0
if grep -q '^teacher:' "$CONFIG"; then judged_by_teacher=1; fi
start=$(date +%s)
stages=()
stage_start=$start
stage_done() {  # records the wall time of the stage that just ended
  local now
  now=$(date +%s)
  stages+=("\"$1\": $((now - stage_start))")
  echo "== $1: $((now - stage_start)) s"
  stage_start=$now
}

"$RLJ" dataset arithmetic --out data/arithmetic --train 50000 --eval 500 --max-operand 999 --seed 7
if ((judged_by_teacher)); then
  # The teacher's data: the same problems, every answer followed by the end marker "\n" ("1178" -> "1178\n"),
  # which the judge scores after each student answer (judge.openai.likelihood_score_after), so that an answer
  # cut short ("1" for "1178") scores low.
  mkdir -p data/arithmetic-teacher
  for split in train eval; do
    sed 's/"reference":"\([^"]*\)"}$/"reference":"\1\\n"}/' data/arithmetic/$split.jsonl \
      >data/arithmetic-teacher/$split.jsonl
  done
fi
stage_done datasets

# The warm start begins from random weights; the RL run then starts from its checkpoint (model.init_checkpoint).
mkdir -p "$RUNS"
run_sets=(--set "model.init_checkpoint=$RUNS/demo-warmstart/checkpoint")
if ((judged_by_teacher)); then
  # Teacher (runtime.threads of its config) and student warm start (one thread) train side by side; both begin
  # from random weights.
  "$RLJ" sft "$TEACHER_CONFIG" --run-dir "$RUNS/demo-teacher" \
    --output "$RUNS/demo-teacher/checkpoint" >"$RUNS/demo-teacher.sft.out" 2>&1 &
  teacher_pid=$!
  run_sets+=(--set "teacher.model=$RUNS/demo-teacher/checkpoint")
fi
"$RLJ" sft "$CONFIG" --set model.init_checkpoint= --run-dir "$RUNS/demo-warmstart" \
  --output "$RUNS/demo-warmstart/checkpoint" "$@"
if ((judged_by_teacher)); then
  if ! wait "$teacher_pid"; then
    echo "teacher sft failed:" >&2
    tail -n 20 "$RUNS/demo-teacher.sft.out" >&2
    exit 1
  fi
  stage_done sft_teacher_and_student
  # How well the teacher solves held-out problems (its greedy answer, end marker included, against the truth).
  "$RLJ" eval "$TEACHER_CONFIG" --checkpoint "$RUNS/demo-teacher/checkpoint"
  stage_done eval_teacher
else
  stage_done sft_student
fi

# RL: `rlj run` starts the teacher (when configured), then learner, judge and actor.
"$RLJ" run "$CONFIG" --run-dir "$RUNS/$RUN_NAME" --overwrite "${run_sets[@]}" "$@"
stage_done rl_with_evaluations

total=$(( $(date +%s) - start ))
stages+=("\"total\": $total")
(IFS=,; echo "{${stages[*]}}") >"$RUNS/$RUN_NAME/stages.json"
echo "demo finished in $total s; see $RUNS/$RUN_NAME/summary.json (eval_before / eval_after) and $RUNS/$RUN_NAME/stages.json"
