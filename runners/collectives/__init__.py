"""The collectives suite (issue 16): all_reduce, all_gather, reduce_scatter and all_to_all with the
uneven splits MoE dispatch sends, through torch.distributed over the target's devices.

One process per device (runners/collectives/rank.py, started with spawn) joins a process group on
the backend's distributed backend (gloo on the CPU, NCCL on CUDA, HCCL on Ascend, ...), runs every
case and writes its outputs and per-call times to files. This process, the judge, regenerates every
rank's inputs from the challenge, computes the float64 reference and judges each case; it reports
bandwidth the way nccl-tests does (doc/PERFORMANCE.md, github.com/NVIDIA/nccl-tests):

    algbw = S / t, with S the bytes of the operation's full buffer (all_reduce: the buffer; all_gather:
    the gathered output; reduce_scatter: the input; alltoall: one rank's send buffer) and t the time
    of one call (here the median over calls of the slowest rank's time);
    busbw = algbw * factor, factor 2(n-1)/n for all_reduce and (n-1)/n for all_gather,
    reduce_scatter and alltoall, so busbw compares with the link's bandwidth whatever n is.

With fewer than two devices there is no collective to measure: the document says so
(collectives.applicable false, no cases) rather than timing a copy.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from runners.catalog.base import gamma, subnormal_ulp, torch_dtype, unit_roundoff
from runners.collectives_plan import (  # noqa: F401 - the suite's plan, re-exported
    BUS_FACTOR_SOURCE,
    DEFAULTS,
    DIST_BACKENDS,
    DTYPES,
    LIMITS,
    MAX_SIZE_BYTES,
    OPS,
    CollectivesSpecInvalid,
    bus_factor,
    settings,
)
from runners.conformance import Progress, compare, tensor_digest
from runners.document import build_document, now_iso
from runners.errors import BAD_SPEC, INFRASTRUCTURE, PRODUCT_FAILURE, TIMEOUT, error
from runners.measurements import measurement
from runners.spec import backend_name
from runners.timing import summarize


def _seed(*parts: object) -> int:
    digest = hashlib.sha256("|".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") & (2**63 - 1)


def moe_splits(challenge: str, case_id: int, world: int, tokens: int) -> list[list[int]]:
    """splits[src][dst]: rows (tokens) rank src sends rank dst. Uneven as top-k routing makes them,
    and rank 0 sends the last rank nothing (an expert with no tokens); drawn from the challenge."""
    rng = random.Random(_seed(challenge, "collectives-splits", case_id))
    splits = []
    for src in range(world):
        weights = [rng.random() ** 2 for _ in range(world)]
        if src == 0 and world > 1:
            weights[-1] = 0.0
        total = sum(weights) or 1.0
        row = [int(tokens * w / total) for w in weights]
        row[rng.randrange(world - 1) if src == 0 and world > 1 else 0] += tokens - sum(row)
        splits.append(row)
    return splits


def plan_cases(settings: dict[str, Any], world: int, challenge: str) -> list[dict[str, Any]]:
    cases: list[dict[str, Any]] = []
    for op in settings["ops"]:
        for dtype in settings["dtypes"]:
            size = torch.empty((), dtype=torch_dtype(dtype)).element_size()
            for nbytes in settings["sizes_bytes"]:
                case: dict[str, Any] = {"id": len(cases), "op": op, "dtype": dtype}
                count = max(nbytes // size, world)
                if op == "all_to_all":
                    hidden = settings["hidden"]
                    tokens = max(count // hidden, world)
                    case.update(hidden=hidden, splits=moe_splits(challenge, len(cases), world, tokens))
                    case["bytes"] = tokens * hidden * size
                    case["count"] = tokens * hidden
                else:
                    count -= count % world
                    # nccl-tests' S: all_gather's is the gathered output, so each rank sends S / n.
                    case["count"] = count // world if op == "all_gather" else count
                    case["bytes"] = count * size
                # Named by the size asked for (unique in the plan); `bytes` is nccl-tests' S as run
                # (all_to_all rounds to whole rows of `hidden`).
                case["name"] = f"size_{nbytes}"
                cases.append(case)
    return cases


def rank_input(case: dict[str, Any], rank: int, world: int, challenge: str) -> torch.Tensor:
    """Rank `rank`'s input of `case`, from the challenge alone (the judge draws every rank's again)."""
    g = torch.Generator(device="cpu").manual_seed(_seed(challenge, "collectives", case["id"], rank))
    dtype = torch_dtype(case["dtype"])
    if case["op"] == "all_to_all":
        rows = sum(case["splits"][rank])
        return torch.randn((rows, case["hidden"]), generator=g).to(dtype)
    return torch.randn((case["count"],), generator=g).to(dtype)


def reference(case: dict[str, Any], world: int, challenge: str) -> tuple[list[torch.Tensor], list[Any]]:
    """Each rank's expected output in float64, and its componentwise allowance (None: exact)."""
    inputs = [rank_input(case, r, world, challenge).to(torch.float64) for r in range(world)]
    op = case["op"]
    if op == "all_gather":
        return [torch.cat(inputs)] * world, [None] * world
    if op == "all_to_all":
        expected = []
        for dst in range(world):
            parts = []
            for src in range(world):
                start = sum(case["splits"][src][:dst])
                parts.append(inputs[src][start : start + case["splits"][src][dst]])
            expected.append(torch.cat(parts))
        return expected, [None] * world
    total = torch.stack(inputs).sum(0)
    # n - 1 additions in the buffer's dtype (a ring or tree rounds at every hop) plus the float64
    # reference's own: gamma_n(u) * sum |x_r| (Higham 2002, s3.1).
    bound = torch.stack(inputs).abs().sum(0) * (
        gamma(world, unit_roundoff(case["dtype"])) + gamma(world, 2.0**-53)
    )
    if op == "all_reduce":
        return [total] * world, [bound] * world
    return list(total.chunk(world)), list(bound.chunk(world))


