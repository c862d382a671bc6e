"""rlj_test_util.py: helpers shared by the Python tests in tests/python/.

Each test is a script run by ctest as `${RLJ_VENV}/bin/python3 tests/python/X_test.py RLJ_BINARY`; it exits
0 when every check passed, 1 when one failed, and 77 (ctest's SKIP_RETURN_CODE) with the reason on stdout when
it cannot run here (a package of tools/python-requirements.txt missing from the venv).
"""

import contextlib
import importlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
import traceback

SOURCE_DIR = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SKIP = 77


def skip(reason):
    print(f"SKIPPED: {reason}", flush=True)
    sys.exit(SKIP)


def require(module, package=None, requirements="tools/python-requirements.txt"):
    """Imports `module`, or skips the test naming the pinned package that provides it."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        skip(f"Python package {package or module} is not installed in {sys.prefix} ({e}); "
             f"tools/install-deps.sh installs {requirements} into the project venv")


def rlj_binary():
    if len(sys.argv) < 2:
        print(f"usage: {sys.argv[0]} PATH/TO/rlj", file=sys.stderr)
        sys.exit(2)
    path = os.path.abspath(sys.argv[1])
    if not os.access(path, os.X_OK):
        print(f"{path} is not an executable", file=sys.stderr)
        sys.exit(2)
    return path


class Checks:
    """Runs named checks, prints `ok - NAME` / `not ok - NAME: why`, and the tally at the end."""

    def __init__(self):
        self.passed = 0
        self.failed = 0

    def run(self, name, fn, *args):
        try:
            fn(*args)
        except Exception:  # noqa: BLE001 - every failure is reported, the other checks still run
            self.failed += 1
            print(f"not ok - {name}:\n{traceback.format_exc()}", flush=True)
        else:
            self.passed += 1
            print(f"ok - {name}", flush=True)

    def finish(self):
        print(f"{self.passed} passed, {self.failed} failed", flush=True)
        sys.exit(0 if self.failed == 0 and self.passed > 0 else 1)


@contextlib.contextmanager
def scratch_dir(prefix):
    path = tempfile.mkdtemp(prefix=prefix)
    try:
        yield path
    finally:
        if os.environ.get("RLJ_KEEP_SCRATCH"):
            print(f"kept {path}")
        else:
            shutil.rmtree(path, ignore_errors=True)


def run_rlj(rlj, args, timeout=600, **kwargs):
    """Runs `rlj args...` to the end; raises with its output when it fails."""
    result = subprocess.run([rlj, *args], capture_output=True, text=True, timeout=timeout, **kwargs)
    if result.returncode != 0:
        raise RuntimeError(f"rlj {' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result.stdout


@contextlib.contextmanager
def rlj_teacher(rlj, model_dir, run_dir, extra_args=(), startup_s=120):
    """Starts `rlj teacher --model MODEL_DIR` on 127.0.0.1:0; yields its base URL (http://host:port/v1)."""
    log_path = os.path.join(run_dir, "teacher.out")
    endpoint = os.path.join(run_dir, "endpoints", "teacher")
    with open(log_path, "w") as log:
        process = subprocess.Popen([rlj, "teacher", "--model", model_dir, "--listen", "127.0.0.1:0", "--threads", "1",
                                    "--run-dir", run_dir, *extra_args], stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + startup_s
        while not os.path.exists(endpoint):
            if process.poll() is not None:
                raise RuntimeError(f"rlj teacher exited {process.returncode}:\n{open(log_path).read()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"rlj teacher wrote no endpoint within {startup_s} s:\n{open(log_path).read()}")
            time.sleep(0.05)  # polling the endpoint file the teacher writes once it listens
        with open(endpoint) as f:
            address = f.read().strip()
        yield f"http://{address}/v1"
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
