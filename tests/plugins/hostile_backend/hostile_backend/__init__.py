"""A hostile vendor's backend plugin (test-only). Loaded through the platform's entry point.

When its backend is created it does, in whatever process loaded it, what issue 13 found a plugin
could do:

(a) patch the judge: ``runners.conformance.compare`` reports no mismatch, ``run_case`` rewrites
    every record to "pass", and ``runners.document.summarize`` counts everything as passed;
(b) hunt for the runner's signing key: its own environment, the parent's ``/proc`` files
    (environ, cmdline, open descriptors, memory), and the paths listed in ``guesses.txt`` (a
    vendor may know the deployment's conventional key path);
(c) compute GELU with the tanh approximation where the erf form is asked for (its "chip").

``HOSTILE_PROBE_DIR`` (a directory) gets ``report.json`` with what it did and found;
``config.json`` there may hold ``{"exit_on_kernel": NAME}`` to kill its process during that kernel,
``{"skew_matmul": FACTOR}`` to scale every torch.matmul result, ``{"noisy_conv": true}`` to add
noise to every conv2d (while it patches the performance TEST01 and model case verdicts to "pass"),
``{"stale_serving": true}`` to answer every served batch with the first output it ever computed
(while it patches the serving suite's accuracy score and TEST01 verdict to "pass" in its process),
``{"memo_matmul": "buffer"}`` or ``{"memo_matmul": "shape"}`` to memoize torch.matmul by its operands'
buffers or by their shapes alone (TEST04's cheats: the repeated input costs nothing), while it forges
the caching verdict in its process (every fresh output "equal" to its output apart, every probe "pass"),
``{"memo_model": "buffer"}`` or ``{"memo_model": "shape"}`` to do the same to a placed model's one-item
forwards (the latency input's: the model suite's TEST04), with the same forged verdicts, the model
suite's own TEST04 judge included; ``{"forge_model": true}`` to run a placed model's one-item forwards
(the latency path) through bfloat16 in a float32 run while, in its process, it forges the model suite's
TEST01 verdict ("pass", no mismatch) and its timed figures (every latency and time to first token ten
times shorter, every throughput and decode rate ten times higher, the raw samples untouched);
``{"cheat_timed": ...}`` to rewrite the model suite's timed harness in its process (``cheat_timed_runs``):
``"underreport"`` reports every timed sample 12 times shorter, its summary consistent with them;
``"skip"`` makes a placed model's calls inside the timed loop skip the work (they answer zeros) and
hands the TEST01 sampler an output computed apart, untimed, where it can (the rounds the sampler keeps;
with the judge's frames, every fourth round); ``"reveal"`` skips the work as ``"skip"`` and, with the
judge's frames, reveals outputs computed apart in place of those it committed (without frames it does
what ``"skip"`` does); ``"cache"`` answers a placed model's one-item forwards and every torch.matmul from a
result cache keyed on the inputs' content (a fingerprint of their values: every answer is right, a fresh
input is computed and a repeated one costs nothing) and under-reports TEST04's fresh-input probe calls,
each timed as long as the shortest call the cache answered for the same probe (``cache_answers``), so that
fresh calls look no slower than repeated ones to the probe.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import torch
import torch.nn.functional as F

from runners.backends import CpuBackend

PEM_MARKER = b"PRIVATE KEY"


def _probe_dir() -> Path | None:
    value = os.environ.get("HOSTILE_PROBE_DIR")
    return Path(value) if value else None


def _config() -> dict:
    directory = _probe_dir()
    try:
        return json.loads((directory / "config.json").read_text()) if directory else {}
    except (OSError, ValueError):
        return {}


def _try_read(path: str | Path, limit: int = 1 << 20) -> dict:
    try:
        with open(path, "rb") as handle:
            data = handle.read(limit)
    except OSError as exc:
        return {"path": str(path), "readable": False, "error": f"{type(exc).__name__}: {exc.strerror}"}
    text = data.decode("utf-8", "replace")
    return {
        "path": str(path),
        "readable": True,
        "has_private_key": PEM_MARKER in data,
        "mentions_key_file": "RUNNER_KEY_FILE" in text or ".pem" in text,
        "excerpt": text.replace("\0", " ")[:300],
    }


def _own_descriptors() -> list[str]:
    targets = []
    for fd in os.listdir("/proc/self/fd") if os.path.isdir("/proc/self/fd") else []:
        try:
            targets.append(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:
            continue
    return sorted(targets)


def hunt_for_the_key() -> dict:
    """Everything a plugin in the device process can try, recorded (never raises)."""
    parent = os.getppid()
    found: dict = {
        "pid": os.getpid(),
        "parent": parent,
        "env_names": sorted(name for name in os.environ if "KEY" in name or name.startswith("RUNNER")),
        "parent_environ": _try_read(f"/proc/{parent}/environ"),
        "parent_cmdline": _try_read(f"/proc/{parent}/cmdline"),
        "parent_fds": [],
        "parent_mem": None,
        "guesses": [],
        "own_fds": _own_descriptors(),
    }
    try:
        for fd in os.listdir(f"/proc/{parent}/fd"):
            link = f"/proc/{parent}/fd/{fd}"
            entry = {"fd": fd}
            try:
                entry["target"] = os.readlink(link)
            except OSError as exc:
                entry["target_error"] = exc.strerror
            entry.update(_try_read(link, 4096) if entry.get("target", "").endswith(".pem") else {})
            found["parent_fds"].append(entry)
    except OSError as exc:
        found["parent_fds_error"] = f"{type(exc).__name__}: {exc.strerror}"
    try:
        with open(f"/proc/{parent}/mem", "rb") as mem:
            mem.read(1)
        found["parent_mem"] = "opened"
    except OSError as exc:
        found["parent_mem"] = f"{type(exc).__name__}: {exc.strerror}"
    directory = _probe_dir()
    guesses = directory / "guesses.txt" if directory else None
    if guesses is not None and guesses.exists():
        for line in guesses.read_text().splitlines():
            if line.strip():
                found["guesses"].append(_try_read(line.strip()))
    return found


def patch_the_judge() -> list[str]:
    """Rewrites the verdict code in this process's copy of the runner."""
    import runners.conformance as conformance
    import runners.document as document

    def compare(output, expected, atol, rtol, bound=None):
        return {
            "max_abs": 0.0,
            "max_rel": 0.0,
            "tolerance_ratio": 0.0,
            "mismatch_fraction": 0.0,
            "mismatches": 0,
        }

    original_run_case = conformance.run_case

    def run_case(*args, **kwargs):
        record = original_run_case(*args, **kwargs)
        record.update(status="pass", message=None, code=None, error_class=None, reason=None)
        return record

    original_summarize = document.summarize

    def summarize(cases):
        return original_summarize([{**case, "status": "pass", "error_class": None} for case in cases])

    import runners.performance as performance

    original_consistency = performance._consistency

    def consistency(*args, **kwargs):
        item = original_consistency(*args, **kwargs)
        for part in (item, item.get("against_accuracy") or {}, item.get("against_reference") or {}):
            part.update(verdict="pass", mismatches=0)
        return item

    import runners.model_suite as model_suite

    original_model_case = model_suite._case

    def model_case(model, dtype, status, score, **kwargs):
        return original_model_case(model, dtype, "pass" if status == "fail" else status, score, **kwargs)

    model_suite._case = model_case
    conformance.compare = compare
    conformance.run_case = run_case
    document.summarize = summarize
    performance._consistency = consistency
    return [
        "runners.conformance.compare",
        "runners.conformance.run_case",
        "runners.document.summarize",
        "runners.performance._consistency",
        "runners.model_suite._case",
    ]


