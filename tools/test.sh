#!/usr/bin/env bash
# test.sh: the README's test command: installs dependencies, builds, runs every unit and integration test, and
# ends with the list of tests that were skipped and why.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
# Several rlj processes share the cores: OpenMP threads should sleep, not spin, while they wait.
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
bash tools/build.sh
# The project's virtual environment first: its pinned tools (kubectl) over whatever the machine has.
export PATH="${RLJ_VENV:-$root/.venv}/bin:$PATH"
cd "${BUILD_DIR:-build}"
junit="$PWD/ctest-junit.xml"
rm -f "$junit"
status=0
ctest --output-on-failure -j "$(nproc)" --timeout 900 --output-junit "$junit" "$@" || status=$?
/usr/bin/python3 "$root/tools/list-skipped-tests.py" "$junit" || true
exit $status
