"""`python -m runners`: list backends, print a fingerprint, list the catalog, run a suite.

Exit codes of `run`: 0 every case passed (unsupported cases allowed), 1 some case failed,
2 some case errored, 3 the job spec was refused (schema, unknown device), 4 the result
document failed its own schema (a runner bug).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from runners.canonical import canonical_json
from runners.catalog import all_kernels
from runners.device import open_device
from runners.device.client import DeviceProcessError, list_device_backends
from runners.document import DocumentInvalid, validate_document
from runners.measurements import measurement_table
from runners.spec import SpecInvalid, backend_name, build_spec, load_spec, validate_spec
from runners.suites import SUITES

EXIT_PASS, EXIT_FAILURES, EXIT_ERRORS, EXIT_BAD_SPEC, EXIT_BAD_DOCUMENT = 0, 1, 2, 3, 4


# Extra subcommands (`keygen`, `worker`, ...) register a (configure parser, handler) pair.
COMMANDS: dict[
    str, tuple[Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]
] = {}


class ProgressBar:
    """A one-line progress bar on stderr, redrawn at most ten times a second; no dependencies."""

    def __init__(self, stream: TextIO = sys.stderr, width: int = 30) -> None:
        self.stream = stream
        self.width = width
        self._last = 0.0
        self._started = time.perf_counter()

    def __call__(self, done: int, total: int, label: str) -> None:
        now = time.perf_counter()
        if done < total and now - self._last < 0.1:
            return
        self._last = now
        filled = self.width * done // max(total, 1)
        bar = "#" * filled + "-" * (self.width - filled)
        line = f"\r[{bar}] {done}/{total} {now - self._started:5.1f}s {label[:60]:<60}"
        self.stream.write(line + ("\n" if done >= total else ""))
        self.stream.flush()


def summary_table(document: dict[str, Any]) -> str:
    """Kernel x dtype grid of passed/total, with F (fail), E (error), U (unsupported) marks."""
    grid = document["summary"]["by_kernel_dtype"]
    dtypes = sorted({d for row in grid.values() for d in row})
    width = max([len(k) for k in grid] + [6])
    lines = ["kernel".ljust(width) + "".join(f" {d[:13]:>13}" for d in dtypes)]
    for kernel in sorted(grid):
        cells = []
        for dtype in dtypes:
            counts = grid[kernel].get(dtype)
            if counts is None:
                cells.append(f" {'':>13}")
                continue
            total = sum(counts.values())
            marks = "".join(
                f"{m}{counts[s]}"
                for s, m in (("fail", "F"), ("error", "E"), ("unsupported", "U"))
                if counts[s]
            )
            cell = f"{counts['pass']}/{total}" + (f" {marks}" if marks else "")
            cells.append(f" {cell:>13}")
        lines.append(kernel.ljust(width) + "".join(cells))
    summary, timings = document["summary"], document["timings"]
    lines.append(
        f"{summary['total']} cases, {summary['kernels']} kernels: {summary['passed']} passed, "
        f"{summary['failed']} failed, {summary['errors']} errors, {summary['unsupported']} unsupported"
    )
    if "reference_s" in timings:
        share = timings["reference_s"] / timings["total_s"] if timings["total_s"] else 0.0
        lines.append(
            f"time {timings['total_s']:.1f}s: float64 reference {timings['reference_s']:.1f}s ({share:.0%}), "
            f"device {timings.get('device_s', 0.0):.1f}s"
        )
    return "\n".join(lines)


def exit_code(document: dict[str, Any]) -> int:
    summary = document["summary"]
    if summary["errors"]:
        return EXIT_ERRORS
    if summary["failed"]:
        return EXIT_FAILURES
    return EXIT_PASS


def _cmd_backends(args: argparse.Namespace) -> int:
    # Asked of a device process: this process never loads a vendor's plugin (runners/device).
    for backend in list_device_backends():
        available, reason = backend.get("available"), backend.get("reason")
        state = "available" if available else f"unavailable ({reason})"
        dtypes = ", ".join(backend.get("dtypes") or []) if available else ""
        print(f"{backend.get('name')!s:<8} {state}" + (f"  dtypes: {dtypes}" if dtypes else ""))
    return 0


def _cmd_fingerprint(args: argparse.Namespace) -> int:
    try:
        device = open_device(args.device)
    except DeviceProcessError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_SPEC
    with device:
        fingerprint = device.fingerprint()
        fingerprint["memory"], fingerprint["last_level_cache_bytes"] = device.host_facts()
    print(json.dumps(fingerprint, indent=2, sort_keys=True))
    return 0


def _cmd_catalog(args: argparse.Namespace) -> int:
    if args.json:
        print(json.dumps([kernel.describe() for kernel in all_kernels()], indent=2))
        return 0
    total = 0
    for kernel in all_kernels():
        count = sum(len(kernel.cases_for(d)) for d in kernel.dtypes)
        total += count
        print(f"{kernel.name:<24} {count:>3} cases  {','.join(kernel.dtypes):<32} {kernel.description}")
    print(f"{len(all_kernels())} kernels, {total} cases")
    return 0


def _spec_from_args(args: argparse.Namespace) -> dict[str, Any]:
    if args.spec:
        spec = load_spec(args.spec)
        overrides = {
            "suite": args.suite,
            "device": args.device,
            "challenge": args.seed,
            "kernels": args.kernels,
            "dtypes": args.dtypes,
        }
        spec.update({k: v for k, v in overrides.items() if v})
        return validate_spec(_with_duration(spec, args))
    return validate_spec(
        _with_duration(
            build_spec(
                suite=args.suite or "conformance",
                device=args.device or "cpu",
                challenge=args.seed,
                kernels=args.kernels,
                dtypes=args.dtypes,
            ),
            args,
        )
    )


def _with_duration(spec: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """--duration: an exploration override of every serving scenario's minimum duration, which the
    document records as not certifying (runners/serving resolve_settings)."""
    if getattr(args, "duration", None) is None:
        return spec
    if spec.get("suite") != "serving":
        raise SpecInvalid("--duration applies to the serving suite only")
    if not args.duration > 0:
        raise SpecInvalid("--duration must be a positive number of seconds")
    options = spec.setdefault("options", {})
    options.setdefault("serving", {})["duration_override_ms"] = int(args.duration * 1000)
    return spec


def _cmd_run(args: argparse.Namespace) -> int:
    try:
        spec = _spec_from_args(args)
        suite = SUITES.get(spec["suite"])
        if suite is None:
            raise SpecInvalid(
                f"suite {spec['suite']!r} is not installed on this runner; have: {', '.join(SUITES)}"
            )
        # The vendor's stack runs in a device process; this one judges (runners/device).
        backend = open_device(backend_name(spec))
    except (SpecInvalid, DeviceProcessError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_SPEC
    progress = None if args.quiet else ProgressBar()
    with backend:
        document = suite(spec, backend, progress)
    try:
        validate_document(document)
    except DocumentInvalid as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_DOCUMENT
    out = Path(args.out)
    out.write_bytes(canonical_json(document))
    if not args.quiet:
        print(summary_table(document), file=sys.stderr)
        if document.get("measurements"):
            print(measurement_table(document), file=sys.stderr)
        print(f"wrote {out}", file=sys.stderr)
    return exit_code(document)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m runners", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("backends", help="list device backends and whether each is available")
    fingerprint = sub.add_parser("fingerprint", help="print the device and software fingerprint")
    fingerprint.add_argument("--device", default="cpu")
    catalog = sub.add_parser("catalog", help="list the kernel catalog")
    catalog.add_argument("--json", action="store_true")
    run = sub.add_parser("run", help="run a suite and write its result document")
    run.add_argument(
        "--suite", choices=sorted({*SUITES, "conformance", "performance", "model", "serving", "collectives"})
    )
    run.add_argument("--device", help="backend name, e.g. cpu, cuda, npu (default cpu)")
    run.add_argument("--out", required=True, help="where to write the result document (canonical JSON)")
    run.add_argument("--seed", help="challenge as hex (>= 32 digits); a fresh one when omitted")
    run.add_argument("--kernels", nargs="+", help="kernel names (default: the whole catalog)")
    run.add_argument("--dtypes", nargs="+", help="dtypes (default: every dtype of each kernel)")
    run.add_argument("--spec", help="job spec JSON; other flags override its fields")
    run.add_argument("--quiet", action="store_true", help="no progress bar nor summary table")
    run.add_argument(
        "--duration",
        type=float,
        help="serving suite: minimum duration of every LoadGen scenario in seconds (exploration: not certifying)",
    )
    for name, (configure, _) in COMMANDS.items():
        configure(sub.add_parser(name))
    return parser


def _configure_keygen(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, type=Path, help="private key file to create (mode 0600)")
    parser.add_argument("--public", type=Path, help="public key file (default: OUT with .pub.pem)")


def _cmd_keygen(args: argparse.Namespace) -> int:
    """Make this runner host's Ed25519 key pair; the authority registers the public half."""
    from runners.signing import keygen

    public = args.public or args.out.with_suffix(".pub.pem")
    if args.out.exists():
        print(f"{args.out} exists; refusing to overwrite a runner key", file=sys.stderr)
        return EXIT_BAD_SPEC
    key_id = keygen(args.out, public)
    print(f"private key: {args.out}\npublic key:  {public}\nkey id:      {key_id}")
    print("Register the public key with the authority (POST /api/v1/runners/ or the admin).")
    return EXIT_PASS


COMMANDS["keygen"] = (_configure_keygen, _cmd_keygen)

HANDLERS: dict[str, Callable[[argparse.Namespace], int]] = {
    "backends": _cmd_backends,
    "fingerprint": _cmd_fingerprint,
    "catalog": _cmd_catalog,
    "run": _cmd_run,
}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler = HANDLERS.get(args.command) or COMMANDS[args.command][1]
    return handler(args)
