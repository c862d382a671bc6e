#!/usr/bin/env bash
# test.sh: the README's test command: installs dependencies, builds, runs every unit and integration test.
set -euo pipefail
cd "$(dirname "$0")/.."
# Several rlj processes share the cores: OpenMP threads should sleep, not spin, while they wait.
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
bash tools/build.sh
cd "${BUILD_DIR:-build}"
ctest --output-on-failure -j "$(nproc)" --timeout 900 "$@"
