"""Integrity checks run inside performance runs, after MLPerf's compliance tests.

* Output consistency (TEST01): indices chosen from the challenge seed pick outputs that
  the timed run must log; each must match the accuracy run's output for the same input.
  A device that skips work or returns stale results while it is being timed fails.
  ``OutputSampler`` takes those outputs at randomized rounds of the timed run (not only its
  last call), and ``reference_consistency`` also judges them against the float64 reference
  with the conformance tolerance of the requested dtype: comparing the timed run with the
  suite's own accuracy pass alone lets a device that degrades both pass (FP8 throughout).
* Caching (TEST04): the same work is timed on one input repeated and on fresh inputs (each
  used once). A device that memoizes results runs the repeated input much faster: a speedup
  (fresh median / repeated median) above 1 + ``threshold`` fails, provided the confidence
  intervals of the two medians do not overlap, so that timing noise alone cannot fail an
  honest device. ``CachingProbe`` runs at randomized rounds of the timed run itself, with the
  very callable being timed and randomized patterns of repeated and fresh calls, so
  memoization that starts after some calls, or that refreshes when it sees a new input, is
  probed where it pays off. Fresh values are copied into the timed callable's own input
  buffers right before their call, so both sides are equally hot in the hardware caches (an
  honest CPU's small GEMMs no longer look memoized), and every fresh output must equal the
  device's output for those values computed apart, so a memo keyed on the buffers (which the
  refill would fool on timing) fails on its stale outputs.

The TEST04 threshold is a certification bar, so it is the program's (its level's
``test04_max_speedup``, passed in the job spec's ``options.integrity.caching_threshold``); a run
given none reports the raw medians and intervals with the verdict ``not_judged``. Every raw figure
goes into the document so the platform re-judges it with the program's bar.

With a device process each timed probe call runs in a frame of the judge's (``frames``:
runners/probe_frames.py), its fresh output committed by digest inside the frame; the judge holds the
reported timings against its own clock with the program's clock bounds.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from runners.catalog.base import Tolerance
from runners.timing import RoundHook, TimedBackend, TimingStats, summarize, time_once

if TYPE_CHECKING:
    from runners.probe_frames import ProbeFrames


def caching_threshold_of(options: dict[str, Any]) -> float | None:
    """The program's TEST04 bound from the job spec's ``options.integrity`` (None: not judged here)."""
    value = (options.get("integrity") or {}).get("caching_threshold")
    return None if value is None else float(value)


def sample_indices(seed: int | str, population: int, k: int, *, salt: str) -> list[int]:
    """``k`` distinct indices of ``population`` fixed by the challenge seed and a salt.

    The salt (suite and model name) makes separate draws independent; a vendor who does
    not know the seed cannot know which outputs will be checked.
    """
    chooser = seeded_random(seed, salt)
    return sorted(chooser.sample(range(population), min(k, population)))


def seeded_random(seed: int | str, salt: str) -> random.Random:
    """A generator fixed by the challenge and a salt, for choices a vendor must not predict."""
    digest = hashlib.sha256(f"{seed}:{salt}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))  # noqa: S311 - sampling, not secrecy


def default_tolerance(dtype: torch.dtype) -> tuple[float, float]:
    """(rtol, atol) between two device runs of the same input in ``dtype``.

    Different batch sizes may pick different kernels with a different reduction order, so
    the two runs are allowed the rounding of a few ulps of the dtype, not bitwise equality.
    """
    if dtype in (torch.bfloat16,):
        return 5e-2, 5e-2
    if dtype in (torch.float16,):
        return 1e-2, 1e-2
    if dtype.is_floating_point:
        return 1e-4, 1e-5
    return 0.0, 0.0


def output_consistency(
    accuracy: Mapping[Any, torch.Tensor],
    logged: Mapping[Any, torch.Tensor],
    *,
    dtype: torch.dtype,
    sampled: Sequence[Any],
) -> dict[str, Any]:
    """Verdict of TEST01: every sampled output logged in the timed run matches accuracy's."""
    rtol, atol = default_tolerance(dtype)
    mismatches: list[dict[str, Any]] = []
    worst = 0.0
    for key in sampled:
        expected, got = accuracy.get(key), logged.get(key)
        if expected is None or got is None:
            mismatches.append({"sample": str(key), "reason": "output not logged"})
            continue
        expected = expected.detach().to("cpu", torch.float64)
        got = got.detach().to("cpu", torch.float64)
        if expected.shape != got.shape:
            mismatches.append(
                {"sample": str(key), "reason": f"shape {tuple(got.shape)} != {tuple(expected.shape)}"}
            )
            continue
        diff = (got - expected).abs()
        finite = torch.isfinite(expected)
        if diff.numel():
            worst = max(worst, float(diff[finite].max()) if finite.any() else 0.0)
        close = torch.isclose(got, expected, rtol=rtol, atol=atol, equal_nan=True)
        if not bool(close.all()):
            mismatches.append(
                {
                    "sample": str(key),
                    "reason": "values differ",
                    "mismatch_fraction": float((~close).double().mean()),
                }
            )
    return {
        "verdict": "pass" if not mismatches else "fail",
        "sampled": len(sampled),
        "sample_ids": [str(key) for key in sampled],
        "mismatches": len(mismatches),
        "details": mismatches[:10],
        "max_abs_diff": worst,
        "rtol": rtol,
        "atol": atol,
    }


