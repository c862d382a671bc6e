#!/usr/bin/env python3
"""list-skipped-tests.py: prints every test that ctest did not run, and why, from ctest's JUnit file.

tools/test.sh runs it after ctest, so a skip is seen at the end of every test run (and of CI), not hidden.
GoogleTest's reason is the message after "Skipped" (GTEST_SKIP() << ...); a script's is its last output lines.
Usage: list-skipped-tests.py CTEST_JUNIT_XML
"""
import sys
import xml.etree.ElementTree as ET


def reason(output: str) -> str:
    lines = [line.rstrip() for line in output.splitlines()]
    for i, line in enumerate(lines):
        if line.endswith(": Skipped") or line == "Skipped":
            message = []
            for follow in lines[i + 1:]:
                if follow.startswith("[  SKIPPED ]") or follow.startswith("[       OK ]"):
                    break
                message.append(follow.strip())
            return " ".join(m for m in message if m) or "(GTEST_SKIP without a message)"
    tail = [line.strip() for line in lines if line.strip()][-2:]
    return " ".join(tail) or "(no output)"


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    try:
        root = ET.parse(sys.argv[1]).getroot()
    except (OSError, ET.ParseError) as error:
        print(f"list-skipped-tests: cannot read {sys.argv[1]}: {error}", file=sys.stderr)
        return 2
    skipped, disabled = [], []
    for case in root.iter("testcase"):
        if case.get("status") == "disabled":
            disabled.append(case.get("name", "?"))
        elif case.get("status") == "notrun" or case.find("skipped") is not None:
            skipped.append((case.get("name", "?"), reason(case.findtext("system-out") or "")))
    total = len(list(root.iter("testcase")))
    print(f"Skipped tests: {len(skipped) or 'none'} of {total}")
    for name, why in skipped:
        print(f"  {name}: {why[:400]}")
    if disabled:  # DISABLED_ tests: generators of golden files and benchmarks, run by hand
        print(f"Disabled by name (DISABLED_, run by hand): {', '.join(disabled)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
