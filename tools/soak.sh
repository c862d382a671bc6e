#!/usr/bin/env bash
# soak.sh: a long run of the demo (not in CI) that watches the memory of every rlj process: `rlj run` on
# configs/demo.yaml with learner.steps large enough to outlast SOAK_MINUTES, resident memory (VmRSS from
# /proc/<pid>/status) of the supervisor and of every child it started (learner, judges, actors, teacher)
# sampled every SOAK_INTERVAL_S seconds, then a graceful stop (SIGTERM) and one JSON line per process:
#   {"process", "pid", "rss_start_mb", "rss_end_mb", "rss_max_mb", "growth_mb_per_hour", "samples"}
# growth_mb_per_hour is the slope of a least-squares line through the samples of the second half of the soak
# (start-up and warm-up excluded). The lines are printed and written to runs/<name>/soak.json (JSON Lines);
# the raw samples are in runs/<name>/soak_rss.tsv.
#
# Environment: SOAK_MINUTES (30), SOAK_INTERVAL_S (10), SOAK_NAME (soak: the run's name), CONFIG
# (configs/demo.yaml), RLJ (${BUILD_DIR:-build}/rlj). Further arguments go to `rlj run` (e.g. --set ...).
# Needs the demo's data (data/arithmetic, made here if missing); without the demo's warm start
# (runs/demo-warmstart/checkpoint, made by tools/demo.sh) the student starts from random weights.
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}

SOAK_MINUTES=${SOAK_MINUTES:-30}
SOAK_INTERVAL_S=${SOAK_INTERVAL_S:-10}
SOAK_NAME=${SOAK_NAME:-soak}
CONFIG=${CONFIG:-configs/demo.yaml}
RLJ=${RLJ:-${BUILD_DIR:-build}/rlj}

[[ -x "$RLJ" ]] || { echo "soak: no rlj binary at $RLJ (set RLJ or BUILD_DIR, or run tools/build.sh)" >&2; exit 1; }
[[ "$SOAK_MINUTES" =~ ^[0-9]+([.][0-9]+)?$ ]] || { echo "soak: SOAK_MINUTES must be a number of minutes" >&2; exit 1; }
[[ "$SOAK_INTERVAL_S" =~ ^[0-9]+$ && "$SOAK_INTERVAL_S" -ge 1 ]] || { echo "soak: SOAK_INTERVAL_S must be >= 1" >&2; exit 1; }

if [[ ! -s data/arithmetic/train.jsonl || ! -s data/arithmetic/eval.jsonl ]]; then
  "$RLJ" dataset arithmetic --out data/arithmetic --train 50000 --eval 500 --max-operand 999 --seed 7
fi
extra=()
if [[ ! -e runs/demo-warmstart/checkpoint ]]; then
  echo "soak: no warm start (runs/demo-warmstart/checkpoint; tools/demo.sh makes it): starting from random weights" >&2
  extra+=(--set model.init_checkpoint=)
fi

run_dir=runs/$SOAK_NAME
duration_s=$(awk -v m="$SOAK_MINUTES" 'BEGIN { printf "%d", m * 60 }')
# Enough steps that the learner never finishes first (each step takes well over a millisecond).
"$RLJ" run "$CONFIG" --overwrite --set "name=$SOAK_NAME" --set learner.steps=100000000 "${extra[@]}" "$@" \
  >"/tmp/soak-$SOAK_NAME.$$.out" 2>&1 &
run_pid=$!
echo "soak: rlj run (pid $run_pid) for $SOAK_MINUTES min, sampling every $SOAK_INTERVAL_S s; run dir $run_dir" >&2

# Stops the run if the script is interrupted (only the process this script started).
cleanup() { kill -TERM "$run_pid" 2>/dev/null || true; }
trap cleanup INT TERM

# The run's processes as "name pid" lines: the supervisor, and the newest pid of each child it logged
# ("started learner (pid 123)"; a restarted child logs a new pid).
processes() {
  echo "supervisor $run_pid"
  [[ -f "$run_dir/logs/run.log" ]] || return 0
  grep -oE 'started [a-z0-9-]+ \(pid [0-9]+\)' "$run_dir/logs/run.log" 2>/dev/null |
    awk '{ gsub(/\)/, "", $4); pid[$2] = $4 } END { for (n in pid) print n, pid[n] }'
}

samples=$(mktemp)
start_s=$(date +%s)
while :; do
  now_s=$(date +%s)
  elapsed=$((now_s - start_s))
  if ! kill -0 "$run_pid" 2>/dev/null; then
    echo "soak: rlj run ended after $elapsed s, before the soak was over; its output:" >&2
    tail -n 30 "/tmp/soak-$SOAK_NAME.$$.out" >&2
    exit 1
  fi
  while read -r name pid; do
    rss_kb=$(awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status" 2>/dev/null || true)
    [[ -n "$rss_kb" ]] && printf '%s\t%s\t%s\t%s\n' "$elapsed" "$name" "$pid" "$rss_kb" >>"$samples"
  done < <(processes)
  ((elapsed >= duration_s)) && break
  sleep "$SOAK_INTERVAL_S"  # the sampling period
done

echo "soak: stopping the run (SIGTERM)" >&2
kill -TERM "$run_pid" 2>/dev/null || true
for _ in $(seq 1 120); do
  kill -0 "$run_pid" 2>/dev/null || break
  sleep 1  # waiting for the supervisor to stop its children and checkpoint
done
if kill -0 "$run_pid" 2>/dev/null; then
  echo "soak: rlj run did not stop within 120 s; killing it" >&2
  kill -KILL "$run_pid" 2>/dev/null || true
fi
wait "$run_pid" 2>/dev/null || true
trap - INT TERM

mkdir -p "$run_dir"
cp "$samples" "$run_dir/soak_rss.tsv"
rm -f "$samples"
# Per process: first and last sample, the maximum, and the least-squares slope over the second half.
sort -t$'\t' -k2,2 -k1,1n "$run_dir/soak_rss.tsv" | awk -F'\t' '
  function flush() {
    if (name == "") return
    half = (t[0] + t[n - 1]) / 2; m = 0; st = 0; sr = 0; stt = 0; str = 0
    for (i = 0; i < n; ++i) if (t[i] >= half) { ++m; st += t[i]; sr += r[i]; stt += t[i] * t[i]; str += t[i] * r[i] }
    den = m * stt - st * st
    slope_kb_s = (m >= 2 && den > 0) ? (m * str - st * sr) / den : 0
    printf "{\"process\": \"%s\", \"pid\": %s, \"rss_start_mb\": %.1f, \"rss_end_mb\": %.1f, \"rss_max_mb\": %.1f, " \
           "\"growth_mb_per_hour\": %.2f, \"samples\": %d}\n", name, pid, r[0] / 1024, r[n - 1] / 1024, mx / 1024,
           slope_kb_s * 3600 / 1024, n
  }
  $2 != name { flush(); name = $2; n = 0; mx = 0 }
  { t[n] = $1; r[n] = $4; pid = $3; if ($4 > mx) mx = $4; ++n }
  END { flush() }' | tee "$run_dir/soak.json"
echo "soak: $(wc -l <"$run_dir/soak.json") processes; samples in $run_dir/soak_rss.tsv, results in $run_dir/soak.json" >&2
