#!/usr/bin/env bash
# format.sh: lays out rlj's C++ by .clang-format with Debian's clang-format-14 (tools/install-deps.sh installs it).
#   bash tools/format.sh           rewrite every tracked .cc/.h file in place
#   bash tools/format.sh --check   change nothing; list the files that differ and exit 1 if any does (CI runs this)
set -euo pipefail
cd "$(dirname "$0")/.."
formatter=${CLANG_FORMAT:-clang-format-14}
command -v "$formatter" >/dev/null || { echo "format.sh: $formatter not found (bash tools/install-deps.sh)" >&2; exit 2; }
mapfile -t files < <(git ls-files '*.cc' '*.h' | grep -v '\.inc$')
if [ "${1:-}" = --check ]; then
  differ=0
  for f in "${files[@]}"; do
    if ! "$formatter" --style=file --dry-run --Werror "$f" >/dev/null 2>&1; then
      echo "format.sh: $f differs from .clang-format (bash tools/format.sh rewrites it)"
      differ=1
    fi
  done
  [ "$differ" = 0 ] && echo "format.sh: ${#files[@]} files follow .clang-format"
  exit "$differ"
elif [ $# -gt 0 ]; then
  echo "format.sh: unknown argument '$1' (usage: tools/format.sh [--check])" >&2
  exit 2
fi
"$formatter" --style=file -i "${files[@]}"
