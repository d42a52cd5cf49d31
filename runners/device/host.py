"""The device process: ``python -m runners.device.host``, started by runners.device.client only.

This is the only process of a runner host that loads the vendor's device stack: the backend
entry point or PrivateUse1 plugin (``runners.backends.get_backend``), its driver and runtime,
and the catalog's device calls. It holds no signing key (none is given to it, its environment is
scrubbed, its file descriptors closed, and where the kernel offers Landlock it cannot open the
key file even by name), no float64 reference, no tolerance and no verdict: it receives raw
inputs, returns outputs and timings (runners/device/protocol.py), and nothing it does in its
own memory (patching ``runners.conformance``, for instance) reaches the judge.

Requests (``op``), one reply each:

- ``open {backend}``: loads the backend; replies its availability, support declaration and fingerprint
- ``run_kernel {kernel, case, dtype, params}`` + input tensors: replies ``output`` and ``device_s``
- ``run_suite {spec}``: runs a performance or model suite here (see runners/device/__init__.py),
  sending ``progress`` frames first (and, for the model suite, each timed measurement's frames with
  the judge: runners/model_suite/frames.py; for both suites, each TEST04 probe call's frame:
  runners/probe_frames.py); replies its document, the outputs the judge re-judges and each
  TEST04 probe's timings and kept outputs (``caching``), which the judge judges
- ``serving_open {model, dtype, decoder, output_tokens}`` + the workload's input tensors: places the
  model on the device (runners/serving_engine.py); replies a ``handle``
- ``serving_call {handle, method, params}`` (+ ``last`` for a decode step): one engine call of the
  serving suite's SUT, which runs in the judge with LoadGen; replies ``output``
- ``serving_meter {handle, action}``: starts / stops the device's energy meter around a timed run
- ``serving_close {handle}``
- ``ping``: replies ``ok`` (an empty frame's round trip)
- ``list``: every backend this host offers, with availability, dtypes and fingerprint
- ``exit``
"""

from __future__ import annotations

import os
import sys
import traceback
from io import FileIO
from typing import TYPE_CHECKING, Any

import torch

from runners.device.local import error_message, execute_kernel, loaded_packages
from runners.device.protocol import FrameSink, FrameSource, PeerClosed, read_frame, write_reply
from runners.math_modes import PINNED, set_math_modes

if TYPE_CHECKING:
    from runners.catalog import Case
    from runners.integrity import CachingEvidence
    from runners.performance.benchmarks import Benchmark


def _protocol_channel() -> tuple[FileIO, FileIO]:
    """Takes stdin/stdout for the protocol and points fds 0 and 1 away from it, so that anything
    the vendor's stack prints lands on stderr instead of corrupting a frame."""
    proto_in = os.fdopen(os.dup(0), "rb", buffering=0)
    proto_out = os.fdopen(os.dup(1), "wb", buffering=0)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return proto_in, proto_out


def _case(data: dict[str, Any]) -> Case:
    from runners.catalog import Case

    dtypes = data.get("dtypes")
    return Case(
        name=str(data["name"]),
        dims={str(k): int(v) for k, v in dict(data.get("dims") or {}).items()},
        edge=data.get("edge"),
        dtypes=tuple(dtypes) if dtypes else None,
        options=dict(data.get("options") or {}),
    )


def _guarded(probe: Any) -> Any:
    try:
        return probe()
    except Exception:
        return None