def patch_the_serving_verdicts() -> list[str]:
    """The serving suite's accuracy score and TEST01 verdict, rewritten to pass in this process."""
    import runners.served_outputs as served

    original_score = served.serving_accuracy_score

    def score(**kwargs):
        result = original_score(**kwargs)
        result.update(value=1.0, meets_informational_bar=True)
        return result

    original_judge = served.judge_served_outputs

    def judge(*args, **kwargs):
        return {**original_judge(*args, **kwargs), "verdict": "pass", "mismatches": 0}

    served.serving_accuracy_score = score
    served.judge_served_outputs = judge
    return ["runners.served_outputs.serving_accuracy_score", "runners.served_outputs.judge_served_outputs"]


def patch_the_caching_verdicts() -> list[str]:
    """TEST04 forged in this process: every output comparison agrees and every probe passes."""
    import runners.integrity as integrity
    import runners.performance as performance

    def agree(got, expected):
        return True

    original_verdict = integrity.caching_verdict

    def verdict(*args, **kwargs):
        return {**original_verdict(*args, **kwargs), "verdict": "pass", "speedup_ratio": 1.0}

    integrity._same_output = agree
    integrity.caching_verdict = verdict
    patched = ["runners.integrity._same_output", "runners.integrity.caching_verdict"]
    original_judge = getattr(integrity, "judge_caching", None)
    if original_judge is not None:

        def judge(*args, **kwargs):
            result = original_judge(*args, **kwargs)
            result.pop("reason", None)
            return {**result, "verdict": "pass", "fresh_output_mismatches": 0, "fresh_reference_failures": 0}

        integrity.judge_caching = judge
        performance.judge_caching = judge
        patched.append("runners.integrity.judge_caching")
        import runners.model_suite.performance as model_performance

        if hasattr(model_performance, "judge_caching"):
            model_performance.judge_caching = judge
            patched.append("runners.model_suite.performance.judge_caching")
    return patched


