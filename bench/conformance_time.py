"""Times the whole conformance suite on the CPU and prints the float64 reference's share.

Usage: python bench/conformance_time.py [--seed HEX]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

# Run as a script, bench/ is on sys.path rather than the repository root.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from runners.backends import get_backend
from runners.conformance import run_conformance
from runners.document import validate_document
from runners.spec import build_spec


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", default=None)
    args = parser.parse_args()
    spec = build_spec(suite="conformance", device="cpu", challenge=args.seed)
    started = time.perf_counter()
    cpu_started = time.process_time()
    document = run_conformance(spec, get_backend("cpu"))
    wall = time.perf_counter() - started
    validate_document(document)
    timings, summary = document["timings"], document["summary"]
    print(
        f"cases {summary['total']} over {summary['kernels']} kernels, dtypes {', '.join(summary['dtypes'])}"
    )
    print(
        f"passed {summary['passed']}, failed {summary['failed']}, errors {summary['errors']}, "
        f"unsupported {summary['unsupported']}"
    )
    print(f"total {wall:.1f}s wall ({time.process_time() - cpu_started:.1f}s CPU over all threads)")
    print(
        f"reference {timings['reference_s']:.1f}s ({timings['reference_s'] / wall:.0%} of wall), "
        f"device {timings['device_s']:.1f}s ({timings['device_s'] / wall:.0%})"
    )


if __name__ == "__main__":
    main()
