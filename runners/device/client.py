"""The judge's side of the device process: start it, ask it for kernel calls, read back tensors.

``DeviceClient(name)`` starts ``python -m runners.device.host`` (runners/device/sandbox.py says
how it is kept from the key), opens the backend there and keeps its availability, support
declaration and fingerprint. It never imports the vendor's plugin itself: everything the suites
need from the device comes through ``run_kernel`` (a conformance case) or ``run_suite`` (a
performance or model suite run whole in the device process).

A device process that dies or breaks the wire format during a call fails that call (a product
failure of the device stack) and is started again for the next one; the restarts are counted in
the document's ``process_isolation`` section.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from io import FileIO
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import torch

import runners
from runners.catalog import Case, Kernel
from runners.device.local import KernelResult, device_error, loaded_packages
from runners.device.protocol import (
    FrameSink,
    FrameSource,
    ProtocolError,
    merge_tensors,
    read_frame,
    write_frame,
)
from runners.device.sandbox import (
    DROPPED_CAPABILITIES,
    Confinement,
    device_user,
    make_parent_undumpable,
    scrubbed_environment,
)
from runners.errors import PRODUCT_FAILURE, error

if TYPE_CHECKING:
    from runners.model_suite.timed_judge import FrameJudge

# The package root the child imports ``runners`` from: the very code the judge runs.
_PACKAGE_ROOT = str(Path(runners.__file__).resolve().parent.parent)
START_TIMEOUT_S = 300.0
# A frame the judge writes back to an event of the device process (header, tensors).
Answer = tuple[dict[str, Any], dict[str, torch.Tensor]]


class DeviceProcessError(RuntimeError):
    """The device process could not be started or refused to open the backend."""


class UnknownDevice(DeviceProcessError):
    """The device process knows no backend of that name."""


def _child_environment() -> dict[str, str]:
    env = scrubbed_environment()
    path = env.get("PYTHONPATH")
    env["PYTHONPATH"] = _PACKAGE_ROOT + (os.pathsep + path if path else "")
    if os.environ.get("_RUNNERS_AUTOLOAD_OFF") == "1":  # the judge turned torch's autoload off for itself
        env.pop("TORCH_DEVICE_BACKEND_AUTOLOAD", None)
    env.pop("_RUNNERS_AUTOLOAD_OFF", None)
    return env


def _jsonable(value: Any) -> bool:
    if value is None or isinstance(value, bool | int | str):
        return True
    if isinstance(value, float):
        return value == value and value not in (float("inf"), float("-inf"))
    if isinstance(value, list | tuple):
        return all(_jsonable(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _jsonable(v) for k, v in value.items())
    return False


def spawn_host(protected_paths: Iterable[str]) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
    """Starts ``python -m runners.device.host`` confined (runners/device/sandbox.py); returns it and
    which confinement applied."""
    confinement = Confinement(protected_paths)
    user = device_user()
    try:
        process = subprocess.Popen(  # noqa: S603 - our own interpreter and module, fixed arguments
            [sys.executable, "-m", "runners.device.host"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=_child_environment(),
            close_fds=True,
            preexec_fn=confinement.preexec(),  # noqa: PLW1509 - two syscalls, see sandbox.py
            user=user,
            bufsize=0,
        )
        _widen_pipes(process)
    finally:
        state = {
            "capabilities_dropped": sorted(DROPPED_CAPABILITIES) if confinement.protected else [],
            "landlock": confinement.active,
            "landlock_rules": confinement.rules,
            "landlock_reason": confinement.reason,
            "device_user": user,
        }
        confinement.close()
    return process, state


F_SETPIPE_SZ = 1031
PIPE_BYTES = 1 << 20  # Linux's default pipe-max-size; 16x the default pipe, far fewer wake-ups per tensor


def _widen_pipes(process: subprocess.Popen[bytes]) -> None:
    import fcntl

    for stream in (process.stdin, process.stdout):
        if stream is None:
            continue
        try:
            fcntl.fcntl(stream.fileno(), F_SETPIPE_SZ, PIPE_BYTES)
        except (OSError, AttributeError, ValueError):  # not Linux, or a lower pipe-max-size: keep the default
            pass


def _pipes(process: subprocess.Popen[bytes]) -> tuple[FrameSink, FrameSource]:
    """The device process's stdin and stdout as frame streams: spawned with ``bufsize=0``, they are
    raw FileIO objects (``readinto`` included), which Popen's annotation (IO[bytes]) does not say."""
    if process.stdin is None or process.stdout is None:
        raise ProtocolError("the device process has no pipes")
    return cast("FileIO", process.stdin), cast("FileIO", process.stdout)