@dataclass(frozen=True)
class FreshInput:
    """Values a caching probe's buffers have never held, and the device's output for them apart.

    ``values`` match the probe's ``buffers`` one for one (shape and dtype); the probe copies
    them into those buffers, in place and untimed, right before a timed fresh call. ``apart``
    computes the device's output on ``values`` in buffers of their own (never timed, called
    only after every timed call of its probe): what the timed fresh call must have returned.
    The probe takes a factory of each, called right before its use, so that one fresh input
    at a time is in memory however many a probe uses.
    """

    values: tuple[torch.Tensor, ...]
    apart: Callable[[], object]


def _first_tensor(output: object) -> torch.Tensor:
    return output[0] if isinstance(output, tuple | list) else output  # type: ignore[return-value]


class CachingProbe:
    """TEST04 inside a timed run: a ``RoundHook`` that probes at randomized rounds.

    Each probe times, one call at a time, a random arrangement of 3 to 6 *repeated* calls (the
    callable being measured on the input it has seen over and over) and 1 or 2 *fresh* calls. A
    fresh call is the same callable on the same buffers, refilled in place (untimed, just before
    it) with values never seen before: the data sits at the same addresses and was touched just
    before the call, as hot in the hardware caches as the repeated input. So an honest device
    runs both sides at the same speed even where the inputs fit in its caches (the old design,
    fresh inputs in tensors of their own filled long before, measured honest repeat speed-ups of
    1.3-1.8 on small CPU GEMMs: cold against hot caches, not memoization). The original values
    are copied back before the next repeated call and after each probe, so the timed run goes on
    with its own input.

    A device that memoizes by content runs the fresh calls at full cost and the repeated ones
    from memory (the timing verdict). One that memoizes by buffer (address, graph, callable) is
    as fast on both sides, but returns the repeated input's result for the refilled values:
    each probe keeps every fresh call's output and the device's output for the same values in
    buffers of their own (``FreshInput.apart``), and ``judge_caching`` fails the verdict when one
    differs (``fresh_output_mismatches``; ``fresh_outputs_stale`` counts those equal to the
    repeated input's output).

    The probe only measures and keeps (``evidence``): the verdict is ``judge_caching``'s, so that
    with a device process (runners/device) the judge decides from the evidence that comes back,
    never the process that ran the device's code.

    Where probes land and their patterns come from the challenge, so a device cannot arrange for
    the probes to see honest work. ``complete`` runs a last probe after the timed run (when a memo
    that starts late is surely on) with whatever fresh inputs are left; ``finish`` does that and
    returns the verdict. The timing verdict compares fresh calls with the *steady* repeated calls,
    those that follow another repeated call with no write to the buffers between: a cache that
    refreshes whenever it sees a new input, or whenever its buffers are written, recomputes once
    after each fresh call and hits again on the next repeated one, as it does through the timed
    run. (With fewer than three steady samples every repeated call counts.)
    """

    def __init__(
        self,
        call: Callable[[], object],
        buffers: Sequence[torch.Tensor],
        fresh: Sequence[Callable[[], FreshInput]],
        *,
        backend: TimedBackend | None,
        seed: int | str,
        salt: str,
        probability: float = 0.25,
        threshold: float | None = None,
        select: Callable[[Any], torch.Tensor] = _first_tensor,
        frames: ProbeFrames | None = None,
    ) -> None:
        self._call = call
        self._frames = frames
        self._salt = salt
        self._buffers = list(buffers)
        self._original = [b.detach().clone() for b in self._buffers]
        self._fresh = list(fresh)
        self._backend = backend
        self._random = seeded_random(seed, f"caching:{salt}")
        self._probability = probability
        self._threshold = threshold
        self._select = select
        self._holding_fresh = False
        self._output: list[object] = [None]
        self._repeated_output: torch.Tensor | None = None
        self.fresh_outputs: list[torch.Tensor] = []
        self.apart_outputs: list[torch.Tensor] = []
        self.fresh_samples: list[float] = []
        self.repeated_samples: list[float] = []
        self.steady_samples: list[float] = []
        self.patterns: list[str] = []
        self.rounds: list[int | None] = []

    def __call__(self, round_index: int, output: object = None) -> None:
        # The last fresh input is kept for the probe after the run (``complete``).
        if len(self._fresh) > 1 and self._random.random() < self._probability:
            self._probe(round_index, keep=1)

    def _run(self) -> None:
        self._output[0] = self._call()

    def _time(self, side: str) -> float:
        """One timed call; with the judge's frames (runners/probe_frames.py) inside a frame of its own,
        a fresh call's judged output committed by digest before the frame closes."""
        if self._frames is None:
            return time_once(self._run, self._backend)
        judged = (lambda: self._host(self._output[0])) if side == "F" else None
        return self._frames.call(self._salt, side, lambda: time_once(self._run, self._backend), judged)

    def _fill(self, buffers: Sequence[torch.Tensor], values: Sequence[torch.Tensor]) -> None:
        """Untimed: ``values`` into ``buffers``, in place, finished before the next timed call."""
        with torch.no_grad():
            for buffer, value in zip(buffers, values, strict=True):
                buffer.copy_(value)
        if self._backend is not None:
            self._backend.synchronize()

    def _host(self, output: object) -> torch.Tensor:
        return self._select(output).detach().to("cpu")

    def _probe(self, round_index: int | None, keep: int = 0) -> None:
        count = min(self._random.randint(1, 2), len(self._fresh) - keep)
        # Built before the pattern, untimed: the one or two fresh inputs of this probe in memory.
        fresh = [self._fresh.pop(0)() for _ in range(min(count, len(self._fresh)))]
        for entry in fresh:
            _check_shapes(self._buffers, entry.values)
        timed_fresh: list[tuple[FreshInput, object]] = []
        pattern = ["R"] * self._random.randint(3, 6) + ["F"] * len(fresh)
        self._random.shuffle(pattern)
        # Both sides are timed the same way: each call follows another device call and an untimed
        # copy into its input buffers (the fresh values, or the values they held all along), so
        # the device's thread pool, clocks and caches are in the same state before either.
        self._run()
        previous = "R"  # that call: a repeated call, untimed
        for step in pattern:
            if step == "F":
                entry = fresh.pop(0)
                self._fill(self._buffers, entry.values)
                self._holding_fresh = True
                self.fresh_samples.append(self._time("F"))
                timed_fresh.append((entry, self._output[0]))
            else:  # the same copy as a fresh call's, of the values the buffers held all along
                self._fill(self._buffers, self._original)
                self._holding_fresh = False
                seconds = self._time("R")
                self.repeated_samples.append(seconds)
                if previous == "R":
                    self.steady_samples.append(seconds)
                if self._repeated_output is None:
                    self._repeated_output = self._host(self._output[0])
            previous = step
        if self._holding_fresh:  # the timed run goes on with its own input
            self._fill(self._buffers, self._original)
            self._holding_fresh = False
        self._output[0] = None
        self.patterns.append("".join(pattern))
        self.rounds.append(round_index)
        # After every timed call of the probe (each fresh value was timed before anything else saw it).
        for entry, output in timed_fresh:
            self.fresh_outputs.append(self._host(output))
            self.apart_outputs.append(self._host(entry.apart()))

    def complete(self) -> None:
        """A last probe with the fresh inputs left (none left: nothing to do)."""
        while self._fresh:
            self._probe(None)

    def evidence(self) -> CachingEvidence:
        """What the probes measured and kept, the raw material of ``judge_caching``."""
        return CachingEvidence(
            fresh_samples=list(self.fresh_samples),
            repeated_samples=list(self.repeated_samples),
            steady_samples=list(self.steady_samples),
            patterns=list(self.patterns),
            rounds=list(self.rounds),
            fresh_outputs=list(self.fresh_outputs),
            apart_outputs=list(self.apart_outputs),
            repeated_output=self._repeated_output,
        )

    def finish(self, references: Mapping[int, Any] | None = None) -> dict[str, Any]:
        """A last probe with the fresh inputs left, then the verdict (``judge_caching``)."""
        self.complete()
        return judge_caching(self.evidence(), threshold=self._threshold, references=references)


