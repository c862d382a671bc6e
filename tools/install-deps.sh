#!/usr/bin/env bash
# install-deps.sh: installs every Debian 12 package that rlj's build, binary, demo and test suite use, and the
# project's own Python virtual environment (pinned tools from PyPI); safe to re-run.
#   bash tools/install-deps.sh          install what is missing
#   bash tools/install-deps.sh --list   print the Debian package names it manages, one per line, nothing else
# RLJ_SKIP_TORCH=1: LibTorch comes from elsewhere (an official CUDA LibTorch, see deploy/docker/Dockerfile.cuda).
# RLJ_VENV=DIR: where the virtual environment lives (default: .venv in the project root).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"

packages=(
  # The build.
  build-essential cmake ninja-build ccache pkg-config git
  libtorch-dev libopenblas0-openmp libgloo-dev
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libabsl-dev libspdlog-dev libfmt-dev libgtest-dev libgmock-dev
  libyaml-cpp-dev nlohmann-json3-dev libsqlite3-dev sqlite3
  libcurl4-openssl-dev libcpp-httplib-dev libre2-dev libssl-dev
  libcli11-dev
  # What the demo and the tests run: Python judges and baselines, the TLS test's certificates, the HTML report in
  # a headless browser, promtool, the multi-host test's network namespaces, the project's virtual environment.
  python3 python3-venv python3-dev python3-grpcio python3-protobuf curl openssl
  # The heavy venv's PyTorch (Hugging Face transformers checks rlj export's checkpoints against it): the Python side
  # of the LibTorch 1.13 rlj builds on. python3-dev: reasoning-gym's pycosat is built from source.
  python3-torch
  chromium prometheus iproute2
  # tools/sanitize.sh and tools/fuzz.sh: clang-14 with its sanitizer and libFuzzer runtimes; tools/format.sh (and CI):
  # clang-format-14.
  clang-14 libclang-rt-14-dev clang-format-14
)
if [ "${RLJ_SKIP_TORCH:-0}" = 1 ]; then
  packages=("${packages[@]/libtorch-dev}")
fi
# Node.js runs the examples' and tests' JavaScript clients. Debian's npm package needs Debian's nodejs; an
# installed nodejs package that provides npm itself (NodeSource's) is kept, and npm is then not ours to name.
# (Decided by the package, not by whether npm is on PATH, so --list says the same before and after installing.)
packages+=(nodejs)
dpkg-query -W -f='${Provides}' nodejs 2>/dev/null | grep -qw npm || packages+=(npm)

if [ "${1:-}" = --list ]; then
  for p in "${packages[@]}"; do [ -n "$p" ] && echo "$p"; done
  exit 0
elif [ $# -gt 0 ]; then
  echo "install-deps: unknown argument '$1' (usage: tools/install-deps.sh [--list])" >&2
  exit 2
fi

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

missing=()
for p in "${packages[@]}"; do
  [ -n "$p" ] || continue
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} Debian packages present"
else
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# The project's virtual environments, from Debian's Python (--system-site-packages: Debian's python3-grpcio,
# python3-protobuf and python3-torch stay visible), each rebuilt when its pinned requirements change. Nothing goes
# into the system Python.
#   .venv        tools/python-requirements.txt: kubectl, the OpenAI client, tokenizers, TensorBoard, Reasoning Gym
#   .venv-heavy  tools/python-requirements-heavy.txt: Hugging Face transformers over Debian's PyTorch
make_venv() {
  local venv="$1" requirements="$2"
  local stamp="$venv/.requirements"
  if [ -f "$stamp" ] && cmp -s "$stamp" "$requirements"; then
    echo "install-deps: $venv is up to date"
    return
  fi
  echo "install-deps: creating $venv from $requirements"
  rm -rf "$venv"
  /usr/bin/python3 -m venv --system-site-packages "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check --no-cache-dir -r "$requirements"
  cp "$requirements" "$stamp"
}
make_venv "${RLJ_VENV:-$root/.venv}" "$root/tools/python-requirements.txt"
make_venv "${RLJ_HEAVY_VENV:-$root/.venv-heavy}" "$root/tools/python-requirements-heavy.txt"
