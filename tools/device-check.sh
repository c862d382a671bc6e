#!/usr/bin/env bash
# device-check.sh: issue 19's whole GPU check in one script, for the GPU machine's few minutes (under 8 on an H200):
# rlj's CUDA tests, `rlj bench generate` / `train` / `sync` at the shape of Qwen2.5-0.5B next to Hugging Face
# transformers' generate and a plain PyTorch GRPO step on the same GPU, `rlj run` for 30 steps with learner and
# actor on CUDA, and transformers loading `rlj export`'s output. Every result is a JSON line in $OUT/results.jsonl
# (one per step, {"check": NAME, ...}); a step that fails or runs out of time writes {"check": NAME, "error": ...}
# and the script goes on, to exit 1 at the end. Logs go to $OUT/NAME.log.
#   bash tools/device-check.sh              on the GPU machine: BIN (default device-bundle/bin) holds rlj and the
#                                           test binaries (tools/device-bundle.sh), PYTHON the machine's python3
#   bash tools/device-check.sh --dry-run    here, on the CPU: the same steps at a tiny shape with build/ and
#                                           .venv-heavy, to check the script itself
# SKIP=name,name leaves steps out (the test suite's dry run skips the ones the suite runs anyway).
set -uo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
dry_run=0
[ "${1:-}" = --dry-run ] && dry_run=1
OUT=${OUT:-$root/device-check-out}
mkdir -p "$OUT"
results=$OUT/results.jsonl
: >"$results"

if [ "$dry_run" = 1 ]; then
  BIN=${BIN:-$root/build}
  TESTS=${TESTS:-$root/build/tests}
  PYTHON=${PYTHON:-$root/.venv-heavy/bin/python}
  DEVICE=cpu
  SHAPE=(--layers 2 --d-model 128 --heads 4 --kv-heads 2 --ffn 256 --vocab 4096 --architecture qwen2
         --rope-theta 1000000)
  GEN=(--batch 4 --prompt-len 16 --new-tokens 16 --repeats 1)
  TRAIN=(--batch 8 --seq-len 64 --repeats 1 --micro-batch-tokens 256)
  SYNC=(--params-mb 20 --actors 1 --repeats 1)
  RUN_SET=(--set runtime.device=cpu --set runtime.threads=1 --set model.vocab_size=4096 --set model.d_model=128
           --set model.n_layers=2 --set model.n_heads=4 --set model.ffn_hidden=256 --set learner.steps=4
           --set eval.max_prompts=16)
  LIMIT=300
  export OMP_WAIT_POLICY=PASSIVE
else
  BIN=${BIN:-$root/device-bundle/bin}
  TESTS=${TESTS:-$BIN}
  PYTHON=${PYTHON:-python3}
  DEVICE=cuda
  # Qwen2.5-0.5B: hidden 896, 24 layers, 14 heads, 2 KV heads, FFN 4864, vocab 151936, tied, rope 1e6.
  SHAPE=(--layers 24 --d-model 896 --heads 14 --kv-heads 2 --ffn 4864 --vocab 151936 --architecture qwen2
         --rope-theta 1000000)
  GEN=(--batch 64 --prompt-len 128 --new-tokens 256 --repeats 2)
  # Micro-batches of 8 x 1024 tokens on both sides: a whole step's float32 logits alone would be 10 GB.
  TRAIN=(--batch 16 --seq-len 1024 --repeats 3 --micro-batch-tokens 8192 --peak-tflops "${PEAK_TFLOPS:-790}")
  # The 0.5B model's 494M parameters as float32 on the learner (1.98 GB), bf16 on the wire (0.99 GB).
  SYNC=(--params-mb 1976 --tensor-mb 8 --actors 1 --repeats 3 --wire-dtype bfloat16)
  RUN_SET=(--set eval.max_prompts=64)
  LIMIT=150