@dataclass(frozen=True)
class CachingEvidence:
    """A caching probe's raw figures and the outputs it kept, all its verdict is computed from.

    ``fresh_outputs[i]`` is the timed output of the i-th fresh input (in the order the probe took
    them), ``apart_outputs[i]`` the device's output for the same values in buffers of their own,
    ``repeated_output`` the first repeated call's output (each the part ``select`` keeps, on the
    host). With a device process the evidence crosses as JSON figures and tensors (``to_wire``,
    ``from_wire``) and the judge runs ``judge_caching`` on it.
    """

    fresh_samples: list[float]
    repeated_samples: list[float]
    steady_samples: list[float]
    patterns: list[str]
    rounds: list[int | None]
    fresh_outputs: list[torch.Tensor]
    apart_outputs: list[torch.Tensor]
    repeated_output: torch.Tensor | None

    def to_wire(self, prefix: str) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        """The JSON figures and the named tensors of this evidence, tensor names under ``prefix``."""
        tensors = {f"{prefix}.fresh{i}": t for i, t in enumerate(self.fresh_outputs)}
        tensors.update({f"{prefix}.apart{i}": t for i, t in enumerate(self.apart_outputs)})
        if self.repeated_output is not None:
            tensors[f"{prefix}.repeated"] = self.repeated_output
        header = {
            "fresh_samples": self.fresh_samples,
            "repeated_samples": self.repeated_samples,
            "steady_samples": self.steady_samples,
            "patterns": self.patterns,
            "rounds": self.rounds,
            "fresh_outputs": len(self.fresh_outputs),
            "apart_outputs": len(self.apart_outputs),
        }
        return header, tensors

    @classmethod
    def from_wire(
        cls, header: Mapping[str, Any], tensors: Mapping[str, torch.Tensor], prefix: str
    ) -> CachingEvidence:
        """The evidence a device process sent (``to_wire``); ValueError when it is not well formed."""

        def seconds(key: str) -> list[float]:
            values = header.get(key)
            if not isinstance(values, list) or not all(
                isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) and v >= 0
                for v in values
            ):
                raise ValueError(f"{key}: not a list of durations")
            return [float(v) for v in values]

        def outputs(kind: str) -> list[torch.Tensor]:
            count = header.get(f"{kind}_outputs")
            if not isinstance(count, int) or isinstance(count, bool) or count < 0:
                raise ValueError(f"{kind}_outputs: not a count")
            missing = [i for i in range(count) if f"{prefix}.{kind}{i}" not in tensors]
            if missing:
                raise ValueError(f"{kind} outputs {missing} did not come back")
            return [tensors[f"{prefix}.{kind}{i}"] for i in range(count)]

        patterns, rounds = header.get("patterns"), header.get("rounds")
        if not isinstance(patterns, list) or not all(isinstance(p, str) for p in patterns):
            raise ValueError("patterns: not a list of strings")
        if not isinstance(rounds, list) or not all(
            r is None or (isinstance(r, int) and not isinstance(r, bool)) for r in rounds
        ):
            raise ValueError("rounds: not a list of round numbers")
        return cls(
            fresh_samples=seconds("fresh_samples"),
            repeated_samples=seconds("repeated_samples"),
            steady_samples=seconds("steady_samples"),
            patterns=list(patterns),
            rounds=list(rounds),
            fresh_outputs=outputs("fresh"),
            apart_outputs=outputs("apart"),
            repeated_output=tensors.get(f"{prefix}.repeated"),
        )