FORGED_SPEEDUP = 10.0
_TIME_STATS = ("median", "p90", "p99", "iqr", "ci_low", "ci_high")


def patch_the_model_timed_verdicts() -> list[str]:
    """The model suite's TEST01 verdict and timed figures, forged in this process."""
    import runners.model_suite.performance as model_performance

    original_verdict = model_performance.output_samples_verdict

    def verdict(*args, **kwargs):
        return {**original_verdict(*args, **kwargs), "verdict": "pass", "mismatches": 0, "details": []}

    original_measurement = model_performance.measurement

    def measurement(**kwargs):
        item = original_measurement(**kwargs)
        if item.get("stats") and item["kind"] in ("model_latency", "ttft", "model_throughput", "decode"):
            item["stats"] = {
                k: v / FORGED_SPEEDUP if k in _TIME_STATS else v for k, v in item["stats"].items()
            }
            if item["value"] is not None:
                faster = item["kind"] in ("model_throughput", "decode")
                item["value"] = item["value"] * FORGED_SPEEDUP if faster else item["value"] / FORGED_SPEEDUP
            if "tokens_per_s" in item["params"]:
                item["params"]["tokens_per_s"] *= FORGED_SPEEDUP
        return item

    model_performance.output_samples_verdict = verdict
    model_performance.measurement = measurement
    return [
        "runners.model_suite.performance.output_samples_verdict",
        "runners.model_suite.performance.measurement",
    ]


UNDERREPORTED = 12.0
# Where the model suite's timed loop is: the calls made inside it skip the work, except those made
# "apart" (the outputs the cheat hands the TEST01 sampler).
_TIMED = {"inside": False, "apart": False, "fn": None}


def _apart():
    """The current timed call's output, computed with the work done (untimed by the harness)."""
    _TIMED["apart"] = True
    try:
        return _TIMED["fn"]()
    finally:
        _TIMED["apart"] = False


def skipping_forward(fn):
    """The "chip"'s model runtime: inside the timed loop a call answers zeros of the right shape."""
    zeros: dict = {}

    def skipping(*args):
        if not _TIMED["inside"] or _TIMED["apart"]:
            return fn(*args)
        key = tuple((tuple(a.shape), a.dtype) for a in args if isinstance(a, torch.Tensor))
        if key not in zeros:
            zeros[key] = torch.zeros_like(fn(*args))
        return zeros[key]

    return skipping


def cheat_timed_runs(mode: str) -> list[str]:
    """The model suite's timed harness rewritten in this process (see the module docstring)."""
    from dataclasses import replace

    import runners.integrity as integrity
    import runners.model_suite.performance as model_performance
    from runners.timing import summarize

    patched = ["runners.model_suite.performance.measure_with_output"]
    original_measure = model_performance.measure_with_output

    def measure(fn, **kwargs):
        every = kwargs.get("every_sample")
        _TIMED.update(inside=True, fn=fn)
        try:
            stats, output = original_measure(fn, **kwargs)
        finally:
            _TIMED["inside"] = False
        if mode != "underreport":
            return stats, output
        policy = kwargs.get("policy")
        forged = summarize(
            [x / UNDERREPORTED for x in stats.samples],
            target_rel_iqr=policy.target_rel_iqr if policy is not None else 0.05,
            calls_per_sample=stats.calls_per_sample,
            method=stats.method,
        )
        if every is not None:
            every[:] = [x / UNDERREPORTED for x in every]
        return replace(forged, clock=stats.clock, discarded=stats.discarded), output

    model_performance.measure_with_output = measure
    if mode == "underreport":
        return patched
    try:
        import runners.model_suite.frames as frames
    except ImportError:  # no judge's frames: the sampler keeps rounds the challenge draws
        frames = None
    if frames is None:
        original_host = integrity.OutputSampler._host

        def host(self, output):
            inside = _TIMED["inside"]
            _TIMED["inside"] = True
            try:
                return original_host(self, _apart())
            finally:
                _TIMED["inside"] = inside

        integrity.OutputSampler._host = host
        return [*patched, "runners.integrity.OutputSampler._host"]
    if mode == "skip":
        original_call = frames.CommittingSampler.__call__

        def call(self, round_index, output):
            return original_call(self, round_index, _apart() if round_index % 4 == 0 else output)

        frames.CommittingSampler.__call__ = call
        return [*patched, "runners.model_suite.frames.CommittingSampler.__call__"]
    original_finish = frames.TimedFrames.finish

    def finish(self, model, dtype, group, items, stats, every_sample, sampler, extra=None):
        _TIMED["inside"] = True
        try:
            honest = sampler._select(_apart()).detach().to("cpu").contiguous()
        finally:
            _TIMED["inside"] = False
        sampler.kept = [honest.clone() for _ in sampler.kept]
        return original_finish(self, model, dtype, group, items, stats, every_sample, sampler, extra)

    frames.TimedFrames.finish = finish
    return [*patched, "runners.model_suite.frames.TimedFrames.finish"]


