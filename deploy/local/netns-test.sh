#!/usr/bin/env bash
# netns-test.sh: multi-host for real on one machine. Learner, judge and two actors each get a network
# namespace with its own address on a bridge; training runs across them; one actor's link is cut mid-run and
# restored: the run goes on without it and the actor rejoins. Needs root and iproute2.
#   deploy/local/netns-test.sh RLJ_BINARY [WORK_DIR]
# Exit 0: passed; 77: skipped (no rights); anything else: failed (the reason on stderr).
set -euo pipefail

RLJ=$(readlink -f "${1:?usage: netns-test.sh RLJ_BINARY [WORK_DIR]}")
WORK=${2:-$(mktemp -d /tmp/rlj-netns.XXXXXX)}
mkdir -p "$WORK"
log() { echo "[netns-test $(date +%H:%M:%S)] $*" >&2; }
fail() { log "FAIL: $*"; exit 1; }

if [ "$(id -u)" != 0 ] || ! command -v ip >/dev/null || ! ip netns add "rljprobe$$" 2>/dev/null; then
  log "skipped: needs root and 'ip netns' (iproute2)"
  exit 77
fi
# Entering a namespace remounts / as a slave: that fails where / is not a mount point (a plain chroot).
if ! probe=$(ip netns exec "rljprobe$$" true 2>&1); then
  ip netns del "rljprobe$$"
  log "skipped: 'ip netns exec' does not work here (${probe})"
  exit 77
fi
ip netns del "rljprobe$$"

# Names and a /24 unique to this run, so parallel runs do not collide.
ID=$$
NET="10.231.$(( ID % 200 + 20 ))"
SWITCH="rlj$ID-sw"
declare -A HOST_NS=([learner]="rlj$ID-l" [judge]="rlj$ID-j" [actor0]="rlj$ID-a0" [actor1]="rlj$ID-a1")
declare -A HOST_IP=([learner]="$NET.1" [judge]="$NET.2" [actor0]="$NET.3" [actor1]="$NET.4")
PIDS=()

cleanup() {
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  sleep 1
  for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  for ns in "${HOST_NS[@]}" "$SWITCH"; do ip netns del "$ns" 2>/dev/null || true; done
}
trap cleanup EXIT

# A bridge in its own namespace, one veth pair per host.
ip netns add "$SWITCH"
ip -n "$SWITCH" link add br0 type bridge
ip -n "$SWITCH" link set br0 up
ip -n "$SWITCH" link set lo up
i=0
for host in learner judge actor0 actor1; do
  ns=${HOST_NS[$host]}
  ip netns add "$ns"
  ip link add "rlj$ID-v$i" type veth peer name "rlj$ID-p$i"
  ip link set "rlj$ID-v$i" netns "$ns"
  ip link set "rlj$ID-p$i" netns "$SWITCH"
  ip -n "$ns" link set "rlj$ID-v$i" name eth0
  ip -n "$ns" addr add "${HOST_IP[$host]}/24" dev eth0
  ip -n "$ns" link set eth0 up
  ip -n "$ns" link set lo up
  ip -n "$SWITCH" link set "rlj$ID-p$i" master br0
  ip -n "$SWITCH" link set "rlj$ID-p$i" up
  i=$((i + 1))
done
log "hosts: learner ${HOST_IP[learner]}, judge ${HOST_IP[judge]}, actors ${HOST_IP[actor0]} ${HOST_IP[actor1]}"

