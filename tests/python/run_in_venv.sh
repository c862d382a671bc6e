#!/bin/sh
# run_in_venv.sh VENV_PYTHON SCRIPT ARGS...: how ctest runs the tests of tests/python/ (tests/CMakeLists.txt): with
# the project venv's Python (tools/install-deps.sh), or skipped (exit 77, ctest's SKIP_RETURN_CODE) saying why.
python="$1"
shift
if [ ! -x "$python" ]; then
  echo "SKIPPED: no $python: tools/install-deps.sh makes the project venv (RLJ_VENV=DIR picks another; the heavy one: tools/python-requirements-heavy.txt)"
  exit 77
fi
exec "$python" "$@"