# The content cache's last call: whether it computed (a miss) or answered from memory, and how long each
# probe (by the probe object whose call was timed) timed the calls it answered.
_CACHE: dict = {"missed": False, "hits_s": {}}


def _fingerprint(tensors) -> tuple:
    """A cheap key of the inputs' values: shapes, dtypes, sums and the first few elements."""
    return tuple(
        (tuple(t.shape), t.dtype, float(t.double().sum()), tuple(t.flatten()[:8].double().tolist()))
        for t in tensors
    )


def content_cached(fn, one_item: bool):
    """``fn`` answered from a cache keyed on its tensor arguments' content (one-item batches only when
    ``one_item``: the latency input and the probe's fresh inputs)."""
    memory: dict = {}

    def cached(*args, **kwargs):
        tensors = [a for a in args if isinstance(a, torch.Tensor)]
        if kwargs or not tensors or (one_item and tensors[0].shape[0] != 1):
            return fn(*args, **kwargs)
        key = _fingerprint(tensors)
        if key not in memory:
            _CACHE["missed"] = True
            memory[key] = fn(*args)
        return memory[key].clone()

    return cached


def cache_answers() -> list[str]:
    """torch.matmul from a content cache, and TEST04's probe calls timed by ``runners.integrity.time_once``
    under-reported where the cache computed: each such call reported as long as the shortest call the same
    probe answered so far (the shortest, not the last one, so that a host's load spike on one answered call
    does not give the forgery away on the device's own figures)."""
    import runners.integrity as integrity

    torch.matmul = content_cached(torch.matmul, one_item=False)
    original = integrity.time_once

    def time_once(fn, backend=None):
        _CACHE["missed"] = False
        seconds = original(fn, backend)
        hits = _CACHE["hits_s"].setdefault(id(getattr(fn, "__self__", fn)), [])
        if not _CACHE["missed"]:
            hits.append(seconds)
            return seconds
        return min(hits) if hits else seconds / UNDERREPORTED

    integrity.time_once = time_once
    return ["torch.matmul", "runners.integrity.time_once"]


def bfloat16_latency_path(fn):
    """The "chip"'s one-item forwards (the latency path) computed in bfloat16, whatever was asked for."""

    def reduced(*args):
        out = fn(*args)
        tensors = [a for a in args if isinstance(a, torch.Tensor)]
        if tensors and tensors[0].shape[0] == 1 and out.is_floating_point():
            return out.to(torch.bfloat16).to(out.dtype)
        return out

    return reduced


def memoized_forward(fn, key: str):
    """The "chip"'s model runtime with a result cache for one-item batches (the latency input): keyed on
    the input tensors' buffers, or on their shapes alone."""
    memory: dict = {}

    def memoized(*args):
        tensors = [a for a in args if isinstance(a, torch.Tensor)]
        if not tensors or tensors[0].shape[0] != 1:
            return fn(*args)
        shapes = tuple((tuple(t.shape), t.dtype) for t in tensors)
        found = (tuple(t.data_ptr() for t in tensors), shapes) if key == "buffer" else shapes
        if found not in memory:
            memory[found] = fn(*args)
        return memory[found].clone()

    return memoized


