#!/usr/bin/env python3
"""mypy with a recorded baseline that can only shrink.

runners/ must have no error at all (strict, no baseline). Elsewhere (apps/, certification/) the
errors that were there when the checker came in are recorded in .ci/mypy-baseline.json as a count
per (file, error code); the run fails when a count grows or a new (file, code) appears, and also
when a count fell below the record without the record being lowered (`--update` lowers it; it never
raises a count nor adds an entry).

    python .ci/mypy_baseline.py            # check (CI, make lint)
    python .ci/mypy_baseline.py --update   # lower the record after fixing errors
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BASELINE = ROOT / ".ci" / "mypy-baseline.json"
NO_BASELINE = ("runners/",)  # strict and clean: any error fails
ERROR = re.compile(r"^(?P<path>[^:\s]+\.py):\d+: error: .*\[(?P<code>[a-z0-9-]+)\]$")


def run_mypy() -> tuple[Counter[str], list[str], int]:
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "--no-error-summary", "--show-error-codes", "--no-pretty"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    counts: Counter[str] = Counter()
    lines: list[str] = []
    for line in proc.stdout.splitlines():
        match = ERROR.match(line)
        if match:
            counts[f"{match['path']} [{match['code']}]"] += 1
            lines.append(line)
        elif ": error:" in line:  # an error without a code (syntax, config): never baselined
            counts[f"{line} [no-code]"] += 1
            lines.append(line)
    if proc.returncode not in (0, 1):
        sys.stderr.write(proc.stdout + proc.stderr)
    return counts, lines, proc.returncode


def main() -> int:
    update = "--update" in sys.argv[1:]
    counts, lines, returncode = run_mypy()
    if returncode not in (0, 1):
        print(f"mypy did not run (exit {returncode})", file=sys.stderr)
        return 2
    recorded: dict[str, int] = json.loads(BASELINE.read_text()) if BASELINE.exists() else {}
    strict = [line for line in lines if line.startswith(NO_BASELINE)]
    grown = {
        key: n for key, n in counts.items() if n > recorded.get(key, 0) and not key.startswith(NO_BASELINE)
    }
    shrunk = {key: counts.get(key, 0) for key, n in recorded.items() if counts.get(key, 0) < n}
    for line in strict:
        print(line)
    for key, n in sorted(grown.items()):
        print(f"{key}: {n} errors, the baseline allows {recorded.get(key, 0)}")
        for line in lines:
            if line.startswith(key.split(" ")[0] + ":") and line.endswith(key.split(" ")[1]):
                print(f"    {line}")
    if update:
        lowered = {key: min(n, counts.get(key, 0)) for key, n in recorded.items()}
        BASELINE.write_text(json.dumps({k: n for k, n in sorted(lowered.items()) if n}, indent=1) + "\n")
        print(f"baseline lowered: {sum(recorded.values())} -> {sum(lowered.values())} errors")
        shrunk = {}
    elif shrunk:
        for key, n in sorted(shrunk.items()):
            print(f"{key}: {n} errors, the baseline still records {recorded[key]}")
        print("fewer errors than recorded: lower the baseline with `python .ci/mypy_baseline.py --update`")
    total = sum(counts.values())
    if strict or grown or shrunk:
        print(f"mypy: FAILED ({len(strict)} in runners/, {len(grown)} grown, {len(shrunk)} to lower)")
        return 1
    print(f"mypy: ok ({total} baselined errors in {len(counts)} (file, code) entries; runners/ clean)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
