#!/usr/bin/env bash
# demo.sh: the README's demos. Installs dependencies, builds, generates the arithmetic task, trains the teacher (when
# the config has one) beside a weak warm start of the student (one core each), then runs RL and prints held-out
# accuracy before and after, with the wall time of every stage (also in runs/<name>/stages.json).
#   CONFIG=configs/demo-teacher-judged.yaml (the default): the teacher solves the task and scores every token the
#     student samples (on-policy distillation).
#   CONFIG=configs/demo-surpass.yaml: the teacher grades answers far better than it solves; the student learns
#     from its grades alone and ends better than it (runs/demo-surpass/surpass.json).
#   CONFIG=configs/demo.yaml: a rule judge, no teacher.
# The run directories of the warm start and the teacher are the ones the config's model.init_checkpoint and
# teacher.model name under runs/, put under RUNS (default runs); configs/<teacher's run directory>.yaml trains the
# teacher (TEACHER_CONFIG overrides). SEED=N sets the seed of every training (teacher, warm start, RL); the task's
# problems stay the same. SKIP_BUILD=1 uses the tree as built. Further arguments go to `rlj sft` and `rlj run` of
# the student (e.g. --set learner.steps=600).
set -euo pipefail
cd "$(dirname "$0")/.."
# Several rlj processes share the cores: OpenMP threads should sleep, not spin, while they wait.
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
[[ ${SKIP_BUILD:-0} == 1 ]] || bash tools/build.sh
RLJ=${BUILD_DIR:-build}/rlj
CONFIG=${CONFIG:-configs/demo-teacher-judged.yaml}
RUN_NAME=$(sed -n 's/^name: *\([A-Za-z0-9_.-]*\).*/\1/p' "$CONFIG" | head -n 1)
RUN_NAME=${RUN_NAME:-$(basename "$CONFIG" .yaml)}
RUNS=${RUNS:-runs}
named_run_dir() {  # the X of "KEY: runs/X/checkpoint" in the config
  sed -n "s|^ *$1: *runs/\([A-Za-z0-9_.-]*\)/checkpoint.*|\1|p" "$CONFIG" | head -n 1
}
config_value() {  # the first "KEY: value" of a config file, quotes removed
  sed -n "s|^ *$2: *\"\{0,1\}\([^\"#]*[^\"# ]\)\"\{0,1\}.*|\1|p" "$1" | head -n 1
}
WARMSTART=$(named_run_dir init_checkpoint)
WARMSTART=${WARMSTART:-demo-warmstart}
TEACHER=$(named_run_dir model)  # teacher.model; empty without a teacher
judged_by_teacher=0
[[ -z $TEACHER ]] || judged_by_teacher=1
TEACHER_CONFIG=${TEACHER_CONFIG:-configs/${TEACHER:-demo-teacher}.yaml}
# Label mode: the teacher learns to grade answers in the words the judge will ask in (judge.openai.rubric).
RUBRIC=""
if grep -q '^ *mode: *label' "$CONFIG"; then RUBRIC=$(config_value "$CONFIG" rubric); fi
seed_sets=()
[[ -z ${SEED:-} ]] || seed_sets=(--set "seed=$SEED")
uses() { grep -q "$1" "$CONFIG" "$TEACHER_CONFIG" 2>/dev/null; }
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

# The task: 50,000 training problems and 500 held-out ones, the same whatever SEED.
"$RLJ" dataset arithmetic --out data/arithmetic --train 50000 --eval 500 --max-operand 999 --seed 7
if uses data/arithmetic-teacher/; then
  # The distillation demo's data: the same problems, every answer followed by the end marker "\n" ("1178" ->
  # "1178\n"), which the teacher scores after each student answer, so that an answer cut short scores low.
  mkdir -p data/arithmetic-teacher
  for split in train eval; do
    sed 's/"reference":"\([^"]*\)"}$/"reference":"\1\\n"}/' data/arithmetic/$split.jsonl \
      >data/arithmetic-teacher/$split.jsonl
  done
fi
if uses data/arithmetic-fw/; then
  # The same problems at fixed width ("321+099=" -> "0420"): a grader compares the candidate with the reference
  # digit by digit, and a small model learns that far sooner when every digit has its place.
  "$RLJ" dataset arithmetic --out data/arithmetic-fw --train 50000 --eval 500 --max-operand 999 --seed 7 --fixed-width
fi
if [[ -n $RUBRIC ]]; then
  # The teacher's data (configs/demo-surpass-teacher.yaml says why each kind is there): every training problem
  # graded twice in the rubric's words, against its reference, with the right answer or a wrong one (a near miss:
  # a digit or two changed, off by a little or by a power of ten, a digit dropped or repeated; or junk: empty,
  # cut short, characters around the answer); a copy row and prefix-check rows; worked answers for a fifth of the
  # problems only. Held out: four candidates for each held-out problem, also as the judge's canaries.
  "$RLJ" dataset grading --from data/arithmetic-fw/train.jsonl --out data/grading/train.jsonl --template "$RUBRIC" \
    ${GRADING_ARGS:---junk-fraction 0.15 --rows-per-problem 2 --with-copies --with-prefix-checks --with-answers --answer-fraction 0.2} --seed 7
  "$RLJ" dataset grading --from data/arithmetic-fw/eval.jsonl --out data/grading/eval.jsonl --template "$RUBRIC" \
    --junk-fraction 0.3 --rows-per-problem 4 --seed 8 --canaries data/grading/canaries.jsonl