def _evidence_problem(evidence: CachingEvidence) -> str | None:
    """Why the evidence cannot be what a probe recorded (counts that do not add up), or None."""
    fresh_calls = sum(p.count("F") for p in evidence.patterns)
    repeated_calls = sum(p.count("R") for p in evidence.patterns)
    steady_calls = sum(
        1
        for p in evidence.patterns
        for i, step in enumerate(p)
        if step == "R" and (i == 0 or p[i - 1] == "R")
    )
    if any(set(p) - {"R", "F"} or p.count("R") < 3 for p in evidence.patterns):
        return "a probe pattern that no probe draws"
    if len(evidence.rounds) != len(evidence.patterns):
        return f"{len(evidence.rounds)} probe rounds for {len(evidence.patterns)} patterns"
    if (
        not len(evidence.fresh_samples)
        == len(evidence.fresh_outputs)
        == len(evidence.apart_outputs)
        == fresh_calls
    ):
        return (
            f"{len(evidence.fresh_samples)} fresh timings, {len(evidence.fresh_outputs)} fresh outputs and "
            f"{len(evidence.apart_outputs)} outputs apart for {fresh_calls} fresh calls in the patterns"
        )
    if len(evidence.repeated_samples) != repeated_calls or len(evidence.steady_samples) != steady_calls:
        return (
            f"{len(evidence.repeated_samples)} repeated and {len(evidence.steady_samples)} steady timings "
            f"for {repeated_calls} repeated and {steady_calls} steady calls in the patterns"
        )
    if repeated_calls and evidence.repeated_output is None:
        return "the repeated input's output did not come back"
    return None


