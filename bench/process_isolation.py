"""What the device process costs: the same conformance plan in-process and through runners.device.

Runs the plan twice on the CPU backend with the same challenge, once with the backend in this
process (no isolation) and once through a DeviceClient (device process, tensors over pipes), and
prints the wall time of each, the device process's start-up, and the judge-side transfer time
(frames written and read, less the device's own time). Both documents must agree case by case.

Usage: python bench/process_isolation.py [--kernels K ...] [--dtypes D ...] [--seed HEX]
       (default: the whole catalog, every dtype: the default conformance plan)
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
from runners.device.client import DeviceClient
from runners.document import validate_document
from runners.spec import build_spec


def _verdicts(document: dict) -> dict:
    return {
        (c["kernel"], c["dtype"], c["case"]): (c["status"], c["output_digest"]) for c in document["cases"]
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", default="b3" * 16)
    parser.add_argument("--kernels", nargs="+")
    parser.add_argument("--dtypes", nargs="+")
    args = parser.parse_args()
    spec = build_spec(
        suite="conformance", device="cpu", challenge=args.seed, kernels=args.kernels, dtypes=args.dtypes
    )

    started = time.perf_counter()
    local = run_conformance(spec, get_backend("cpu"))
    local_s = time.perf_counter() - started

    started = time.perf_counter()
    device = DeviceClient("cpu")
    startup_s = time.perf_counter() - started
    with device:
        isolated = run_conformance(spec, device)
    isolated_s = time.perf_counter() - started
    for document in (local, isolated):
        validate_document(document)
    same = _verdicts(local) == _verdicts(isolated)
    summary, timings = isolated["summary"], isolated["timings"]
    print(f"cases {summary['total']} ({summary['passed']} pass), same verdicts and output digests: {same}")
    print(
        f"in-process      {local_s:7.2f}s  (reference {local['timings']['reference_s']:.2f}s, device {local['timings']['device_s']:.2f}s)"
    )
    print(
        f"device process  {isolated_s:7.2f}s  (start-up {startup_s:.2f}s, reference {timings['reference_s']:.2f}s, "
        f"device {timings['device_s']:.2f}s, transfer {timings['transfer_s']:.2f}s)"
    )
    per_case_ms = 1000 * timings["transfer_s"] / max(summary["total"], 1)
    print(
        f"overhead        {isolated_s - local_s:+7.2f}s ({(isolated_s - local_s) / local_s:+.0%}); "
        f"transfer {per_case_ms:.2f} ms per case"
    )
    sys.exit(0 if same else 1)


if __name__ == "__main__":
    main()
