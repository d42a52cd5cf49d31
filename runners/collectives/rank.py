"""One rank of the collectives suite: a device process started by runners/collectives as
`python -m runners.collectives.rank JOB.json RANK`.

It loads the target's stack, joins the process group, runs every planned case through the ops
module and writes, per case, its first output's raw bytes and its per-call times; it judges nothing.
The judge reads those files as bytes (never unpickles what a rank wrote).
"""

from __future__ import annotations

import importlib
import json
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import torch

from runners.collectives import rank_input


def _sync(backend: Any) -> None:
    backend.synchronize()


def rank_main(
    rank: int,
    world: int,
    backend_name: str,
    dist_backend: str,
    init_file: str,
    plan: list[dict[str, Any]],
    challenge: str,
    outdir: str,
    ops_module: str,
    timing: dict[str, int],
) -> None:
    import torch.distributed as dist

    from runners.backends import get_backend

    out = Path(outdir)
    record: dict[str, Any] = {"rank": rank, "cases": [], "error": None}
    try:
        backend = get_backend(backend_name)
        device = (
            torch.device("cpu")
            if backend_name == "cpu"
            else backend.device(rank % max(backend.device_count(), 1))
        )
        if device.type != "cpu":
            getattr(torch, device.type).set_device(device)
        record["device"] = str(device)
        record["device_name"] = backend.device_name()
        ops = importlib.import_module(ops_module)
        dist.init_process_group(dist_backend, init_method=f"file://{init_file}", rank=rank, world_size=world)
        try:
            for case in plan:
                record["cases"].append(
                    _run_case(case, rank, world, challenge, device, backend, ops, out, timing)
                )
                dist.barrier()
        finally:
            dist.destroy_process_group()
    except Exception as exc:  # the judge records it against every case this rank did not finish
        record["error"] = f"{type(exc).__name__}: {str(exc)[:300]}"
        record["traceback"] = traceback.format_exc()[-2000:]
    (out / f"rank{rank}.json").write_text(json.dumps(record))


def _call(case: dict[str, Any], ops: Any, x: torch.Tensor, world: int, rank: int) -> torch.Tensor:
    op = case["op"]
    if op == "all_reduce":
        return ops.all_reduce(x)
    if op == "all_gather":
        return ops.all_gather(torch.empty(world * x.numel(), dtype=x.dtype, device=x.device), x)
    if op == "reduce_scatter":
        return ops.reduce_scatter(torch.empty(x.numel() // world, dtype=x.dtype, device=x.device), x)
    splits = case["splits"]
    hidden = case["hidden"]
    received = [splits[src][rank] for src in range(world)]
    output = torch.empty(sum(received), hidden, dtype=x.dtype, device=x.device)
    return ops.all_to_all(output, x, received, list(splits[rank]))


def _run_case(
    case: dict[str, Any],
    rank: int,
    world: int,
    challenge: str,
    device: torch.device,
    backend: Any,
    ops: Any,
    out: Path,
    timing: dict[str, int],
) -> dict[str, Any]:
    result: dict[str, Any] = {"id": case["id"], "error": None, "times": []}
    try:
        source = rank_input(case, rank, world, challenge).to(device)
        output = _call(case, ops, source.clone(), world, rank)
        host = output.detach().to("cpu").contiguous()
        result["shape"] = list(host.shape)
        result["dtype"] = str(host.dtype).removeprefix("torch.")
        (out / f"r{rank}_c{case['id']}.bin").write_bytes(host.reshape(-1).view(torch.uint8).numpy().tobytes())
        scratch = source.clone()
        for i in range(timing["warmup"] + timing["iterations"]):
            scratch.copy_(source)  # all_reduce works in place: every call sums the same inputs
            _sync(backend)
            started = time.perf_counter()
            _call(case, ops, scratch, world, rank)
            _sync(backend)
            if i >= timing["warmup"]:
                result["times"].append(time.perf_counter() - started)
    except Exception as exc:
        result["error"] = f"{type(exc).__name__}: {str(exc)[:300]}"
    return result


def main(argv: list[str]) -> int:
    job = json.loads(Path(argv[0]).read_text())
    rank_main(
        int(argv[1]),
        int(job["world"]),
        job["backend"],
        job["dist_backend"],
        job["init_file"],
        job["plan"],
        job["challenge"],
        job["outdir"],
        job["ops_module"],
        job["timing"],
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