@dataclass(frozen=True)
class NearestReference:
    """A fresh input's float64 reference, where no elementwise tolerance is the rule (a whole model's
    output): the fresh output must lie nearer (Euclidean distance, in float64) to the reference of its
    own values than to the reference of any other input the probe ran (``others``: the repeated input's
    and the other checked fresh inputs'). A result cache answers a fresh input with another input's
    output, which lies at that input's reference; an honest device's output lies at its own.

    Measured on the model suite's seeded and MiniLM models on this CPU (float32, bfloat16, float16,
    challenges a and b): an honest output's distance to its own reference is at most 0.21 of its distance
    to the nearest other (DeepSeek-V3-tiny bfloat16, routing flips on unconditioned fresh prompts; 0.08
    for every other model), the repeated input's output at least 16 times nearer the repeated input's
    reference (ResNet bfloat16; >= 57 elsewhere)."""

    expected: torch.Tensor
    others: tuple[torch.Tensor, ...]

    def passes(self, got: torch.Tensor) -> bool:
        shape = tuple(self.expected.shape)
        if tuple(got.shape) != shape or not self.others:
            return False
        got = got.to(torch.float64)
        if not bool(torch.isfinite(got).all()):
            return False
        own = float((got - self.expected.to(torch.float64)).norm())
        nearest = min(
            float((got - other.to(torch.float64)).norm()) if tuple(other.shape) == shape else math.inf
            for other in self.others
        )
        return own < nearest


