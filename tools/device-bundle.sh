#!/usr/bin/env bash
# device-bundle.sh: what the GPU machine needs to run tools/device-check.sh, built here: rlj and two test binaries
# linked against PyPI's torch 2.11.0 with its CUDA libraries (cmake -DRLJ_TORCH_LINK_CUDA=ON, into
# build-torch2-cuda/), stripped, in device-bundle/bin; and in device-bundle/lib the shared libraries they need
# from Debian (gRPC, Protobuf, Abseil, ...) but not LibTorch's, glibc's or the CUDA ones, which the GPU machine's
# PyTorch install has. The GPU machine has no Debian -dev packages and no package registry; this folder is what
# the device tool carries (its limit is 64 MiB in all).
#   bash tools/device-bundle.sh
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
# The headers at build-torch2's path: the compiler cache then holds every object but the learner's (NCCL).
BUILD_DIR=build-torch2-cuda \
  CMAKE_ARGS="-DRLJ_TORCH_LINK_CUDA=ON -DRLJ_TORCH_INCLUDE_FARM=$root/build-torch2/torch-include ${CMAKE_ARGS:-}" \
  bash tools/build-libtorch2.sh
build=$root/build-torch2-cuda
bundle=$root/device-bundle
rm -rf "$bundle"
mkdir -p "$bundle/bin" "$bundle/lib"
for binary in "$build/rlj" "$build/tests/rlj_model_tests" "$build/tests/rlj_learner_tests"; do
  strip -o "$bundle/bin/$(basename "$binary")" "$binary"
done
# Every library the binaries load from this machine's system folders, but LibTorch's own (the GPU machine's PyTorch
# brings them, with the CUDA libraries they need), glibc's and the dynamic loader. libstdc++ and libgcc_s go along:
# the binaries need the GCC 12 runtime, which an older distribution lacks.
ldd "$bundle"/bin/* 2>/dev/null | awk '/=> \// {print $3}' | sort -u |
  grep -v -E '/(libtorch|libc10|libgomp|libcudart|libcupti|libnv|libcu)[^/]*$' |
  grep -v -E '/(libc|libm|libdl|librt|libpthread|ld-linux-x86-64|libresolv|libutil)\.so' |
  while read -r lib; do cp -L "$lib" "$bundle/lib/"; done
strip --strip-unneeded "$bundle"/lib/*.so* 2>/dev/null || true
echo "device-bundle: $(du -sh "$bundle" | cut -f1) in $bundle ($(ls "$bundle/lib" | wc -l) libraries)"