# A tiny task and run; the run directory is shared (one filesystem), the network is not.
"$RLJ" dataset arithmetic --out "$WORK/data" --train 400 --eval 20 --max-operand 20 >/dev/null
RUN="$WORK/run"
cat > "$WORK/netns.yaml" <<YAML
name: netns
runtime: {threads: 1}
model: {d_model: 32, n_layers: 2, n_heads: 2, ffn_hidden: 64, max_seq_len: 24}
data: {train_path: $WORK/data/train.jsonl}
sampling: {group_size: 4, max_new_tokens: 4}
# A learning rate small enough that thousands of steps do not teach the tiny model to always earn the same
# reward (a student that has nothing left to learn from takes no more steps; this test is about the network).
learner: {steps: 100000, groups_per_step: 4, lr: 1.0e-5, max_staleness: 8}
actor: {prompts_per_batch: 2, rpc_timeout_ms: 5000}
# The judge rewards a completion that starts with printable ASCII: a random tiny model gets reward differences
# from it, so its steps are real updates (a batch without any is not a step).
judge: {timeout_ms: 5000, rule: {mode: regex, pattern: "^[ -~]"}}
YAML
export OMP_WAIT_POLICY=PASSIVE
LEARNER="${HOST_IP[learner]}:50051"
JUDGE="${HOST_IP[judge]}:50052"
in_ns() { local host=$1; shift; ip netns exec "${HOST_NS[$host]}" "$@"; }
# The servers start as plain background commands, not through in_ns: `ip netns exec` execs rlj in place, so
# $! is rlj's own pid and cleanup's kill reaches it (a backgrounded function leaves a subshell in between,
# and rlj outlived the test).
ip netns exec "${HOST_NS[learner]}" "$RLJ" learner "$WORK/netns.yaml" --run-dir "$RUN" --listen "$LEARNER" > "$WORK/learner.out" 2>&1 &
PIDS+=($!)
ip netns exec "${HOST_NS[judge]}" "$RLJ" judge "$WORK/netns.yaml" --run-dir "$RUN" --listen "$JUDGE" > "$WORK/judge.out" 2>&1 &
PIDS+=($!)
for a in 0 1; do
  ip netns exec "${HOST_NS[actor$a]}" "$RLJ" actor "$WORK/netns.yaml" --run-dir "$RUN" --learner "$LEARNER" --judge "$JUDGE" \
      --name "actor-$a" > "$WORK/actor$a.out" 2>&1 &
  PIDS+=($!)
done
ACTOR1_PID=${PIDS[3]}

# The learner's version, asked from the judge's host (across the bridge).
version() {
  in_ns judge "$RLJ" status --learner "$LEARNER" 2>/dev/null | sed -n 's/.*"version":"\{0,1\}\([0-9]*\).*/\1/p'
}
wait_version() {  # wait_version MIN SECONDS
  local deadline=$(( $(date +%s) + $2 )) v
  while [ "$(date +%s)" -lt "$deadline" ]; do
    v=$(version); v=${v:-0}
    [ "$v" -ge "$1" ] && { echo "$v"; return 0; }
    sleep 1
  done
  return 1
}
groups_from() {  # reward-log rows of an actor newer than a unix time
  sqlite3 "file:$RUN/reward_log/judge-0.sqlite?mode=ro" \
    "select count(*) from verdicts where actor = '$1' and time_unix_s > $2" 2>/dev/null || echo 0
}

v=$(wait_version 5 180) || fail "the learner did not reach version 5 (see $WORK/*.out)"
log "training across hosts: version $v"

ip -n "${HOST_NS[actor1]}" link set eth0 down
cut_at=$(date +%s)
log "cut actor-1's link at version $v"
v2=$(wait_version $(( v + 5 )) 180) || fail "the run stalled while actor-1 was cut off"
# Stay cut for longer than the actor's RPC deadline (5 s), so its calls really fail and it has to rejoin.
while [ "$(date +%s)" -lt $(( cut_at + 12 )) ]; do sleep 1; done
v2=$(wait_version $(( v2 + 1 )) 180) || fail "the run stalled while actor-1 was cut off"
log "the run went on without actor-1: version $v2"
kill -0 "$ACTOR1_PID" 2>/dev/null || fail "actor-1 exited while cut off instead of waiting to rejoin"
during=$(groups_from actor-1 $(( cut_at + 6 )))
[ "$during" -eq 0 ] || fail "actor-1 was still judged while its link was down ($during rows): the cut did not cut"

ip -n "${HOST_NS[actor1]}" link set eth0 up
restored_at=$(date +%s)
log "restored actor-1's link after $(( restored_at - cut_at )) s"
deadline=$(( restored_at + 180 ))
while [ "$(groups_from actor-1 "$restored_at")" -eq 0 ]; do
  [ "$(date +%s)" -lt "$deadline" ] || fail "actor-1 did not rejoin within 180 s (see $WORK/actor1.out)"
  sleep 1
done
v3=$(version)
log "actor-1 rejoined: its samples are judged again (version $v3)"
echo "netns-test: passed (versions $v -> $v2 while cut -> $v3 after rejoin)"