def judge_caching(
    evidence: CachingEvidence, *, threshold: float | None, references: Mapping[int, Any] | None = None
) -> dict[str, Any]:
    """The TEST04 verdict of one probed callable, from its evidence alone.

    Timing: the fresh median against the steady repeated median (``caching_verdict``). Outputs:
    every fresh call's output against the device's output for its values apart (a cache keyed on
    the buffers answers the refilled values with the old result), and, for the fresh inputs in
    ``references`` (position in ``fresh_outputs`` -> a ``ReferenceCheck``-like object with
    ``expected``, ``tolerance`` and ``bound`` for that input's values, or a ``NearestReference``), against
    the judge's float64 reference with the conformance tolerance (a model's: nearer its own): a cache that
    answers every input of a shape with one result is as wrong apart as timed, and only the reference
    sees it.
    """
    problem = _evidence_problem(evidence)
    if not evidence.fresh_samples or not evidence.repeated_samples:
        return {"verdict": "fail", "reason": problem or "no caching probe ran", "threshold": threshold}
    if problem is not None:
        return {
            "verdict": "fail",
            "reason": f"the probe's evidence does not add up: {problem}",
            "threshold": threshold,
        }
    mismatches = stale = 0
    for got, apart in zip(evidence.fresh_outputs, evidence.apart_outputs, strict=True):
        if not _same_output(got, apart):
            mismatches += 1
            if evidence.repeated_output is not None and _same_output(got, evidence.repeated_output):
                stale += 1
    repeated = evidence.steady_samples if len(evidence.steady_samples) >= 3 else evidence.repeated_samples
    verdict = caching_verdict(summarize(evidence.fresh_samples), summarize(repeated), threshold=threshold)
    checked = len(evidence.fresh_outputs)
    reference_failures: list[int] = []
    for position, check in sorted((references or {}).items()):
        if not 0 <= position < checked:
            reference_failures.append(position)
            continue
        got = evidence.fresh_outputs[position]
        if isinstance(check, NearestReference):
            if not check.passes(got):
                reference_failures.append(position)
            continue
        result = reference_consistency(
            [(f"fresh{position}", got)], check.expected, check.tolerance, check.bound
        )
        if result["verdict"] == "fail":
            reference_failures.append(position)
    if mismatches:
        # A stale or wrong answer for new values is a result cache whatever the bar: not timing.
        verdict["verdict"] = "fail"
        verdict["reason"] = (
            f"{mismatches} of {checked} fresh calls returned an output other than the device's own for those values"
        )
    elif reference_failures:
        verdict["verdict"] = "fail"
        verdict["reason"] = (
            f"{len(reference_failures)} of {len(references or {})} fresh outputs checked against the float64 "
            "reference of their values are outside the conformance tolerance (answered with another input's result)"
        )
    return {
        **verdict,
        "fresh_outputs_checked": checked,
        "fresh_output_mismatches": mismatches,
        "fresh_outputs_stale": stale,
        "fresh_reference_checked": len(references or {}),
        "fresh_reference_failures": len(reference_failures),
        "fresh_inputs": "refilled in place",
        "repeated_side": "steady" if repeated is evidence.steady_samples else "all",
        "all_repeated_median_s": summarize(evidence.repeated_samples).median,
        "probe_rounds": evidence.rounds,
        "patterns": evidence.patterns,
    }


def _check_shapes(buffers: Sequence[torch.Tensor], values: Sequence[torch.Tensor]) -> None:
    if len(buffers) != len(values) or any(
        b.shape != v.shape or b.dtype != v.dtype for b, v in zip(buffers, values, strict=False)
    ):
        raise ValueError("a caching probe's fresh values must match its buffers in shape and dtype")


