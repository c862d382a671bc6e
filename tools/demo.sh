#!/usr/bin/env bash
# demo.sh: the README's main command: installs dependencies, builds, generates the arithmetic task, warm-starts
# a small student with SFT, then runs RL with the judge and prints held-out accuracy before and after.
set -euo pipefail
cd "$(dirname "$0")/.."
# Several rlj processes share the cores: OpenMP threads should sleep, not spin, while they wait.
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
bash tools/build.sh
RLJ=${BUILD_DIR:-build}/rlj
CONFIG=${CONFIG:-configs/demo.yaml}
start=$(date +%s)
"$RLJ" dataset arithmetic --out data/arithmetic --train 50000 --eval 500 --max-operand 999 --seed 7
# The warm start begins from random weights; the RL run then starts from its checkpoint (model.init_checkpoint).
"$RLJ" sft "$CONFIG" --set model.init_checkpoint= --run-dir runs/demo-warmstart --output runs/demo-warmstart/checkpoint "$@"
"$RLJ" run "$CONFIG" --overwrite "$@"
echo "demo finished in $(( $(date +%s) - start )) s (dataset + warm start + RL + evaluations); see runs/demo/summary.json"
