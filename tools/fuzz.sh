#!/usr/bin/env bash
# fuzz.sh: builds the libFuzzer targets (clang-14, ASan+UBSan, in build-san) and runs each on its seed corpus
# for FUZZ_SECONDS; exits non-zero when any target finds a crash, printing the reproducer's path.
#   FUZZ_SECONDS=60        time per target
#   FUZZ_TARGETS="a b"     which targets (default: all six)
#   RLJ_BINARY=build/rlj   the gcc build of rlj whose `rlj learner` learner_request_fuzzer sends requests to
#                          (built with tools/build.sh when missing)
#   FUZZ_RSS_MB=4096       libFuzzer's -rss_limit_mb
#   FUZZ_TIMEOUT=60        seconds one input may take before it counts as a hang
#   FUZZ_OUT=build-san/fuzz-out   corpora grown by the runs, logs and crash artifacts
#   BUILD_DIR=build-san  JOBS=2
# Reproduce a crash: build-san/fuzz/<target> <artifact path>. Not run by CI (too slow on small machines).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

FUZZ_SECONDS=${FUZZ_SECONDS:-60}
FUZZ_RSS_MB=${FUZZ_RSS_MB:-4096}
FUZZ_TIMEOUT=${FUZZ_TIMEOUT:-60}
BUILD_DIR=${BUILD_DIR:-build-san}
JOBS=${JOBS:-2}
FUZZ_OUT=${FUZZ_OUT:-$BUILD_DIR/fuzz-out}
all_targets="config_loader_fuzzer tokenizer_fuzzer safetensors_header_fuzzer judge_response_fuzzer grpc_handler_fuzzer
             learner_request_fuzzer"
FUZZ_TARGETS=${FUZZ_TARGETS:-$all_targets}

bash tools/sanitize.sh --build-only --targets "$FUZZ_TARGETS"
if [[ " $FUZZ_TARGETS " == *" learner_request_fuzzer "* ]]; then
  export RLJ_BINARY=${RLJ_BINARY:-$root/build/rlj}
  [ -x "$RLJ_BINARY" ] || bash tools/build.sh
fi

# LibTorch, gRPC and protobuf are not instrumented: ASan's container-overflow check would misread their
# std::vector use; leaks are not what fuzzing looks for (static singletons of those libraries).
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_container_overflow=0:detect_leaks=0:abort_on_error=1:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
export OMP_WAIT_POLICY=PASSIVE OMP_NUM_THREADS=1

mkdir -p "$FUZZ_OUT"
failed=()
summary=()
for target in $FUZZ_TARGETS; do
  name=${target%_fuzzer}
  seeds="$root/fuzz/corpus/$name"
  corpus="$FUZZ_OUT/corpus/$name"      # grows here; the seed corpus in the tree stays as it is
  artifacts="$FUZZ_OUT/artifacts/$name/"
  log="$FUZZ_OUT/$name.log"
  mkdir -p "$corpus" "$artifacts"
  echo "fuzz.sh: $target for ${FUZZ_SECONDS}s (corpus $corpus, log $log)"
  status=0
  "$BUILD_DIR/fuzz/$target" "$corpus" "$seeds" -max_total_time="$FUZZ_SECONDS" -rss_limit_mb="$FUZZ_RSS_MB" \
    -timeout="$FUZZ_TIMEOUT" -max_len=65536 -print_final_stats=1 -artifact_prefix="$artifacts" >"$log" 2>&1 || status=$?
  executions=$( (grep -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$' | tail -1) || true)
  coverage=$( (grep -E '^#[0-9]+' "$log" | tail -1 | grep -oE 'cov: [0-9]+ ft: [0-9]+') || true)
  line="$target: ${executions:-?} executions, ${coverage:-no coverage line}, exit $status"
  summary+=("$line")
  # Targets that talk to another process count the calls that reached it, by answer.
  while IFS= read -r calls; do summary+=("    ${calls#*_fuzzer: }"); done < <(grep -E '^[a-z_]+_fuzzer: [A-Za-z]+ [A-Z_]+: [0-9]+$' "$log" || true)
  if [ "$status" -ne 0 ]; then
    reproducer=$( (ls -t "$artifacts" 2>/dev/null | head -1) || true)
    failed+=("$target")
    echo "fuzz.sh: $target FAILED (exit $status); reproducer: ${artifacts}${reproducer:-<none written>}"
    grep -E 'ERROR: |runtime error|==ABORTING|SUMMARY|_fuzzer: ' "$log" | head -20 || true
  fi
done

echo "fuzz.sh: summary"
for line in "${summary[@]}"; do echo "  $line"; done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz.sh: ${#failed[@]} target(s) found a crash: ${failed[*]} (logs and reproducers under $FUZZ_OUT)"
  exit 1
fi
echo "fuzz.sh: no crash in $(echo $FUZZ_TARGETS | wc -w) target(s)"