def tolerance_for(case: dict[str, Any], world: int) -> tuple[float, float, str]:
    if case["op"] in ("all_gather", "all_to_all"):
        return 0.0, 0.0, "data movement is bit-exact"
    u = unit_roundoff(case["dtype"])
    return (
        subnormal_ulp(case["dtype"]),
        2 * u / (1 - u),
        f"componentwise gamma_n(u) * sum_r |x_r| + 2u/(1 - u) |ref| + one subnormal spacing, n = {world} ranks "
        f"summed in {case['dtype']} (u = 2^-{round(-math.log2(u))}): Higham, Accuracy and Stability of "
        "Numerical Algorithms (SIAM 2002) s3.1",
    )


def _read_output(outdir: Path, rank: int, case: dict[str, Any], meta: dict[str, Any]) -> torch.Tensor:
    """A rank's output as the bytes it wrote, checked against the shape and dtype it claimed."""
    dtype_name = meta.get("dtype")
    shape = meta.get("shape")
    if dtype_name != case["dtype"]:
        raise ValueError(f"rank {rank} returned dtype {dtype_name}, expected {case['dtype']}")
    if not isinstance(shape, list) or not all(type(s) is int and s >= 0 for s in shape) or len(shape) > 4:
        raise ValueError(f"rank {rank} returned a malformed shape")
    path = outdir / f"r{rank}_c{case['id']}.bin"
    dtype = torch_dtype(case["dtype"])
    size = math.prod(shape) * torch.empty((), dtype=dtype).element_size()
    if path.stat().st_size != size:  # checked before reading: a rank cannot make the judge read gigabytes
        raise ValueError(f"rank {rank} wrote {path.stat().st_size} bytes for shape {shape}")
    data = path.read_bytes()
    if not data:
        return torch.empty(shape, dtype=dtype)
    return torch.frombuffer(bytearray(data), dtype=torch.uint8).view(dtype).reshape(shape)


def _record(case: dict[str, Any], status: str, **extra: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "kernel": case["op"],
        "dtype": case["dtype"],
        "case": case["name"],
        "status": status,
        "error_class": None,
        "code": None,
        "reason": None,
        "message": None,
        "stats": None,
        "output_digest": None,
        "shape": None,
        "flops": None,
        "bytes": case["bytes"],
        "dims": {"count": case["count"]},
    }
    record.update(extra)
    return record