fi
stage_done datasets

# The warm start begins from random weights; the RL run then starts from its checkpoint (model.init_checkpoint).
mkdir -p "$RUNS"
run_sets=(--set "model.init_checkpoint=$RUNS/$WARMSTART/checkpoint")
if ((judged_by_teacher)); then
  # Teacher (runtime.threads of its config) and student warm start (one thread) train side by side; both begin
  # from random weights.
  "$RLJ" sft "$TEACHER_CONFIG" "${seed_sets[@]}" --run-dir "$RUNS/$TEACHER" \
    --output "$RUNS/$TEACHER/checkpoint" >"$RUNS/$TEACHER.sft.out" 2>&1 &
  teacher_pid=$!
  run_sets+=(--set "teacher.model=$RUNS/$TEACHER/checkpoint")
fi
"$RLJ" sft "$CONFIG" --set model.init_checkpoint= "${seed_sets[@]}" --run-dir "$RUNS/$WARMSTART" \
  --output "$RUNS/$WARMSTART/checkpoint" "$@"
# A small model learns addition in a sudden drop of its loss whose timing varies with the seed, and RL needs a
# student that gets some answers right: the warm start goes on in rounds of 100 steps from its checkpoint until it
# gets WARMSTART_MIN (default 0.15) of the held-out problems right, at most 20 rounds.
held_out_accuracy() {
  "$RLJ" eval "$CONFIG" --checkpoint "$1" --json | sed -n 's/.*"accuracy":\([0-9.e+-]*\).*/\1/p'
}
for round in $(seq 1 20); do
  accuracy=$(held_out_accuracy "$RUNS/$WARMSTART/checkpoint")
  echo "== warm start: held-out accuracy $accuracy"
  awk "BEGIN { exit !($accuracy >= ${WARMSTART_MIN:-0.15}) }" && break
  "$RLJ" sft "$CONFIG" --set "model.init_checkpoint=$RUNS/$WARMSTART/checkpoint" --set sft.steps=100 \
    --set "seed=$(( ${SEED:-$(config_value "$CONFIG" seed)} + round ))" --run-dir "$RUNS/$WARMSTART" \
    --output "$RUNS/$WARMSTART/checkpoint.next" "$@" >"$RUNS/$WARMSTART.round-$round.out" 2>&1
  rm -rf "$RUNS/$WARMSTART/checkpoint"
  mv "$RUNS/$WARMSTART/checkpoint.next" "$RUNS/$WARMSTART/checkpoint"
done
if ((judged_by_teacher)); then
  if ! wait "$teacher_pid"; then
    echo "teacher sft failed:" >&2
    tail -n 20 "$RUNS/$TEACHER.sft.out" >&2
    exit 1
  fi
  stage_done sft_teacher_and_student
  if [[ -n $RUBRIC ]]; then
    # The teacher's two abilities, apart: its greedy answers to the held-out problems (the student's held-out set),
    # and its greedy grades of the held-out candidates.
    "$RLJ" eval "$TEACHER_CONFIG" --checkpoint "$RUNS/$TEACHER/checkpoint" --json \
      --set "data.eval_path=$(config_value "$CONFIG" eval_path)" --set judge.rule.mode=exact \
      --set eval.max_new_tokens=6 >"$RUNS/$TEACHER/solve.json"
    "$RLJ" eval "$TEACHER_CONFIG" --checkpoint "$RUNS/$TEACHER/checkpoint" --json >"$RUNS/$TEACHER/grade.json"
  else
    # How well the teacher solves held-out problems (its greedy answer, end marker included, against the truth).
    "$RLJ" eval "$TEACHER_CONFIG" --checkpoint "$RUNS/$TEACHER/checkpoint"
  fi
  stage_done eval_teacher
else
  stage_done sft_student
fi

# RL: `rlj run` starts the teacher (when configured), then learner, judge and actor.
"$RLJ" run "$CONFIG" --run-dir "$RUNS/$RUN_NAME" --overwrite "${seed_sets[@]}" "${run_sets[@]}" "$@"
stage_done rl_with_evaluations

total=$(( $(date +%s) - start ))
stages+=("\"total\": $total")
(IFS=,; echo "{${stages[*]}}") >"$RUNS/$RUN_NAME/stages.json"
if [[ -n $RUBRIC ]]; then
  python3 tools/surpass_summary.py --teacher-solve "$RUNS/$TEACHER/solve.json" \
    --teacher-grade "$RUNS/$TEACHER/grade.json" --run "$RUNS/$RUN_NAME/summary.json" \
    --seed "${SEED:-$(config_value "$CONFIG" seed)}" --out "$RUNS/$RUN_NAME/surpass.json"
fi
echo "demo finished in $total s; see $RUNS/$RUN_NAME/summary.json (eval_before / eval_after) and $RUNS/$RUN_NAME/stages.json"
