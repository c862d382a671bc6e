#!/usr/bin/env bash
# install-deps.sh: installs every Debian 12 package rlj needs to build, test and run; safe to re-run.
set -euo pipefail

packages=(
  build-essential cmake ninja-build ccache pkg-config git
  libtorch-dev libopenblas0-openmp
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libabsl-dev libspdlog-dev libfmt-dev libgtest-dev libgmock-dev
  libyaml-cpp-dev nlohmann-json3-dev libsqlite3-dev sqlite3
  libcurl4-openssl-dev libcpp-httplib-dev libre2-dev libssl-dev
  libcli11-dev python3 curl
  chromium prometheus python3-grpcio python3-protobuf
)

# RLJ_SKIP_TORCH=1: LibTorch comes from elsewhere (an official CUDA LibTorch, see deploy/docker/Dockerfile.cuda).
if [ "${RLJ_SKIP_TORCH:-0}" = 1 ]; then
  packages=("${packages[@]/libtorch-dev}")
fi

# Node.js runs the examples' and tests' JavaScript clients; a machine that already has one keeps it.
command -v node >/dev/null 2>&1 || packages+=(nodejs npm)

missing=()
for p in "${packages[@]}"; do
  [ -n "$p" ] || continue
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