class Host:
    def __init__(self, out: FrameSink) -> None:
        self.out = out
        self.backend: Any = None
        self.served: dict[int, dict[str, Any]] = {}  # handle -> {engine, rate_hz, meter}
        self._next_handle = 1
        self.source: FrameSource | None = None  # the judge's frames, for the model suite's timed frames

    def receive(self) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        if self.source is None:
            raise PeerClosed("no channel from the judge")
        return read_frame(self.source)

    def reply(self, header: dict[str, Any], tensors: dict[str, torch.Tensor] | None = None) -> None:
        write_reply(self.out, header, tensors)

    def describe(self) -> dict[str, Any]:
        backend = self.backend
        available, reason = backend.availability()
        return {
            "ok": True,
            "name": backend.name,
            "available": available,
            "reason": reason,
            "support": backend.support_declaration()
            if available
            else {"dtypes": [], "unsupported_kernels": {}},
            "fingerprint": backend.fingerprint(),
            "memory": _guarded(backend.memory_info) if available else None,
            "last_level_cache_bytes": _guarded(backend.last_level_cache_bytes) if available else None,
            "pid": os.getpid(),
            "uid": os.getuid(),
            "packages": loaded_packages(),
        }

    def op_open(self, header: dict[str, Any], _tensors: dict[str, torch.Tensor]) -> None:
        from runners.backends import UnknownBackend, get_backend

        try:
            self.backend = get_backend(str(header.get("backend", "")))
        except UnknownBackend as exc:
            self.reply({"ok": False, "error": {"kind": "unknown_backend", "message": str(exc)[:2000]}})
            return
        # The device's kernels run here, so the math-mode flags are pinned here (runners/math_modes.py),
        # and the fingerprint this process reports reads them back.
        set_math_modes(PINNED)
        self.reply(self.describe())

    def op_ping(self, _header: dict[str, Any], _tensors: dict[str, torch.Tensor]) -> None:
        """An empty frame's round trip (the fixed cost inside every timed frame: bench/model_frames.py)."""
        self.reply({"ok": True})

    def op_fingerprint(self, _header: dict[str, Any], _tensors: dict[str, torch.Tensor]) -> None:
        self.reply(self.describe())

    def op_run_kernel(self, header: dict[str, Any], tensors: dict[str, torch.Tensor]) -> None:
        from runners.catalog import get_kernel

        kernel = get_kernel(str(header["kernel"]))
        raw: dict[str, Any] = dict(header.get("params") or {})
        raw.update(tensors)
        result = execute_kernel(self.backend, kernel, _case(header["case"]), raw)
        if result.output is not None:
            self.reply({"ok": True, "device_s": result.device_s}, {"output": result.output})
            return
        outcome = result.outcome
        self.reply(
            {
                "ok": False,
                "device_s": result.device_s,
                "error": {
                    "kind": "raised" if result.exc_type else "not_tensor",
                    "type": result.exc_type or "",
                    "out_of_memory": bool(outcome and outcome.code == "out_of_memory"),
                    "message": result.message,
                },
            }
        )

    def op_run_suite(self, header: dict[str, Any], _tensors: dict[str, torch.Tensor]) -> None:
        """A performance or model suite, whole. Performance: every benchmark's accuracy output and
        timed samples go back too; model: every scored accuracy output; the judge re-judges them."""
        from runners.performance import run_performance
        from runners.suites import SUITES

        spec = header["spec"]

        def progress(done: int, total: int, label: str) -> None:
            self.reply({"event": "progress", "done": done, "total": total, "label": str(label)[:200]})

        outputs: list[dict[str, Any]] = []
        caching: list[dict[str, Any]] = []
        timed: list[dict[str, Any]] = []
        generated: list[dict[str, Any]] = []
        tensors: dict[str, torch.Tensor] = {}
        if spec["suite"] == "performance":
            kept: list[tuple[Benchmark, torch.Tensor, list[tuple[int, torch.Tensor]]]] = []
            probes: list[tuple[Benchmark, CachingEvidence | str]] = []
            from runners.probe_frames import ProbeFrames

            document = run_performance(
                spec,
                self.backend,
                progress,
                keep_outputs=kept,
                keep_caching=probes,
                probe_frames=ProbeFrames(self.reply, self.receive),
            )
            for index, (bench, accuracy, samples) in enumerate(kept):
                outputs.append(
                    {
                        "name": bench.name,
                        "kind": bench.kind,
                        "dtype": bench.dtype,
                        "params": bench.params,
                        "rounds": [r for r, _ in samples],
                    }
                )
                tensors[f"{index}.accuracy"] = accuracy
                tensors.update({f"{index}.round{r}": t for r, t in samples})
            # TEST04: each probe's timings and the outputs it kept; the judge decides (rejudge_caching).
            for index, (bench, evidence) in enumerate(probes):
                record: dict[str, Any] = {
                    "name": bench.name,
                    "kind": bench.kind,
                    "dtype": bench.dtype,
                    "params": bench.params,
                }
                if isinstance(evidence, str):
                    record["error"] = evidence
                else:
                    figures, probe_tensors = evidence.to_wire(f"caching{index}")
                    record.update(figures)
                    tensors.update(probe_tensors)
                caching.append(record)
        elif spec["suite"] == "model":
            from runners.commitment import CollectingCommitment
            from runners.model_suite import run_model
            from runners.model_suite.frames import TimedFrames
            from runners.model_suite.performance import TimedEvidence
            from runners.model_suite.timed_judge import timed_to_wire

            kept_models: list[tuple[str, str, torch.Tensor]] = []
            model_probes: list[tuple[str, str, CachingEvidence]] = []
            kept_timed: list[TimedEvidence] = []
            kept_generated: list[tuple[str, str, torch.Tensor]] = []
            collected = CollectingCommitment()
            document = run_model(
                spec,
                self.backend,
                progress,
                keep_outputs=kept_models,
                commitment=collected,
                keep_caching=model_probes,
                keep_timed=kept_timed,
                keep_generated=kept_generated,
                frames=TimedFrames(self.reply, self.receive),
            )
            for index, (model, dtype, accuracy) in enumerate(kept_models):
                outputs.append({"model": model, "dtype": dtype})
                tensors[f"{index}.accuracy"] = accuracy
            # TEST04: each model probe's timings and kept outputs; the judge decides (rejudge_model_caching).
            for index, (model, dtype, evidence) in enumerate(model_probes):
                figures, probe_tensors = evidence.to_wire(f"caching{index}")
                caching.append({"model": model, "dtype": dtype, **figures})
                tensors.update(probe_tensors)
            # TEST01 samples and raw timings of the timed runs, and the decoders' generated tokens: the
            # judge decides TEST01, recomputes the figures and the generation agreement (rejudge_model_timed).
            for index, timed_runs in enumerate(kept_timed):
                record, timed_tensors = timed_to_wire(timed_runs, f"timed{index}")
                timed.append(record)
                tensors.update(timed_tensors)
            for index, (model, dtype, tokens) in enumerate(kept_generated):
                generated.append({"model": model, "dtype": dtype, "tensor": f"generated{index}"})
                tensors[f"generated{index}"] = tokens
            # Every output the suite judged (accuracy and TEST01 samples) goes back for the judge to
            # commit: the judge digests and keeps them itself (runners/commitment.py).
            for index, (output_id, tensor) in enumerate(collected.collected):
                outputs.append({"committed": output_id, "tensor": f"commit.{index}"})
                tensors[f"commit.{index}"] = tensor
        else:
            document = SUITES[spec["suite"]](spec, self.backend, progress)
        self.reply(
            {
                "ok": True,
                "document": document,
                "outputs": outputs,
                "caching": caching,
                "timed": timed,
                "generated": generated,
                "packages": loaded_packages(),
            },
            tensors,
        )

    # The serving suite (runners/serving_engine.py): LoadGen, the SUTs and every verdict are the
    # judge's; this process places the model and runs each forward the judge's SUT asks for.
    def op_serving_open(self, header: dict[str, Any], tensors: dict[str, torch.Tensor]) -> None:
        from runners.model_suite import DTYPES
        from runners.models import ModelSpec, load_model
        from runners.serving_engine import ServingEngine

        try:
            dtype = DTYPES[str(header["dtype"])]
            loaded = load_model(ModelSpec.from_dict(dict(header["model"])))
            device = self.backend.device()
            module = loaded.place(device, dtype, free_bytes=self.backend.memory_info().get("free_bytes"))
            inputs = tuple(tensors[f"input.{k}"].to(device) for k in range(len(tensors)))
            if not inputs or any(t.shape[0] != inputs[0].shape[0] for t in inputs):
                raise ValueError("the workload's inputs: one or more tensors of the same sample count")
            engine = ServingEngine(
                module,
                self.backend.prepare(module),
                inputs,
                decoder=bool(header.get("decoder")),
                output_tokens=int(header.get("output_tokens") or 1),
            )
        except Exception as exc:  # the judge classifies it (out of memory, else the product's failure)
            self.reply(_raised(exc))
            return
        handle, self._next_handle = self._next_handle, self._next_handle + 1
        self.served[handle] = {
            "engine": engine,
            "rate_hz": float(header.get("energy_rate_hz") or 10.0),
            "meter": None,
        }
        self.reply({"ok": True, "handle": handle, "packages": loaded_packages()})

    def _served(self, header: dict[str, Any]) -> dict[str, Any]:
        handle = header.get("handle")
        if not isinstance(handle, int) or handle not in self.served:
            raise KeyError(f"no served model {handle!r}")
        return self.served[handle]

    def op_serving_call(self, header: dict[str, Any], tensors: dict[str, torch.Tensor]) -> None:
        from runners.serving_engine import ENGINE_METHODS

        engine = self._served(header)["engine"]
        method = header.get("method")
        if method not in ENGINE_METHODS:
            raise ValueError(f"unknown engine method {method!r}")
        params = dict(header.get("params") or {})
        if method == "slot_decode":
            params["last"] = tensors["last"]
        try:
            output = getattr(engine, str(method))(**params)
        except Exception as exc:  # the judge classifies it (out of memory, else the product's failure)
            self.reply(_raised(exc))
            return
        self.reply({"ok": True}, {"output": output})

    def op_serving_meter(self, header: dict[str, Any], _tensors: dict[str, torch.Tensor]) -> None:
        """The device's power meter over one timed run (runners/energy.py), read where the driver is;
        the judge keeps its joules and window, and divides by its own counts."""
        from runners.energy import EnergyMeter

        served = self._served(header)
        if served["meter"] is None:
            served["meter"] = EnergyMeter(self.backend, rate_hz=served["rate_hz"])
        meter = served["meter"]
        action = header.get("action")
        if action == "start":
            meter.start()
            self.reply({"ok": True})
        elif action == "stop":
            meter.stop()
            self.reply({"ok": True, "energy": meter.result(samples=0)})
        else:
            raise ValueError(f"unknown meter action {action!r}")

    def op_serving_close(self, header: dict[str, Any], _tensors: dict[str, torch.Tensor]) -> None:
        self._served(header)["engine"].close()
        del self.served[int(header["handle"])]
        self.reply({"ok": True, "packages": loaded_packages()})

    def op_list(self, _header: dict[str, Any], _tensors: dict[str, torch.Tensor]) -> None:
        from runners.backends import list_backends

        backends = []
        for backend in list_backends():
            available, reason = backend.availability()
            backends.append(
                {
                    "name": backend.name,
                    "available": available,
                    "reason": reason,
                    "dtypes": backend.supported_dtypes() if available else [],
                    "fingerprint": backend.fingerprint() if available else None,
                }
            )
        self.reply({"ok": True, "backends": backends})

    def serve(self, stream: FrameSource) -> int:
        self.source = stream
        while True:
            try:
                header, tensors = read_frame(stream)
            except PeerClosed:
                return 0
            op = header.get("op")
            if op == "exit":
                self.reply({"ok": True})
                return 0
            handler = getattr(self, f"op_{op}", None) if isinstance(op, str) else None
            if handler is None:
                self.reply({"ok": False, "error": {"kind": "unknown_op", "message": f"unknown op {op!r}"}})
                continue
            if op not in ("open", "list") and self.backend is None:
                self.reply({"ok": False, "error": {"kind": "not_open", "message": "open a backend first"}})
                continue
            try:
                handler(header, tensors)
            except Exception as exc:  # the judge records it; the device process stays up
                traceback.print_exc(file=sys.stderr)
                self.reply({"ok": False, "error": {"kind": "host_error", "message": error_message(exc)}})


def _raised(exc: Exception) -> dict[str, Any]:
    traceback.print_exc(file=sys.stderr)
    return {
        "ok": False,
        "error": {
            "kind": "raised",
            "type": type(exc).__name__,
            "out_of_memory": isinstance(exc, torch.OutOfMemoryError | MemoryError),
            "message": error_message(exc),
        },
    }


def main() -> int:
    proto_in, proto_out = _protocol_channel()
    return Host(proto_out).serve(proto_in)


if __name__ == "__main__":
    sys.exit(main())
