#!/usr/bin/env bash
# build-libtorch2.sh: builds rlj against LibTorch 2.x, the one inside a PyTorch install, into build-torch2/.
#   bash tools/build-libtorch2.sh            PyPI's torch 2.11.0 in .venv-torch2 (tools/python-requirements-torch2.txt)
#   PYTORCH_ROOT=DIR bash tools/build-libtorch2.sh
#                                            the torch package folder of an installed PyTorch (a GPU machine's:
#                                            python3 -c 'import torch,os; print(os.path.dirname(torch.__file__))')
#   ... --test                               then run the test suite (tools/test.sh) against that build
# Where nvcc is found the build links LibTorch's CUDA libraries too (cmake/TorchFromPyTorch.cmake); elsewhere the CPU
# ones. BUILD_DIR (default build-torch2), BUILD_TYPE, CMAKE_ARGS as for tools/build.sh. Debian's other -dev packages
# come from tools/install-deps.sh (RLJ_SKIP_TORCH=1: without Debian's LibTorch).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
run_tests=0
for arg in "$@"; do
  case "$arg" in
    --test) run_tests=1 ;;
    *) echo "build-libtorch2: unknown argument '$arg' (usage: tools/build-libtorch2.sh [--test])" >&2; exit 2 ;;
  esac
done

if [ -z "${PYTORCH_ROOT:-}" ]; then
  venv=${RLJ_TORCH2_VENV:-$root/.venv-torch2}
  requirements=$root/tools/python-requirements-torch2.txt
  if ! cmp -s "$venv/.requirements" "$requirements"; then
    echo "build-libtorch2: creating $venv from $requirements (a 530 MB download)"
    rm -rf "$venv"
    /usr/bin/python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps -r "$requirements"
    cp "$requirements" "$venv/.requirements"
  fi
  PYTORCH_ROOT=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/torch
fi
[ -f "$PYTORCH_ROOT/share/cmake/Torch/TorchConfig.cmake" ] ||
  { echo "build-libtorch2: $PYTORCH_ROOT is not a torch package folder (no share/cmake/Torch)" >&2; exit 1; }

BUILD_DIR=${BUILD_DIR:-build-torch2}
echo "build-libtorch2: LibTorch from $PYTORCH_ROOT into $BUILD_DIR"
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE="${BUILD_TYPE:-Release}" -DRLJ_PYTORCH_ROOT="$PYTORCH_ROOT" \
  ${CMAKE_ARGS:-} >/dev/null
cmake --build "$BUILD_DIR" -j "${JOBS:-$(nproc)}"
if [ "$run_tests" = 1 ]; then
  BUILD_DIR="$BUILD_DIR" bash tools/test.sh
fi
