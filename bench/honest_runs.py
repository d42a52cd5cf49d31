"""Runs the whole conformance suite on the CPU again and again, each time with a fresh challenge.

An honest chip must pass every case of every run (issue 11, item 7): a tolerance that fails an
honest device now and then is a tolerance model that is wrong somewhere. Prints, per run, its
wall and CPU time and any case that did not pass, then the count of fully passing runs.

A failure that is one of this machine's probed real findings (tests/cpu_findings.py: a fault of
PyTorch's bundled oneDNN that the float64 reference rightly catches, probed on tiny fixed inputs) is
marked as such, and a second count says how many runs failed nothing else: the first count is what a
certificate would say of this CPU, the second whether the suite's tolerances ever fail an honest
computation by chance.

    python bench/honest_runs.py [--runs 50] [--dtypes float32,bfloat16] [--kernels add,mul]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from runners.backends import get_backend  # noqa: E402
from runners.conformance import run_conformance  # noqa: E402
from runners.spec import build_spec  # noqa: E402
from tests.cpu_findings import explained, present  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--dtypes", default=None, help="comma-separated; default every catalog dtype")
    parser.add_argument("--kernels", default=None, help="comma-separated; default the whole catalog")
    args = parser.parse_args()
    backend = get_backend("cpu")
    dtypes = args.dtypes.split(",") if args.dtypes else None
    kernels = args.kernels.split(",") if args.kernels else None
    clean, only_findings, failures, closest = 0, 0, {}, {}
    findings = present()
    print("probed real findings of this CPU: " + (", ".join(f.key for f in findings) or "none"), flush=True)
    for run in range(1, args.runs + 1):
        spec = build_spec(suite="conformance", device="cpu", dtypes=dtypes, kernels=kernels)
        wall, cpu = time.perf_counter(), time.process_time()
        document = run_conformance(spec, backend)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        bad = [c for c in document["cases"] if c["status"] not in ("pass", "unsupported")]
        for case in document["cases"]:
            ratio = (case.get("stats") or {}).get("tolerance_ratio")
            key = f"{case['kernel']}/{case['dtype']}/{case['case']}"
            if ratio is not None and ratio > closest.get(key, 0.0):
                closest[key] = ratio
        clean += not bad
        only_findings += all(explained(c) is not None for c in bad)
        print(
            f"run {run:3d} challenge {spec['challenge'][:12]} cases {len(document['cases'])} "
            f"wall {wall:5.1f}s cpu {cpu:5.1f}s not passing {len(bad)}",
            flush=True,
        )
        for case in bad:
            key = f"{case['kernel']}/{case['dtype']}/{case['case']}"
            failures[key] = failures.get(key, 0) + 1
            ratio = (case.get("stats") or {}).get("tolerance_ratio")
            finding = explained(case)
            why = f"  [probed finding {finding.key}]" if finding else "  [NOT a probed finding]"
            print(f"    {key}: {case['status']} {case['message']} (tolerance ratio {ratio}){why}", flush=True)
    print(f"{clean} of {args.runs} honest runs passed every case")
    print(f"{only_findings} of {args.runs} honest runs failed nothing but this CPU's probed findings")
    print("closest to their tolerance (worst error / allowance over all runs):")
    for key, ratio in sorted(closest.items(), key=lambda kv: -kv[1])[:10]:
        print(f"  {key}: {ratio:.3f}")
    for key, count in sorted(failures.items(), key=lambda kv: -kv[1]):
        print(f"  {key}: failed in {count} run(s)")


if __name__ == "__main__":
    main()