def _same_output(got: torch.Tensor, expected: torch.Tensor) -> bool:
    """Two device outputs of the same values (run to run tolerance of the dtype, as TEST01)."""
    if got.shape != expected.shape:
        return False
    rtol, atol = default_tolerance(expected.dtype)
    return bool(
        torch.isclose(
            got.to(torch.float64), expected.to(torch.float64), rtol=rtol, atol=atol, equal_nan=True
        ).all()
    )


def probe_evidence(record: dict[str, Any], tensors: dict[str, Any], index: int) -> CachingEvidence | str:
    """A device probe's TEST04 evidence read off the wire (its tensors named ``caching<index>``), or why
    the judge cannot judge it: the error the device process reported, or evidence that is not well formed."""
    if "error" in record:
        return str(record["error"])[:500]
    try:
        return CachingEvidence.from_wire(record, tensors, f"caching{index}")
    except ValueError as exc:
        return f"the probe's evidence is not well formed: {exc}"[:500]


def caching_check(
    call: Callable[[], object],
    buffers: Sequence[torch.Tensor],
    fresh: Sequence[Callable[[], FreshInput]],
    *,
    backend: TimedBackend | None,
    seed: int | str = "",
    salt: str = "",
    threshold: float | None = None,
    warmup: int = 2,
    select: Callable[[Any], torch.Tensor] = _first_tensor,
) -> dict[str, Any]:
    """Verdict of TEST04 outside a timed run: probes in randomized patterns until fresh inputs run out.

    ``call`` reads ``buffers``; every fresh input is copied into them once (``CachingProbe``), so a
    cache keyed on input content never hits on the fresh side and always hits on the repeated
    side, and one keyed on the buffers returns stale outputs the probe checks. Calls are timed one
    by one, repeated and fresh in seeded random order, so that a noisy neighbour or a clock change
    affects both sides alike.
    """
    evidence = caching_evidence(
        call, buffers, fresh, backend=backend, seed=seed, salt=salt, warmup=warmup, select=select
    )
    return judge_caching(evidence, threshold=threshold)


def caching_evidence(
    call: Callable[[], object],
    buffers: Sequence[torch.Tensor],
    fresh: Sequence[Callable[[], FreshInput]],
    *,
    backend: TimedBackend | None,
    seed: int | str = "",
    salt: str = "",
    warmup: int = 2,
    select: Callable[[Any], torch.Tensor] = _first_tensor,
    frames: ProbeFrames | None = None,
) -> CachingEvidence:
    """What ``caching_check`` measures and keeps, unjudged: the raw material of ``judge_caching``, for a
    judge in another process (runners/device) or one that adds references of the fresh values."""
    for _ in range(warmup):
        call()
    probe = CachingProbe(
        call,
        buffers,
        fresh,
        backend=backend,
        seed=seed,
        salt=salt,
        probability=0.0,
        select=select,
        frames=frames,
    )
    probe.complete()
    return probe.evidence()


TEST01_ROUND_PROBABILITY = 0.25
TEST01_ROUND_LIMIT = 3


def sampled_rounds(
    seed: int | str,
    salt: str,
    last_round: int,
    *,
    probability: float = TEST01_ROUND_PROBABILITY,
    limit: int = TEST01_ROUND_LIMIT,
) -> list[int]:
    """The rounds an ``OutputSampler`` with this seed and salt keeps in a run ending at ``last_round``.

    The platform recomputes it from the job's challenge: a document replayed from another job shows
    rounds its challenge would not have drawn."""
    rng = seeded_random(seed, f"outputs:{salt}")
    kept: list[int] = []
    for round_index in range(last_round + 1):
        if len(kept) < limit and rng.random() < probability:
            kept.append(round_index)
    if not kept or kept[-1] != last_round:
        kept.append(last_round)
    return kept