def judge_case(
    case: dict[str, Any], world: int, challenge: str, outdir: Path, ranks: list[dict[str, Any]]
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The case's record and, when it passed, its bandwidth measurement."""
    metas = []
    for rank, record in enumerate(ranks):
        meta = next((c for c in record.get("cases", []) if c.get("id") == case["id"]), None)
        if meta is None or meta.get("error"):
            why = (meta or {}).get("error") or record.get("error") or "the rank did not report this case"
            failure = error(PRODUCT_FAILURE, "collective raised")
            return _record(case, message=f"rank {rank}: {why}"[:500], **failure.fields()), None
        metas.append(meta)
    try:
        outputs = [_read_output(outdir, r, case, metas[r]) for r in range(world)]
    except (OSError, ValueError) as exc:
        return _record(case, message=str(exc)[:500], **error(PRODUCT_FAILURE, "wrong output").fields()), None
    expected, bounds = reference(case, world, challenge)
    atol, rtol, source = tolerance_for(case, world)
    shapes_ok = all(tuple(o.shape) == tuple(e.shape) for o, e in zip(outputs, expected, strict=True))
    if not shapes_ok:
        message = (
            f"wrong shapes {[list(o.shape) for o in outputs]}, expected {[list(e.shape) for e in expected]}"
        )
        return _record(case, message=message, **error(PRODUCT_FAILURE, "wrong shape").fields()), None
    dtype = torch_dtype(case["dtype"])
    joined = torch.cat([o.reshape(-1) for o in outputs])
    reference_joined = torch.cat([e.reshape(-1) for e in expected]).to(dtype)
    bound = None if bounds[0] is None else torch.cat([b.reshape(-1) for b in bounds])
    stats = compare(joined, reference_joined, atol, rtol, bound)
    stats.update(atol=atol, rtol=rtol, tolerance_source=source, componentwise=bound is not None)
    passed = stats["mismatches"] == 0
    record = _record(
        case,
        "pass" if passed else "fail",
        stats=stats,
        message=None if passed else f"{stats['mismatches']} of {joined.numel()} elements outside tolerance",
        output_digest=tensor_digest(*outputs),
        shape=[world, *outputs[0].shape] if case["op"] != "all_to_all" else [int(joined.numel())],
    )
    if not passed:
        return record, None
    samples = [max(times) for times in zip(*(m["times"] for m in metas), strict=False)]
    if not samples or not all(isinstance(s, float) and s > 0 for s in samples):
        return record, None
    timing = summarize(samples)
    factor = bus_factor(case["op"], world)
    algbw = case["bytes"] / timing.median / 1e9
    item = measurement(
        name=f"{case['op']}/{case['dtype']}/{case['bytes']}",
        kind="collective",
        unit="GB/s",
        value=algbw * factor,
        dtype=case["dtype"],
        params={
            "op": case["op"],
            "case": case["name"],
            "bytes": case["bytes"],
            "world_size": world,
            "algbw_gbps": algbw,
            "busbw_gbps": algbw * factor,
            "bus_factor": factor,
            "time_s": timing.median,
        },
        stats=timing,
    )
    return record, item


def _launch(
    world: int,
    name: str,
    dist_backend: str,
    plan: list[dict[str, Any]],
    challenge: str,
    outdir: Path,
    ops_module: str,
    options: dict[str, Any],
) -> str | None:
    """Starts one process per rank (python -m runners.collectives.rank) and waits for all of them;
    says what went wrong with the processes, or None. Plain subprocesses: nothing is pickled either
    way, and the caller's __main__ is never re-imported (as multiprocessing's spawn would)."""
    job = {
        "world": world,
        "backend": name,
        "dist_backend": dist_backend,
        "init_file": str(outdir / "init"),
        "plan": plan,
        "challenge": challenge,
        "outdir": str(outdir),
        "ops_module": ops_module,
        "timing": {"warmup": options["warmup"], "iterations": options["iterations"]},
    }
    (outdir / "job.json").write_text(json.dumps(job))
    package_root = str(Path(__file__).resolve().parents[2])
    paths = [package_root, os.getcwd(), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(dict.fromkeys(paths))}
    logs = [(outdir / f"rank{rank}.stderr").open("wb") for rank in range(world)]
    processes = [
        subprocess.Popen(  # noqa: S603 - our own interpreter and module, fixed arguments
            [sys.executable, "-m", "runners.collectives.rank", str(outdir / "job.json"), str(rank)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=logs[rank],
        )
        for rank in range(world)
    ]
    deadline = time.monotonic() + float(options["timeout_s"])
    hung = []
    for rank, process in enumerate(processes):
        try:
            process.wait(max(deadline - time.monotonic(), 0.01))
        except subprocess.TimeoutExpired:
            hung.append(rank)
    for process in processes:
        if process.poll() is None:
            process.kill()
            process.wait(10)
    for log in logs:
        log.close()
    if hung:
        return (
            f"ranks {hung} still running after {options['timeout_s']} s (a collective that never completed)"
        )
    crashed = [(rank, p.returncode) for rank, p in enumerate(processes) if p.returncode != 0]
    return f"rank processes exited abnormally: {crashed}" if crashed else None


def run_collectives(
    spec: dict[str, Any],
    backend: Any,
    progress: Progress | None = None,
    *,
    ops_module: str = "runners.collectives.ops",
) -> dict[str, Any]:
    """Runs the collectives suite on the spec's backend; returns the result document.

    `ops_module` names the module whose four functions run the collectives (tests plant faults
    through it); a job spec cannot set it."""
    started_at = now_iso()
    started = time.perf_counter()
    name = backend_name(spec)
    fingerprint = backend.fingerprint()
    try:
        options = settings(spec)
    except CollectivesSpecInvalid as exc:
        bad = {"op": "*", "dtype": "*", "name": "*", "bytes": 0, "count": 0}
        record = _record(bad, message=str(exc), **error(BAD_SPEC, "bad collectives options").fields())
        record.update(bytes=None)
        record.pop("dims")
        refused = {"applicable": False, "reason": str(exc), "world_size": 0, "backend": None}
        return _document(spec, fingerprint, [record], [], refused, started, started_at)
    devices = int(fingerprint.get("device_count") or 0)
    world = options["world_size"] or (2 if name == "cpu" else devices)
    dist_backend = getattr(backend, "distributed_backend", None) or DIST_BACKENDS.get(name)
    section: dict[str, Any] = {
        "applicable": True,
        "reason": None,
        "backend": dist_backend,
        "world_size": world,
        "devices_reported": devices,
        "interconnect": options.get("interconnect"),
        "bus_factors": {op: bus_factor(op, world) for op in OPS} if world > 0 else {},
        "source": BUS_FACTOR_SOURCE,
    }
    if world < 2 or (name != "cpu" and devices < world):
        section.update(
            applicable=False,
            reason=f"{min(world, devices) if name != 'cpu' else world} device(s): "
            f"a collective needs at least two (world size {world}, devices {devices})",
        )
        return _document(spec, fingerprint, [], [], section, started, started_at)
    if dist_backend is None:
        section.update(applicable=False, reason=f"no torch.distributed backend known for {name!r}")
        return _document(spec, fingerprint, [], [], section, started, started_at)
    plan = plan_cases(options, world, str(spec["challenge"]))
    outdir = Path(tempfile.mkdtemp(prefix="collectives-"))
    try:
        launch_error = _launch(
            world, name, dist_backend, plan, str(spec["challenge"]), outdir, ops_module, options
        )
        ranks = []
        for rank in range(world):
            path = outdir / f"rank{rank}.json"
            try:
                ranks.append(
                    json.loads(path.read_text()) if path.exists() else {"cases": [], "error": launch_error}
                )
            except ValueError:
                ranks.append({"cases": [], "error": "the rank's report is not JSON"})
        cases, items = [], []
        for done, case in enumerate(plan):
            if launch_error and not all(
                any(c.get("id") == case["id"] for c in r.get("cases", [])) for r in ranks
            ):
                code = TIMEOUT if "still running" in launch_error else INFRASTRUCTURE
                cases.append(
                    _record(case, message=launch_error[:500], **error(code, "rank processes").fields())
                )
            else:
                record, item = judge_case(case, world, str(spec["challenge"]), outdir, ranks)
                cases.append(record)
                if item is not None:
                    items.append(item)
            if progress is not None:
                progress(done + 1, len(plan), f"{case['op']} {case['dtype']} {case['bytes']} B")
        section["devices"] = [
            {"rank": r, "device": ranks[r].get("device"), "device_name": ranks[r].get("device_name")}
            for r in range(world)
        ]
    finally:
        shutil.rmtree(outdir, ignore_errors=True)
    return _document(spec, fingerprint, cases, items, section, started, started_at)


def _document(
    spec: dict[str, Any],
    fingerprint: dict[str, Any],
    cases: list[dict[str, Any]],
    items: list[dict[str, Any]],
    section: dict[str, Any],
    started: float,
    started_at: str,
) -> dict[str, Any]:
    return build_document(
        "collectives",
        spec,
        fingerprint,
        cases,
        {"total_s": time.perf_counter() - started},
        started_at,
        measurements=items,
        collectives=section,
    )
