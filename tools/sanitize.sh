#!/usr/bin/env bash
# sanitize.sh: builds the unit-test binaries under AddressSanitizer + UndefinedBehaviorSanitizer and runs every
# one of them; exits non-zero on any failing test or any sanitizer report. Integration tests are not run.
# Two builds, because clang (14 or 16) cannot compile Debian's LibTorch 1.13 headers in C++20 mode:
#   build-san      clang-14, the LibTorch-free areas (common, logs, judge); the same build as the fuzz targets
#   build-san-gcc  gcc, the areas that need LibTorch (model, learner, actor, teacher, tools)
# Not run by CI (two full sanitizer builds: slow on small machines).
#   sanitize.sh                         both builds, every area
#   sanitize.sh --areas "common judge"  only those areas (each goes to the build its libraries need)
#   sanitize.sh --build-only --targets "t1 t2"   configure build-san and build those targets (fuzz.sh)
#   JOBS=2  GTEST_FILTER=...
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

JOBS=${JOBS:-2}
CLANG_DIR=${CLANG_BUILD_DIR:-build-san}
GCC_DIR=${GCC_BUILD_DIR:-build-san-gcc}
torch_free_areas="common logs judge"
torch_areas="model learner actor teacher tools"
build_only=0
targets=""
areas="$torch_free_areas $torch_areas"
while [ $# -gt 0 ]; do
  case "$1" in
    --build-only) build_only=1 ;;
    --targets) targets=$2; shift ;;
    --areas) areas=$2; shift ;;
    *) echo "sanitize.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done

# clang-14 and its runtimes (ASan, UBSan, libFuzzer), on top of rlj's own dependencies.
missing=()
for p in clang-14 libclang-rt-14-dev; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "sanitize.sh: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
bash tools/install-deps.sh >/dev/null

configure() {  # configure DIR COMPILER
  local dir=$1 compiler=$2
  [ -f "$dir/build.ninja" ] && return 0
  if [ "$compiler" = clang ]; then
    CC=clang-14 CXX=clang++-14 cmake -S "$root" -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DRLJ_SANITIZE=ON -DRLJ_FUZZ=ON
  else
    CC=gcc CXX=g++ cmake -S "$root" -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DRLJ_SANITIZE=ON
  fi
}

if [ "$build_only" -eq 1 ]; then
  configure "$CLANG_DIR" clang
  echo "sanitize.sh: building $targets in $CLANG_DIR"
  nice -n 10 ninja -C "$CLANG_DIR" -j "$JOBS" $targets
  exit 0
fi

# LibTorch, gRPC and protobuf are not instrumented: ASan's container-overflow check would misread their
# std::vector use. Leak checking stays on.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_container_overflow=0:abort_on_error=1:detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$root/fuzz/lsan.supp:print_suppressions=0}
export OMP_WAIT_POLICY=PASSIVE OMP_NUM_THREADS=1

failed=()
start=$(date +%s)
count=0
run_area_binaries() {  # run_area_binaries DIR COMPILER AREA...
  local dir=$1 compiler=$2
  shift 2
  local wanted=()
  for area in "$@"; do
    [ -d "$root/tests/unit/$area" ] && ls "$root/tests/unit/$area"/*.cc >/dev/null 2>&1 && wanted+=("rlj_${area}_tests")
  done
  [ ${#wanted[@]} -gt 0 ] || return 0
  configure "$dir" "$compiler"
  echo "sanitize.sh: building ${wanted[*]} in $dir ($compiler)"
  nice -n 10 ninja -C "$dir" -j "$JOBS" "${wanted[@]}"
  mkdir -p "$dir/sanitize-out"
  for target in "${wanted[@]}"; do
    local log="$dir/sanitize-out/$target.log" status=0 t0
    t0=$(date +%s)
    "$dir/tests/$target" --gtest_filter="${GTEST_FILTER:-*}" >"$log" 2>&1 || status=$?
    local passed reports
    passed=$(grep -oE '\[  PASSED  \] [0-9]+ tests?' "$log" | grep -oE '[0-9]+' || echo 0)
    reports=$(grep -cE 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$log" || true)
    echo "  $target: exit $status, $passed passed, $reports sanitizer report(s), $(( $(date +%s) - t0 ))s (log $log)"
    count=$((count + 1))
    if [ "$status" -ne 0 ] || [ "$reports" -ne 0 ]; then
      failed+=("$target")
      grep -E 'ERROR: |runtime error:|SUMMARY: |\[  FAILED  \]' "$log" | head -20 || true
    fi
  done
}

clang_areas=() gcc_areas=()
for area in $areas; do
  case " $torch_free_areas " in
    *" $area "*) clang_areas+=("$area") ;;
    *) gcc_areas+=("$area") ;;
  esac
done
[ ${#clang_areas[@]} -gt 0 ] && run_area_binaries "$CLANG_DIR" clang "${clang_areas[@]}"
[ ${#gcc_areas[@]} -gt 0 ] && run_area_binaries "$GCC_DIR" gcc "${gcc_areas[@]}"

echo "sanitize.sh: $count binaries in $(( $(date +%s) - start ))s"
if [ ${#failed[@]} -gt 0 ]; then
  echo "sanitize.sh: FAILED: ${failed[*]}"
  exit 1
fi
echo "sanitize.sh: clean (ASan + UBSan, leak checking on)"