class OutputSampler:
    """TEST01 inside a timed run: a ``RoundHook`` keeping outputs of randomized rounds.

    Each round's last output is kept (``select``-ed, on the host) with probability
    ``probability``, at most ``limit`` of them, and the output of the run's last round always
    (``finish``). ``select`` picks the part of the output a reference is computed for.
    """

    def __init__(
        self,
        select: Callable[[Any], torch.Tensor],  # the timed function's output, whatever it returns
        *,
        seed: int | str,
        salt: str,
        probability: float = TEST01_ROUND_PROBABILITY,
        limit: int = TEST01_ROUND_LIMIT,
    ) -> None:
        self._select = select
        self._random = seeded_random(seed, f"outputs:{salt}")
        self._probability = probability
        self._limit = limit
        self.samples: list[tuple[int, torch.Tensor]] = []
        self._last: tuple[int, object] | None = None

    def __call__(self, round_index: int, output: object) -> None:
        self._last = (round_index, output)
        if len(self.samples) < self._limit and self._random.random() < self._probability:
            self.samples.append((round_index, self._host(output)))

    def _host(self, output: object) -> torch.Tensor:
        return self._select(output).detach().to("cpu")

    def finish(self) -> list[tuple[int, torch.Tensor]]:
        if self._last is not None and (not self.samples or self.samples[-1][0] != self._last[0]):
            self.samples.append((self._last[0], self._host(self._last[1])))
        self._last = None
        return self.samples


def chain_hooks(*hooks: RoundHook | None) -> RoundHook | None:
    """One ``RoundHook`` that calls each given hook in turn."""
    present = [h for h in hooks if h is not None]
    if not present:
        return None

    def chained(round_index: int, output: object) -> None:
        for hook in present:
            hook(round_index, output)

    return chained


def reference_consistency(
    outputs: Sequence[tuple[str, torch.Tensor]],
    expected: torch.Tensor,
    tolerance: Tolerance,
    bound: torch.Tensor | None = None,
) -> dict[str, Any]:
    """Each sampled output against the float64 reference, with the conformance tolerance.

    ``expected`` is the reference already rounded to the output dtype (as the conformance
    suite compares); the statistics are the conformance suite's (runners.conformance.compare).
    """
    from runners.conformance import compare

    mismatches: list[dict[str, Any]] = []
    worst_ratio = 0.0
    for label, got in outputs:
        if tuple(got.shape) != tuple(expected.shape):
            mismatches.append(
                {"sample": label, "reason": f"shape {tuple(got.shape)} != {tuple(expected.shape)}"}
            )
            worst_ratio = float("inf")
            continue
        stats = compare(got, expected, tolerance.atol, tolerance.rtol, bound)
        ratio = stats["tolerance_ratio"]
        worst_ratio = max(worst_ratio, float("inf") if ratio is None else ratio)
        if stats["mismatches"]:
            mismatches.append(
                {
                    "sample": label,
                    "reason": "outside the conformance tolerance of the float64 reference",
                    "mismatch_fraction": stats["mismatch_fraction"],
                    "tolerance_ratio": ratio,
                }
            )
    return {
        "verdict": "fail" if mismatches else "pass",
        "checked": len(outputs),
        "mismatches": len(mismatches),
        "details": mismatches[:10],
        "max_tolerance_ratio": worst_ratio,
        "atol": tolerance.atol,
        "rtol": tolerance.rtol,
        "tolerance_source": tolerance.source,
        "componentwise": bound is not None,
    }


def caching_verdict(
    fresh: TimingStats, repeated: TimingStats, *, threshold: float | None = None
) -> dict[str, Any]:
    """The raw TEST04 figures, with a verdict where the job spec gave the program's threshold."""
    speedup = fresh.median / repeated.median if repeated.median > 0 else float("inf")
    separated = repeated.ci_high < fresh.ci_low
    if threshold is None:
        verdict = "not_judged"
    else:
        verdict = "fail" if speedup > 1.0 + threshold and separated else "pass"
    return {
        "verdict": verdict,
        "fresh_median_s": fresh.median,
        "repeated_median_s": repeated.median,
        "speedup_ratio": speedup,
        "threshold": threshold,
        "fresh_ci_s": [fresh.ci_low, fresh.ci_high],
        "repeated_ci_s": [repeated.ci_low, repeated.ci_high],
        "fresh_n": fresh.n,
        "repeated_n": repeated.n,
    }