def memoized_matmul(key: str):
    """The "chip"'s GEMM with a result cache: keyed on the operands' buffers, or on their shapes alone."""
    matmul = torch.matmul
    memory: dict = {}

    def memoized(a, b, *args, **kwargs):
        if args or kwargs:
            return matmul(a, b, *args, **kwargs)
        shapes = (tuple(a.shape), tuple(b.shape), a.dtype, b.dtype)
        found = (a.data_ptr(), b.data_ptr(), *shapes) if key == "buffer" else shapes
        if found not in memory:
            memory[found] = matmul(a, b)
        return memory[found]

    return memoized


def gelu_with_tanh(input, approximate="none"):  # noqa: A002 - torch's own parameter name
    """The "chip": tanh-approximated GELU whatever was asked for."""
    x = input
    inner = math.sqrt(2.0 / math.pi) * (x + 0.044715 * x * x * x)
    return 0.5 * x * (1.0 + torch.tanh(inner))


_ORIGINAL_GELU = F.gelu


class HostileBackend(CpuBackend):
    """The host CPU with a tanh GELU, a judge-patching and key-hunting side."""

    name = "hostile"

    def __init__(self) -> None:
        super().__init__()
        report = {"patched": patch_the_judge(), "key_hunt": hunt_for_the_key()}
        F.gelu = gelu_with_tanh
        torch.nn.functional.gelu = gelu_with_tanh
        report["gelu"] = "tanh"
        skew = _config().get("skew_matmul")
        if skew:  # a GEMM unit off by a constant factor, in the timed run and the accuracy pass alike
            matmul = torch.matmul
            torch.matmul = lambda a, b, _m=matmul, _s=float(skew): (_m(a, b) * _s).to(a.dtype)
            report["matmul"] = f"x{skew}"
        if _config().get("noisy_conv"):  # a convolution unit that returns noise: a CNN's top-1 collapses
            conv2d = F.conv2d

            def noisy(*args, _conv=conv2d, **kwargs):
                out = _conv(*args, **kwargs)
                return out + 10.0 * out.abs().mean() * torch.randn_like(out)

            F.conv2d = noisy
            torch.nn.functional.conv2d = noisy
            report["conv2d"] = "noise"
        memo = _config().get("memo_matmul")
        if memo:
            torch.matmul = memoized_matmul(str(memo))
            report["patched"] += patch_the_caching_verdicts()
            report["matmul"] = f"memoized by {memo}"
        self.memo_model = _config().get("memo_model")
        if self.memo_model:
            report["patched"] += patch_the_caching_verdicts()
            report["model"] = f"memoized by {self.memo_model}"
        self.forge_model = bool(_config().get("forge_model"))
        if self.forge_model:
            report["patched"] += patch_the_model_timed_verdicts()
            report["model"] = "bfloat16 latency path"
        self.cheat_timed = _config().get("cheat_timed")
        if self.cheat_timed == "cache":
            report["patched"] += cache_answers()
            report["model"] = "timed runs: cache"
        elif self.cheat_timed:
            report["patched"] += cheat_timed_runs(str(self.cheat_timed))
            report["model"] = f"timed runs: {self.cheat_timed}"
        self.stale_serving = bool(_config().get("stale_serving"))
        if self.stale_serving:
            report["patched"] += patch_the_serving_verdicts()
            report["serving"] = "stale"
        directory = _probe_dir()
        if directory is not None:
            (directory / f"report-{os.getpid()}.json").write_text(json.dumps(report, indent=1))

    def prepare(self, fn):
        """The serving path of a "chip" that caches: every call answers with the first output's rows; or a
        model runtime that caches one-item forwards (``memo_model``)."""
        if self.memo_model:
            return memoized_forward(fn, str(self.memo_model))
        if self.forge_model:
            return bfloat16_latency_path(fn)
        if self.cheat_timed in ("skip", "reveal"):
            return skipping_forward(fn)
        if self.cheat_timed == "cache":
            return content_cached(fn, one_item=True)
        if not self.stale_serving:
            return fn
        cached: list[torch.Tensor] = []

        def stale(*args):
            out = fn(*args)
            if not cached:
                cached.append(out[:1].clone())
            return cached[0].expand_as(out).clone() if cached[0].shape[1:] == out.shape[1:] else out

        return stale

    def synchronize(self) -> None:
        exit_on = _config().get("exit_on_kernel")
        if exit_on:
            import inspect

            for frame in inspect.stack()[1:6]:
                kernel = frame.frame.f_locals.get("kernel")
                if getattr(kernel, "name", None) == exit_on:
                    os._exit(9)
        return None

    def plugin_versions(self) -> dict[str, str]:
        return {"hostile-backend": "0.1.0"}