def case_header(case: Case) -> dict[str, Any]:
    return {
        "name": case.name,
        "dims": dict(case.dims),
        "edge": case.edge,
        "dtypes": list(case.dtypes) if case.dtypes else None,
        "options": dict(case.options),
    }


class DeviceClient:
    """A backend driven in a separate device process (see the module docstring)."""

    mode = "child_process"

    def __init__(
        self,
        name: str,
        *,
        protected_paths: Iterable[str | os.PathLike[str]] = (),
        start_timeout_s: float = START_TIMEOUT_S,
    ) -> None:
        self.name = name
        self.protected_paths = [str(p) for p in protected_paths]
        self.start_timeout_s = start_timeout_s
        self.restarts = 0
        self.calls = 0
        self.transfer_s = 0.0  # judge-side time spent on frames (writing inputs, reading outputs)
        self._process: subprocess.Popen[bytes] | None = None
        self._described: dict[str, Any] = {}
        self._device_packages: list[str] = []
        self._undumpable = make_parent_undumpable() if self.protected_paths else False
        self._serving_lock = threading.Lock()
        self._confinement_state: dict[str, Any] = {}
        # The model suite's timed frames of the last ``run_suite`` (runners/model_suite/frames.py).
        self.frames: FrameJudge | None = None
        self._start()

    # --- the process ----------------------------------------------------------------------
    def _spawn(self) -> subprocess.Popen[bytes]:
        process, self._confinement_state = spawn_host(self.protected_paths)
        return process

    def _start(self) -> None:
        self._process = self._spawn()
        timer = threading.Timer(self.start_timeout_s, self._kill)
        timer.start()
        try:
            reply, _ = self._request({"op": "open", "backend": self.name})
        except ProtocolError as exc:
            self._kill()
            raise DeviceProcessError(f"the device process for {self.name!r} did not start: {exc}") from None
        finally:
            timer.cancel()
        if not reply.get("ok"):
            self.close()
            err = reply.get("error") or {}
            message = str(err.get("message") or "the device process refused to open the backend")
            if err.get("kind") == "unknown_backend":
                raise UnknownDevice(message)
            raise DeviceProcessError(message)
        self._described = reply
        self._device_packages = [str(p) for p in reply.get("packages") or []]

    def _kill(self) -> None:
        process = self._process
        if process is not None and process.poll() is None:
            process.kill()

    def _request(
        self,
        header: dict[str, Any],
        tensors: dict[str, torch.Tensor] | None = None,
        on_event: Callable[[dict[str, Any], dict[str, torch.Tensor]], Answer | None] | None = None,
    ) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        """Writes one request and reads frames until its reply. The device process's ``event`` frames
        before it go to ``on_event``, whose answer (a frame) is written back at once: the model suite's
        timed frames (runners/model_suite/frames.py). Tensors the device sent ahead in ``tensors`` events
        (a reply with more than ``MAX_TENSORS``: ``runners.device.protocol.split_tensors``) are the
        reply's."""
        process = self._process
        if process is None or process.stdin is None or process.stdout is None:
            raise ProtocolError("the device process is not running")
        sink, source = _pipes(process)
        try:
            write_frame(sink, header, tensors)
            ahead: dict[str, torch.Tensor] = {}
            while True:
                reply, out = read_frame(source)
                if reply.get("event") == "tensors":
                    merge_tensors(ahead, out)
                    continue
                if "event" in reply:
                    answer = on_event(reply, out) if on_event is not None else None
                    if answer is not None:
                        write_frame(sink, *answer)
                    continue
                return reply, merge_tensors(ahead, out)
        except (OSError, ValueError) as exc:
            raise ProtocolError(f"{type(exc).__name__}: {exc}") from None
        except BaseException:
            # Anything else (a cancellation, the job's time limit) leaves a frame half read:
            # this process can no longer be talked to.
            self._kill()
            raise

    def _ensure_running(self) -> None:
        if self._process is None or self._process.poll() is not None:
            self.restarts += 1
            self._start()

    def _lost(self) -> str:
        process = self._process
        self._kill()
        code = process.wait(timeout=10) if process is not None else None
        return f"the device process failed during this call (exit code {code})"

    # --- what the suites ask ------------------------------------------------------------------
    def availability(self) -> tuple[bool, str | None]:
        return bool(self._described.get("available")), self._described.get("reason")

    def is_available(self) -> bool:
        return self.availability()[0]

    def support_declaration(self) -> dict[str, Any]:
        support = self._described.get("support") or {}
        return {
            "dtypes": [str(d) for d in support.get("dtypes") or []],
            "unsupported_kernels": {
                str(k): str(v) for k, v in dict(support.get("unsupported_kernels") or {}).items()
            },
        }

    def supported_dtypes(self) -> list[str]:
        return self.support_declaration()["dtypes"]

    def fingerprint(self) -> dict[str, Any]:
        return dict(self._described.get("fingerprint") or {})

    def host_facts(self) -> tuple[Any, Any]:
        """The device's memory figures and last-level cache size, as the device process read them."""
        return self._described.get("memory"), self._described.get("last_level_cache_bytes")

    def run_kernel(self, kernel: Kernel, case: Case, dtype: str, raw: dict[str, Any]) -> KernelResult:
        """One device call: the raw CPU inputs go over, the comparable output comes back (on the CPU)."""
        tensors = {k: v for k, v in raw.items() if isinstance(v, torch.Tensor)}
        params = {k: v for k, v in raw.items() if not isinstance(v, torch.Tensor)}
        if not _jsonable(params):
            raise TypeError(f"{kernel.name}: non-tensor inputs must be JSON values")
        header = {
            "op": "run_kernel",
            "kernel": kernel.name,
            "case": case_header(case),
            "dtype": dtype,
            "params": params,
        }
        self._ensure_running()
        self.calls += 1
        started = time.perf_counter()
        try:
            reply, out = self._request(header, tensors)
        except ProtocolError as exc:
            return KernelResult(
                outcome=error(PRODUCT_FAILURE, "device process failed"),
                message=f"{self._lost()}: {exc}"[:500],
            )
        device_s = _seconds(reply.get("device_s"))
        self.transfer_s += max(time.perf_counter() - started - device_s, 0.0)
        if reply.get("ok"):
            output = out.get("output")
            if output is None or len(out) != 1:
                return KernelResult(
                    outcome=error(PRODUCT_FAILURE, "not a tensor"),
                    message="the device process sent no output tensor",
                )
            return KernelResult(output=output, device_s=device_s)
        raw_err = reply.get("error")
        err: dict[str, Any] = raw_err if isinstance(raw_err, dict) else {}
        if err.get("kind") == "not_tensor":
            return KernelResult(
                device_s=device_s,
                outcome=error(PRODUCT_FAILURE, "not a tensor"),
                message=str(err.get("message") or "device call returned no tensor")[:500],
            )
        if err.get("kind") == "raised":
            return KernelResult(
                device_s=device_s,
                outcome=device_error(str(err.get("type") or "Exception"), bool(err.get("out_of_memory"))),
                message=str(err.get("message") or "")[:500],
            )
        return KernelResult(
            outcome=error(PRODUCT_FAILURE, "device process error"),
            message=f"the device process could not run the call: {str(err.get('message'))[:400]}",
        )

    def run_suite(
        self, spec: dict[str, Any], progress: Callable[[int, int, str], None] | None = None
    ) -> tuple[
        dict[str, Any],
        list[dict[str, Any]],
        dict[str, torch.Tensor],
        list[dict[str, Any]],
        dict[str, list[dict[str, Any]]],
    ]:
        """Runs a whole suite in the device process: its document, the outputs it kept (JSON entries, and
        the tensors they name), its caching probes' figures, and (model suite) its timed runs' evidence
        and generated tokens, ``{"timed": [...], "generated": [...]}`` (see runners/device/__init__.py)."""

        from runners.model_suite.timed_judge import FrameJudge

        frames = self.frames = FrameJudge()

        def on_event(event: dict[str, Any], tensors: dict[str, torch.Tensor]) -> Answer | None:
            if event.get("event") == "progress":
                if progress is not None:
                    progress(
                        int(event.get("done") or 0),
                        int(event.get("total") or 1),
                        str(event.get("label") or ""),
                    )
                return None
            return frames.on_event(event, tensors)

        self._ensure_running()
        try:
            reply, tensors = self._request({"op": "run_suite", "spec": spec}, on_event=on_event)
            frames.close()
        except ProtocolError as exc:
            raise DeviceProcessError(f"{self._lost()}: {exc}") from None
        if not reply.get("ok") or not isinstance(reply.get("document"), dict):
            raise DeviceProcessError(
                f"the device process failed the suite: {(reply.get('error') or {}).get('message')}"
            )
        self._device_packages = sorted(
            set(self._device_packages) | {str(p) for p in reply.get("packages") or []}
        )
        raw_outputs = reply.get("outputs")
        outputs: list[Any] = raw_outputs if isinstance(raw_outputs, list) else []
        raw_caching = reply.get("caching")
        caching: list[Any] = raw_caching if isinstance(raw_caching, list) else []
        extra: dict[str, list[dict[str, Any]]] = {}
        for key in ("timed", "generated"):
            value = reply.get(key)
            extra[key] = [v if isinstance(v, dict) else {} for v in value] if isinstance(value, list) else []
        return (
            reply["document"],
            [o for o in outputs if isinstance(o, dict)],
            tensors,
            [c if isinstance(c, dict) else {} for c in caching],
            extra,
        )

    # --- the serving suite: LoadGen and the SUTs in the judge, each forward here (runners/serving_engine.py)
    def serving_open(
        self,
        model: dict[str, Any],
        dtype: str,
        inputs: tuple[torch.Tensor, ...],
        *,
        decoder: bool,
        output_tokens: int,
        energy_rate_hz: float,
    ) -> tuple[Any, Any]:
        """Places ``model`` (its job-spec entry) on the device in ``dtype`` over there, with the
        workload's inputs the judge drew; returns the judge's ``RemoteEngine`` and ``RemoteMeter``."""
        from runners.serving_engine import RemoteEngine, RemoteMeter

        self._ensure_running()
        tensors = {f"input.{k}": t for k, t in enumerate(inputs)}
        header = {
            "op": "serving_open",
            "model": model,
            "dtype": dtype,
            "decoder": decoder,
            "output_tokens": int(output_tokens),
            "energy_rate_hz": float(energy_rate_hz),
        }
        reply, _ = self._serving_request(header, tensors)
        handle = reply.get("handle")
        if not isinstance(handle, int) or isinstance(handle, bool):
            raise self._serving_error("the device process opened no served model", reply)
        engine = RemoteEngine(
            self, handle, decoder=decoder, output_tokens=output_tokens, size=int(inputs[0].shape[0])
        )
        return engine, RemoteMeter(self, handle, energy_rate_hz)

    def serving_call(
        self, handle: int, method: str, params: dict[str, Any], tensors: dict[str, torch.Tensor] | None = None
    ) -> torch.Tensor:
        """One engine call of a served model; its one output tensor (on the CPU)."""
        self.calls += 1
        reply, out = self._serving_request(
            {"op": "serving_call", "handle": handle, "method": method, "params": params}, tensors
        )
        output = out.get("output")
        if output is None or len(out) != 1:
            raise self._serving_error(f"{method}: the device process sent no output tensor", reply)
        return output

    def serving_meter(self, handle: int, action: str, params: dict[str, Any]) -> dict[str, Any]:
        """The device's energy meter over a timed run (start, stop): its raw record, as the device read it."""
        reply, _ = self._serving_request(
            {"op": "serving_meter", "handle": handle, "action": action, **params}
        )
        energy = reply.get("energy")
        return energy if isinstance(energy, dict) else {}

    def serving_close(self, handle: int) -> None:
        if self._process is None or self._process.poll() is not None:
            return  # a device process that died took the served model with it
        try:
            self._serving_request({"op": "serving_close", "handle": handle})
        except Exception:  # noqa: BLE001 - closing what the device may already have lost
            return

    def _serving_request(
        self, header: dict[str, Any], tensors: dict[str, torch.Tensor] | None = None
    ) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        from runners.serving_engine import DeviceServingError

        with self._serving_lock:
            if self._process is None or self._process.poll() is not None:
                raise DeviceServingError(
                    "the device process is gone (it exited during an earlier call)",
                    error(PRODUCT_FAILURE, "device process failed"),
                )
            try:
                reply, out = self._request(header, tensors)
            except ProtocolError as exc:
                raise DeviceServingError(
                    f"{self._lost()}: {exc}"[:500], error(PRODUCT_FAILURE, "device process failed")
                ) from None
        if not reply.get("ok"):
            raise self._serving_error(f"{header.get('op')} {header.get('method') or ''}".strip(), reply)
        if isinstance(reply.get("packages"), list):  # what the device process has loaded by now
            self._device_packages = sorted(set(self._device_packages) | {str(p) for p in reply["packages"]})
        return reply, out

    @staticmethod
    def _serving_error(what: str, reply: dict[str, Any]) -> Exception:
        """A refusal or an exception of the device process, classified by the judge: only out of
        memory is told apart; whatever else the device says, it is the product's failure."""
        from runners.serving_engine import DeviceServingError

        raw_err = reply.get("error")
        err: dict[str, Any] = raw_err if isinstance(raw_err, dict) else {}
        outcome = device_error(str(err.get("type") or "Exception"), bool(err.get("out_of_memory")))
        return DeviceServingError(f"{what}: {str(err.get('message') or 'no reason given')[:400]}", outcome)

    def isolation(
        self, verdicts_in: str = "judge", device_verdicts: list[str] | None = None
    ) -> dict[str, Any]:
        """The document's ``process_isolation`` section: which process loaded what, and which
        verdicts (if any) were computed in the device process."""
        return {
            "mode": self.mode,
            "verdicts_in": verdicts_in,
            "device_verdicts": list(device_verdicts or []),
            "judge": {
                "pid": os.getpid(),
                "holds": ["signing key", "float64 references", "tolerances", "verdicts"]
                if verdicts_in == "judge"
                else ["signing key"],
                "packages": loaded_packages(),
            },
            "device": {
                "pid": self._described.get("pid"),
                "uid": self._described.get("uid"),
                "backend": self.name,
                "packages": self._device_packages,
                "calls": self.calls,
                "restarts": self.restarts,
            },
            "protections": {
                "environment_scrubbed": True,
                "descriptors_closed": True,
                "judge_undumpable": self._undumpable,
                **self._confinement_state,
            },
        }

    def close(self) -> None:
        process = self._process
        if process is None:
            return
        try:
            if process.poll() is None:
                try:
                    write_frame(_pipes(process)[0], {"op": "exit"})
                except (OSError, ValueError, ProtocolError):
                    pass
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=10)
        finally:
            for stream in (process.stdin, process.stdout):
                if stream is not None:
                    stream.close()
            self._process = None

    def __enter__(self) -> DeviceClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def _seconds(value: Any) -> float:
    return (
        float(value) if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0 else 0.0
    )


def list_device_backends(protected_paths: Iterable[str | os.PathLike[str]] = ()) -> list[dict[str, Any]]:
    """Every backend the device process can offer (name, available, reason, dtypes, fingerprint)."""
    if protected_paths:
        make_parent_undumpable()
    process, _ = spawn_host([str(p) for p in protected_paths])
    sink, source = _pipes(process)
    try:
        write_frame(sink, {"op": "list"})
        reply, _ = read_frame(source)
        write_frame(sink, {"op": "exit"})
        read_frame(source)
    finally:
        for stream in (process.stdin, process.stdout):
            if stream is not None:
                stream.close()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    backends = reply.get("backends")
    return [b for b in backends if isinstance(b, dict)] if isinstance(backends, list) else []
