"""Benchmark: runners.conformance.compare, the comparison the runner and the platform's reveal judge
run on every output, in nanoseconds per element (one thread, as the platform's reveal judges run;
medians of rounds). With --against, another version of runners/conformance.py (e.g. an earlier
commit's, from `git show REV:runners/conformance.py > /tmp/conformance_before.py`) is timed in the same
process on the same tensors, runs interleaved, and the ratio printed (this one / that one).

    OMP_NUM_THREADS=1 .venv/bin/python bench/compare_time.py [--rounds 15] [--against FILE]
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--against", type=Path, default=None)
    args = parser.parse_args()
    import torch

    from runners import conformance

    versions = {"this": conformance.compare}
    if args.against:
        spec = importlib.util.spec_from_file_location("conformance_against", args.against)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # its dataclasses look their module up
        spec.loader.exec_module(module)
        versions["against"] = module.compare
    torch.set_num_threads(1)
    generator = torch.Generator().manual_seed(0)
    for count in (1 << 14, 1 << 16, 1 << 20):
        reference = torch.randn(count, generator=generator, dtype=torch.float64)
        output = (reference * (1 + 1e-7)).to(torch.float32)
        expected = reference.to(torch.float32)
        bound = torch.rand(count, generator=generator, dtype=torch.float64) * 1e-6
        for label, extra in (("without a bound", None), ("with a componentwise bound", bound)):
            times: dict[str, list[float]] = {name: [] for name in versions}
            for compare in versions.values():
                compare(output, expected, 1e-5, 1e-5, extra)  # warm-up
            for round_ in range(args.rounds):
                order = list(versions.items())
                for name, compare in order if round_ % 2 else reversed(order):
                    started = time.perf_counter()
                    compare(output, expected, 1e-5, 1e-5, extra)
                    times[name].append(time.perf_counter() - started)
            median = {name: statistics.median(values) for name, values in times.items()}
            line = f"{count:>8} float32 elements, {label}: {median['this'] * 1e3:.3f} ms"
            line += f", {median['this'] / count * 1e9:.1f} ns/element"
            if "against" in median:
                line += f"; against {median['against'] * 1e3:.3f} ms: ratio {median['this'] / median['against']:.2f}"
            print(line)


if __name__ == "__main__":
    main()
