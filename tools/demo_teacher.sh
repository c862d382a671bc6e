#!/usr/bin/env bash
# demo_teacher.sh: the demo judged by a teacher model: installs dependencies, builds, generates the arithmetic
# task and the teacher's grading data, trains the teacher and warm-starts the student with SFT (side by side, one core
# each), then runs RL judged by the teacher (`rlj run` serves it with `rlj teacher`) and prints held-out
# accuracy before and after, with the wall time of every stage (also in runs/demo-teacher-judged/stages.json).
set -euo pipefail
cd "$(dirname "$0")/.."
# Several rlj processes share the cores: OpenMP threads should sleep, not spin, while they wait.
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
[[ ${SKIP_BUILD:-0} == 1 ]] || bash tools/build.sh   # SKIP_BUILD=1: use the tree as built
RLJ=${BUILD_DIR:-build}/rlj
CONFIG=${CONFIG:-configs/demo-teacher-judged.yaml}
TEACHER_CONFIG=${TEACHER_CONFIG:-configs/demo-teacher.yaml}
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
# The teacher's grading data: every training problem graded once, given the reference answer, with the right
# answer as the candidate or a wrong one (a near miss, or junk: empty, the answer with junk around it, cut
# short, random), and a copy row per problem ("46|" -> "46": every token teaches the teacher which
# character of the candidate must match which of the reference); a held-out grading set from the held-out
# problems measures the teacher. The template is the judge's rubric in the RL config.
GRADING_TEMPLATE='{reference}|{completion}?'
"$RLJ" dataset grading --from data/arithmetic/train.jsonl --out data/grading/train.jsonl \
  --template "$GRADING_TEMPLATE" --junk-fraction 0.3 --with-copies --seed 7
"$RLJ" dataset grading --from data/arithmetic/eval.jsonl --out data/grading/eval.jsonl \
  --template "$GRADING_TEMPLATE" --junk-fraction 0.3 --rows-per-problem 4 --seed 8
stage_done datasets

# Teacher and student warm start train side by side, one thread each; both begin from random weights.
mkdir -p runs
"$RLJ" sft "$TEACHER_CONFIG" --set runtime.threads=1 --run-dir runs/demo-teacher \
  --output runs/demo-teacher/checkpoint >runs/demo-teacher.sft.out 2>&1 &
teacher_pid=$!
"$RLJ" sft "$CONFIG" --set model.init_checkpoint= --run-dir runs/demo-warmstart --output runs/demo-warmstart/checkpoint "$@"
if ! wait "$teacher_pid"; then
  echo "teacher sft failed:" >&2
  tail -20 runs/demo-teacher.sft.out >&2
  exit 1
fi
stage_done sft_teacher_and_student
# How well the teacher grades held-out answers (its greedy Y/N against the truth).
"$RLJ" eval "$TEACHER_CONFIG" --checkpoint runs/demo-teacher/checkpoint
stage_done eval_teacher

# RL: `rlj run` starts the teacher, then learner, judge (pointed at the teacher) and actor.
"$RLJ" run "$CONFIG" --overwrite "$@"
stage_done rl_with_evaluations

total=$(( $(date +%s) - start ))
stages+=("\"total\": $total")
(IFS=,; echo "{${stages[*]}}") >runs/demo-teacher-judged/stages.json
echo "demo finished in $total s (datasets, teacher + student SFT, teacher eval, RL judged by the teacher, evaluations)"
echo "see runs/demo-teacher-judged/summary.json and runs/demo-teacher-judged/stages.json"