fi
if [ "$dry_run" = 0 ] && [ -d "$root/device-bundle/lib" ]; then
  # The bundle's binaries (tools/device-bundle.sh) load LibTorch from this machine's PyTorch and the rest from
  # the bundle; each gets a wrapper that says so, so Python and the machine's own programs keep their libraries.
  # GCC 12's runtime goes along only where the machine's libstdc++ is older.
  torch_lib=$("$PYTHON" -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')
  system_libstdcxx=$(ldconfig -p | awk '/libstdc\+\+\.so\.6 /{print $NF; exit}')
  if grep -q GLIBCXX_3.4.30 "$system_libstdcxx" 2>/dev/null; then
    rm -f "$root"/device-bundle/lib/libstdc++.so* "$root"/device-bundle/lib/libgcc_s.so*
  fi
  mkdir -p "$OUT/bin"
  for binary in "$BIN"/*; do
    printf '#!/bin/sh\nLD_LIBRARY_PATH="%s:%s${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" exec "%s" "$@"\n' \
      "$root/device-bundle/lib" "$torch_lib" "$binary" >"$OUT/bin/$(basename "$binary")"
    chmod +x "$OUT/bin/$(basename "$binary")"
  done
  BIN=$OUT/bin
  TESTS=$OUT/bin
  # The test binaries were built in /work/main and find their golden files there.
  [ -e /work/main ] || { mkdir -p /work && ln -s "$root" /work/main; }
fi
RLJ=$BIN/rlj

# record NAME JSON: one line into results.jsonl.
record() { printf '{"check": "%s", %s\n' "$1" "${2#\{}" >>"$results"; }
# fail NAME MESSAGE: an error line (the message JSON-escaped by Python).
failures=0
fail() {
  failures=$((failures + 1))
  local message
  message=$("$PYTHON" -c 'import json,sys; print(json.dumps(sys.argv[1][-2000:]))' "$2" 2>/dev/null || echo '"?"')
  record "$1" "{\"error\": $message}"
  echo "device-check: $1 FAILED: ${2: -300}" >&2
}
# step NAME SECONDS COMMAND...: runs it with a time limit; its last stdout line (one JSON object) is the result.
step() {
  local name=$1 limit=$2
  shift 2
  case ",${SKIP:-}," in *",$name,"*) echo "device-check: $name skipped (SKIP)" >&2; return ;; esac
  local start=$SECONDS
  echo "device-check: $name" >&2
  if timeout --kill-after=10 "$limit" "$@" >"$OUT/$name.out" 2>"$OUT/$name.log"; then
    local line
    line=$(grep '^{' "$OUT/$name.out" | tail -1)
    if [ -n "$line" ]; then record "$name" "$line"; else record "$name" "{\"ok\": true}"; fi
  else
    local rc=$?
    fail "$name" "exit $rc after $((SECONDS - start)) s: $(tail -c 1500 "$OUT/$name.log")"
  fi
}

# The machine.
env_line=$("$PYTHON" - "$RLJ" <<'EOF' 2>/dev/null
import json, subprocess, sys
out = {"rlj": sys.argv[1]}
try:
    import torch
    out["torch"] = torch.__version__
    out["cuda"] = torch.version.cuda
    out["gpu"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
except Exception as e:  # noqa: BLE001
    out["torch_error"] = str(e)
try:
    import transformers
    out["transformers"] = transformers.__version__
except Exception as e:  # noqa: BLE001
    out["transformers_error"] = str(e)
print(json.dumps(out))
EOF
)
[ -n "$env_line" ] || env_line='{"error": "python failed"}'
record env "$env_line"

# Peak GPU memory of the whole check, polled by nvidia-smi (0.2 s) while it runs.
if command -v nvidia-smi >/dev/null; then
  nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 200 >"$OUT/gpu_memory.csv" 2>/dev/null &
  smi=$!
fi

# 1. rlj's CUDA tests (on the CPU they skip) and the device-independent model and learner tests.
step tests-cuda $LIMIT "$TESTS/rlj_model_tests" --gtest_filter='Device.*:Transformer*:Sampler*:TokenSampler*'
step tests-learner 120 "$TESTS/rlj_learner_tests"

# 2. Sampling: rlj against transformers' generate, batch 64, prompt 128, 256 new tokens, temperature 1.
step generate-rlj $LIMIT "$RLJ" bench generate "${SHAPE[@]}" "${GEN[@]}" --device "$DEVICE"
step generate-hf $LIMIT "$PYTHON" bench/python/hf_baselines.py generate "${SHAPE[@]}" \
  "${GEN[@]}" --device "$DEVICE"

# 3. A full GRPO step, 16 x 1024 tokens: rlj against plain PyTorch on the same model.
step train-rlj $LIMIT "$RLJ" bench train "${SHAPE[@]}" "${TRAIN[@]}" --device "$DEVICE"
step train-pytorch $LIMIT "$PYTHON" bench/python/hf_baselines.py train "${SHAPE[@]}" "${TRAIN[@]}" \
  --device "$DEVICE"

# 4. Weight sync learner -> GPU actor: loopback gRPC into pinned memory and on to the GPU; colocated copy.
step sync $LIMIT "$RLJ" bench sync "${SYNC[@]}" --device "$DEVICE"

# 5. rlj run, learner and actor on the device, rule judge, a few dozen steps.
run_dir=$OUT/run
step run-data 60 "$RLJ" dataset arithmetic --out data/device-check --train 2000 --eval 200 --max-operand 99 --seed 1
step run $((LIMIT * 2)) "$RLJ" run --config configs/device-check.yaml --run-dir "$run_dir" --overwrite "${RUN_SET[@]}"
run_line=$("$PYTHON" - "$run_dir" <<'EOF' 2>&1
import json, sys
run = sys.argv[1]
rows = [json.loads(line) for line in open(run + "/metrics.jsonl")]
timed = rows[1:] or rows  # the first step includes the actors' start
wall = rows[-1]["time_unix_s"] - rows[0]["time_unix_s"]
print(json.dumps({"steps": len(rows), "last_version": rows[-1].get("version"),
                  "steps_per_s": (len(rows) - 1) / wall if wall > 0 else None,
                  "learner_idle_fraction": sum(r.get("idle_fraction", 0) for r in timed) / len(timed),
                  "tokens_per_s_mean": sum(r.get("tokens_per_s", 0) for r in timed) / len(timed)}))
EOF
)
case "$run_line" in
  "{"*) record run-metrics "$run_line" ;;
  *) fail run-metrics "$run_line" ;;
esac

# 6. Hugging Face transformers on this machine loads rlj export's output: greedy tokens and log-probs agree.
step export-hf $LIMIT "$PYTHON" tests/python/transformers_export_test.py "$RLJ"

if [ -n "${smi:-}" ]; then
  kill "$smi" 2>/dev/null
  peak=$(sort -n "$OUT/gpu_memory.csv" | tail -1)
  record gpu-memory "{\"peak_used_mib\": ${peak:-null}}"
fi
echo "device-check: results in $results; $failures failed" >&2
cat "$results"
[ "$failures" = 0 ]
