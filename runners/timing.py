"""How the runner times a kernel or a model call.

The method, in the order it runs:

1. **Warm-up.** The callable runs until ``warmup_s`` of wall time has passed (at least
   ``warmup_calls`` times) so lazy initialisation, allocator growth, kernel autotuning and
   clock ramp-up happen before anything is recorded. The device is synchronized after the
   warm-up, which also gives a first estimate of the time per call.
2. **Blocks.** As in ``torch.utils.benchmark.Timer.blocked_autorange``, calls are grouped
   in blocks of ``number`` calls and each block gives one sample (block time / number).
   ``number`` is chosen from the warm-up estimate so that a block lasts at least
   ``block_min_s``: the cost of reading the clock or recording an event then stays far
   below 0.1 % of the sample. With a cache flush every call is its own block, as in
   triton's ``do_bench``, because the flush must happen before each call.
3. **Clock.** Where the backend has device timing events (CUDA/ROCm, XPU, ...), a start
   and an end event are recorded around each block and read after one synchronize per
   round, so the host never stalls the device between samples. Otherwise the device is
   synchronized and ``time.perf_counter`` (monotonic, highest resolution) is read before
   and after the block, synchronizing again before the second read.
4. **Cache flush (optional, off in the certification policy).** Before each call a device
   buffer of twice the backend's last-level cache (64 MiB where unknown) is overwritten, so
   every call starts cold; the flush is outside the timed region. Certification figures are
   timed **warm**: operands stay where the flush-free warm-up left them, which is how a
   compute-bound kernel runs in a model and how a bare ``torch.utils.benchmark`` loop times
   it, so the GEMM headline and the bare loop ``bench/gemm_vs_bare.py`` compares it with follow
   one methodology (issue 11; the document's ``timing_policy.flush_cache`` records it). The
   bandwidth benchmarks need no flush: their buffers are 4x the last-level cache.
5. **Adaptive stop.** As in ``adaptive_autorange``, sampling goes on in rounds until at
   least ``min_time_s`` has been measured, at least ``min_samples`` samples exist and the
   relative IQR (IQR / median) is at most ``target_rel_iqr``. The IQR is judged over the
   *most recent window* of samples: the latest ones that together measured at least
   ``window_s`` of device time, and at least ``min_samples`` of them (``window_s`` None: every
   sample since the warm-up, which is ``adaptive_autorange``'s rule). A disturbance (a noisy
   neighbour, a clock change, a late allocator growth) then spoils only the windows it falls
   in: once it has passed, a later window can meet the target, where over all samples the
   disturbed ones would keep the IQR above it until the budget ran out. The window never
   lowers the bar: a measurement is stable only when the samples it reports (the window)
   meet ``target_rel_iqr`` themselves, so the platform can re-check IQR / median from the
   document's statistics; the samples before the window are counted in ``discarded``.
   **Budget.** Sampling gives up at ``max_time_s`` of wall time from the end of the warm-up
   (or twice the time ``min_samples`` blocks take, for calls too long to give that many
   within it; between-round probes count against it) or at ``max_samples`` samples; if no
   window met the target by then, the measurement is marked ``unstable`` and its statistics
   are those of *every* sample, and an unstable measurement never feeds a headline
   (runners.measurements.headline_eligible). The window only lets a row stop *earlier*
   than the cumulative rule would (a row it makes stable would otherwise have run to the
   budget and been unstable), so a suite's wall time does not grow with it: a measurement
   still costs its warm-up plus at most the budget and one more round (a round is about
   20 ms, or ``min_samples`` blocks of a longer call), as before.
6. **Statistics.** Median, p90, p99, IQR, coefficient of variation (sample standard
   deviation / mean), the count, and a distribution-free 95 % confidence interval of the
   median from order statistics (binomial ranks ``n/2 ± 1.96·sqrt(n)/2``), so no normality
   is assumed for timings, which are skewed; all over the reported samples (the window of a
   stable measurement, every sample of an unstable one). ``significant_digits`` is how many
   digits of the median that interval supports (torch.utils.benchmark's
   ``significant_figures`` rule, with this interval in place of its IQR estimate): figures
   are published to that many.
7. **Clock cross-check.** Device events are the vendor's code, so every round of an events
   measurement is also timed by the host clock, from before the round's first event to after
   its closing synchronize. The events are chained (each block's end is the next interval's
   start, flushes included), so their intervals add up to the whole round: on an honest
   device that sum is the host time less the first launch's latency and the last
   synchronize's return, microseconds against a round of a millisecond or more. The ratio
   events / host clock over all rounds outside [``clock_ratio_min``, ``clock_ratio_max``]
   marks the measurement ``clock_disagreement``; the suites then refuse its figure. The bounds
   are the certification program's (its level's ``clock_ratio_bounds``, passed in the job
   spec's ``options.timing``); a run given none reports the raw sums and ratios and refuses
   nothing. Either way the raw figures stay in the document and the platform judges them itself.
8. **Probes.** A caller may pass a hook that runs between rounds (outside every timed
   interval): the integrity checks use it to take output samples and caching probes at
   randomized points of the timed run (runners.integrity).

We do not call ``Timer`` itself: it synchronizes only CUDA (not XPU, MPS or PrivateUse1
devices), has no device events and no cache flush; its block-size idea and stop rule are
kept. ``triton.testing.do_bench`` contributes the flush and the per-call events.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

if TYPE_CHECKING:  # torch is imported where a buffer is made: the platform reads the statistics without it
    import torch

# Where a backend does not know its last-level cache, flush this much: more than the LLC
# of current server CPUs and GPUs (triton's do_bench uses 256 MiB for GPUs; CPUs here).
DEFAULT_FLUSH_BYTES = 64 * 1024 * 1024
_Z_95 = 1.959963984540054
# torch/utils/benchmark/utils/common.py: _MAX_SIGNIFICANT_FIGURES, _MIN_CONFIDENCE_INTERVAL.
MAX_SIGNIFICANT_DIGITS = 4
MIN_CONFIDENCE_INTERVAL_S = 25e-9


@dataclass(frozen=True)
class ClockCheck:
    """Device events against the host clock over the rounds of one measurement."""

    event_s: float  # sum of every chained event interval of every round
    host_s: float  # host clock over the same rounds
    min_round_ratio: float
    rounds: int
    bounds: tuple[float, float] | None  # the program's, from the job spec; None: not judged here

    @property
    def ratio(self) -> float:
        return self.event_s / self.host_s if self.host_s > 0 else math.inf

    @property
    def agrees(self) -> bool | None:
        """Whether the ratio is within the bounds; None when the job spec gave none."""
        if self.bounds is None:
            return None
        return self.bounds[0] <= self.ratio <= self.bounds[1]

    def to_dict(self) -> dict[str, Any]:
        return {
            "event_s": self.event_s,
            "host_s": self.host_s,
            "ratio": self.ratio,
            "min_round_ratio": self.min_round_ratio,
            "rounds": self.rounds,
            "bounds": list(self.bounds) if self.bounds is not None else None,
            "agrees": self.agrees,
        }


class TimingEvent(Protocol):
    def record(self) -> None: ...
    def elapsed_ms(self, end: TimingEvent) -> float: ...


class TimedBackend(Protocol):
    """The part of ``runners.backends.Backend`` timing relies on."""

    def synchronize(self) -> None: ...
    def has_timing_events(self) -> bool: ...
    def event(self) -> TimingEvent: ...
    def device(self, index: int = 0) -> torch.device: ...
    def last_level_cache_bytes(self) -> int | None: ...


@dataclass(frozen=True)
class TimingPolicy:
    """Knobs of the method above; the defaults are for a certification run."""

    warmup_s: float = 0.05
    warmup_calls: int = 2
    min_time_s: float = 0.2
    max_time_s: float = 2.0
    target_rel_iqr: float = 0.05
    # The stop rule judges the most recent samples covering this much measured time (step 5);
    # None: every sample since the warm-up (torch.utils.benchmark's adaptive_autorange).
    window_s: float | None = 0.2
    min_samples: int = 7
    max_samples: int = 10_000
    block_min_s: float = 1e-3
    flush_cache: bool = False
    # Bounds of events / host clock over a measurement's rounds (step 7). They are a
    # certification bar, so they are the program's (its level's ``clock_ratio_bounds``, with
    # their source), given by the job spec's ``options.timing``; without them the runner
    # reports the raw ratio and refuses nothing.
    clock_ratio_min: float | None = None
    clock_ratio_max: float | None = None

    @classmethod
    def quick(cls) -> TimingPolicy:
        """Short and tolerant: for tests and smoke runs, not for certification figures."""
        return cls(
            warmup_s=0.005,
            warmup_calls=1,
            min_time_s=0.02,
            max_time_s=0.3,
            target_rel_iqr=0.15,
            window_s=0.02,
            min_samples=5,
            block_min_s=2e-4,
        )

    @property
    def clock_bounds(self) -> tuple[float, float] | None:
        if self.clock_ratio_min is None or self.clock_ratio_max is None:
            return None
        return float(self.clock_ratio_min), float(self.clock_ratio_max)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> TimingPolicy:
        """Policy from a job spec's ``timing`` section; unknown keys are ignored."""
        if not data:
            return cls()
        base = cls.quick() if data.get("quick") else cls()
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return replace(base, **known)


@dataclass(frozen=True)
class TimingStats:
    """Per-call time statistics of one measurement, in seconds."""

    median: float
    p90: float
    p99: float
    iqr: float
    cv: float
    n: int
    ci_low: float
    ci_high: float
    mean: float
    unstable: bool
    calls_per_sample: int
    method: str  # "device_events" or "host_clock"
    measured_s: float
    samples: tuple[float, ...] = field(repr=False, default=())
    clock: ClockCheck | None = None  # events measurements only
    # Samples measured before the window these statistics describe (step 5); 0 when they are
    # of every sample.
    discarded: int = 0

    @property
    def rel_iqr(self) -> float:
        return self.iqr / self.median if self.median > 0 else math.inf

    @property
    def significant_digits(self) -> int:
        """Digits of the median its 95 % interval supports, 1 to 4 (torch.utils.benchmark's rule).

        ``Measurement.significant_figures`` there: floor(log10(median / CI half-width)), the
        half-width at least 25 ns, clamped to [1, 4].
        """
        half_width = max((self.ci_high - self.ci_low) / 2, MIN_CONFIDENCE_INTERVAL_S)
        if self.median <= 0:
            return 1
        return min(max(math.floor(math.log10(self.median / half_width)), 1), MAX_SIGNIFICANT_DIGITS)

    @property
    def clock_disagrees(self) -> bool:
        return self.clock is not None and self.clock.agrees is False

    def to_dict(self) -> dict[str, float | int]:
        """The ``stats`` object of a measurement in the result document (seconds)."""
        return {
            "median": self.median,
            "p90": self.p90,
            "p99": self.p99,
            "iqr": self.iqr,
            "cv": self.cv,
            "n": self.n,
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
            "discarded": self.discarded,
        }


def stats_to_wire(stats: TimingStats) -> dict[str, Any]:
    """A measurement's raw evidence as the device process sends it to the judge: every sample the
    statistics were computed from (seconds per call), how they were taken, and the clock check's raw
    sums; ``stats_from_wire`` recomputes the statistics from it."""
    return {
        "samples": list(stats.samples),
        "calls_per_sample": stats.calls_per_sample,
        "method": stats.method,
        "discarded": stats.discarded,
        "clock": None
        if stats.clock is None
        else {
            "event_s": stats.clock.event_s,
            "host_s": stats.clock.host_s,
            "min_round_ratio": stats.clock.min_round_ratio,
            "rounds": stats.clock.rounds,
        },
    }


def _wire_number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{what} is not a finite non-negative number")
    return float(value)


def stats_from_wire(raw: Any, policy: TimingPolicy) -> TimingStats:
    """The statistics of a measurement recomputed by the judge from its raw evidence (``stats_to_wire``)
    with the judge's own policy (IQR target and clock bounds): nothing of the device's summary is read.
    Raises ValueError where the evidence is not well formed."""
    if not isinstance(raw, dict):
        raise ValueError("no raw timings")
    samples = raw.get("samples")
    if not isinstance(samples, list) or not samples or len(samples) > policy.max_samples:
        raise ValueError("no samples, or more than the policy takes")
    values = [_wire_number(x, "a sample") for x in samples]
    calls, discarded = raw.get("calls_per_sample"), raw.get("discarded", 0)
    if isinstance(calls, bool) or not isinstance(calls, int) or calls < 1:
        raise ValueError("calls_per_sample is not a positive integer")
    if isinstance(discarded, bool) or not isinstance(discarded, int) or discarded < 0:
        raise ValueError("discarded is not a non-negative integer")
    method = raw.get("method")
    if method not in ("device_events", "host_clock"):
        raise ValueError("unknown timing method")
    clock = raw.get("clock")
    if (method == "device_events") != isinstance(clock, dict):
        raise ValueError("device-events timings need their host-clock sums, host-clock timings have none")
    check = None
    if isinstance(clock, dict):
        rounds = clock.get("rounds")
        if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1:
            raise ValueError("the clock check counts no round")
        check = ClockCheck(
            event_s=_wire_number(clock.get("event_s"), "event_s"),
            host_s=_wire_number(clock.get("host_s"), "host_s"),
            min_round_ratio=_wire_number(clock.get("min_round_ratio"), "min_round_ratio"),
            rounds=rounds,
            bounds=policy.clock_bounds,
        )
    stats = summarize(values, target_rel_iqr=policy.target_rel_iqr, calls_per_sample=calls, method=method)
    return replace(stats, clock=check, discarded=discarded)


def summarize(
    samples: list[float] | np.ndarray,
    *,
    target_rel_iqr: float = 0.05,
    calls_per_sample: int = 1,
    method: str = "host_clock",
) -> TimingStats:
    """Statistics of per-call times; ``unstable`` when the relative IQR exceeds the target."""
    xs = np.sort(np.asarray(samples, dtype=np.float64))
    n = int(xs.size)
    if n == 0:
        raise ValueError("no timing samples")
    q25, median, q75, p90, p99 = np.percentile(xs, [25, 50, 75, 90, 99])
    mean = float(xs.mean())
    cv = float(xs.std(ddof=1) / mean) if n > 1 and mean > 0 else 0.0
    lo, hi = median_confidence_ranks(n)
    iqr = float(q75 - q25)
    return TimingStats(
        median=float(median),
        p90=float(p90),
        p99=float(p99),
        iqr=iqr,
        cv=cv,
        n=n,
        ci_low=float(xs[lo]),
        ci_high=float(xs[hi]),
        mean=mean,
        unstable=bool(median <= 0 or iqr / median > target_rel_iqr),
        calls_per_sample=calls_per_sample,
        method=method,
        measured_s=float(xs.sum()) * calls_per_sample,
        samples=tuple(float(x) for x in xs),
    )


def median_confidence_ranks(n: int) -> tuple[int, int]:
    """0-based ranks bounding a ~95 % distribution-free confidence interval of the median."""
    half_width = _Z_95 * math.sqrt(n) / 2
    lo = math.floor(n / 2 - half_width)
    hi = math.ceil(n / 2 + half_width)
    return max(lo, 0), min(hi, n - 1)


class _CacheFlusher:
    """Overwrites a device buffer larger than the last-level cache."""

    def __init__(self, backend: TimedBackend | None) -> None:
        import torch

        llc = backend.last_level_cache_bytes() if backend is not None else None
        nbytes = 2 * llc if llc else DEFAULT_FLUSH_BYTES
        device = backend.device() if backend is not None else torch.device("cpu")
        self._buffer = torch.empty(nbytes // 4, dtype=torch.int32, device=device)

    def __call__(self) -> None:
        self._buffer.zero_()


def _sync(backend: TimedBackend | None) -> None:
    if backend is not None:
        backend.synchronize()


def measure(
    fn: Callable[[], object], *, backend: TimedBackend | None = None, policy: TimingPolicy | None = None
) -> TimingStats:
    """Time ``fn`` (no arguments) with the method of this module; see ``measure_with_output``."""
    return measure_with_output(fn, backend=backend, policy=policy)[0]


# Called between rounds, outside every timed interval, with the round's index and the output
# of its last call; returns nothing. See runners.integrity for the probes that use it.
RoundHook = Callable[[int, object], None]


def measure_with_output(
    fn: Callable[[], object],
    *,
    backend: TimedBackend | None = None,
    policy: TimingPolicy | None = None,
    between_rounds: RoundHook | None = None,
    before_timed: Callable[[], None] | None = None,
    every_sample: list[float] | None = None,
) -> tuple[TimingStats, object]:
    """Time ``fn`` and also return what its last *timed* call returned.

    ``fn`` must enqueue the same work on every call; the backend (None: host only) gives
    synchronization, events and the cache size. The returned output comes from inside the
    measured loop, so the output-consistency check sees what was timed, not a re-run.
    ``between_rounds`` runs after every round, the last one included. ``before_timed`` runs once
    after the warm-up, just before the first timed round (the device process opens the judge's
    timed frame there: runners/model_suite/frames.py), and ``every_sample`` receives every sample
    of every round in the order taken, those before the reported window included.
    """
    policy = policy or TimingPolicy()
    flush = _CacheFlusher(backend) if policy.flush_cache else None

    # 1. Warm-up, and a first estimate of the time per call.
    _sync(backend)
    start = time.perf_counter()
    calls = 0
    while calls < policy.warmup_calls or time.perf_counter() - start < policy.warmup_s:
        if flush is not None:
            flush()
        fn()
        calls += 1
    _sync(backend)
    per_call = max((time.perf_counter() - start) / calls, 1e-9)

    # 2. Block size.
    number = 1 if flush is not None else max(1, math.ceil(policy.block_min_s / per_call))
    use_events = backend is not None and backend.has_timing_events()
    method = "device_events" if use_events else "host_clock"
    # A round is a few blocks between two looks at the stop rule (and one sync with events).
    round_blocks = max(1, min(policy.min_samples, math.ceil(0.02 / (per_call * number))))

    samples: list[float] = every_sample if every_sample is not None else []
    del samples[:]
    output: object = None
    measured = 0.0
    event_total = host_total = 0.0
    worst_round = math.inf
    rounds = 0
    if before_timed is not None:
        before_timed()
    wall_start = time.perf_counter()

    def stats_now(first: int = 0) -> TimingStats:
        """Statistics of ``samples[first:]``, with the clock check over every round."""
        clock = None
        if use_events:
            clock = ClockCheck(
                event_s=event_total,
                host_s=host_total,
                min_round_ratio=worst_round,
                rounds=rounds,
                bounds=policy.clock_bounds,
            )
        stats = summarize(
            samples[first:], target_rel_iqr=policy.target_rel_iqr, calls_per_sample=number, method=method
        )
        return replace(stats, clock=clock, discarded=first)

    while True:
        if use_events and backend is not None:
            new, output, event_s, host_s = _round_with_events(fn, backend, number, round_blocks, flush)
            event_total += event_s
            host_total += host_s
            worst_round = min(worst_round, event_s / host_s if host_s > 0 else math.inf)
        else:
            new, output = _round_with_clock(fn, backend, number, round_blocks, flush)
        if between_rounds is not None:
            between_rounds(rounds, output)
        rounds += 1
        samples.extend(new)
        measured += sum(new) * number
        if len(samples) >= policy.min_samples and measured >= policy.min_time_s:
            stats = stats_now(window_start(samples, number, policy))
            if not stats.unstable:
                return stats, output
        # Long calls get the time min_samples need (twice over) before the run gives up.
        budget = max(policy.max_time_s, 2 * policy.min_samples * per_call * number)
        if time.perf_counter() - wall_start >= budget or len(samples) >= policy.max_samples:
            return stats_now(), output


def window_start(samples: list[float], calls_per_sample: int, policy: TimingPolicy) -> int:
    """Index of the first sample of the window the stop rule judges (step 5).

    The window is the most recent samples that together measured at least ``policy.window_s``
    (``calls_per_sample`` calls each), and at least ``policy.min_samples`` of them; 0 (every
    sample) when ``window_s`` is None or the samples do not cover that much.
    """
    if policy.window_s is None:
        return 0
    covered = 0.0
    for index in range(len(samples) - 1, -1, -1):
        covered += samples[index] * calls_per_sample
        if covered >= policy.window_s and len(samples) - index >= policy.min_samples:
            return index
    return 0


def _round_with_clock(
    fn: Callable[[], object],
    backend: TimedBackend | None,
    number: int,
    blocks: int,
    flush: Callable[[], None] | None,
) -> tuple[list[float], object]:
    out = []
    result: object = None
    clock = time.perf_counter
    for _ in range(blocks):
        if flush is not None:
            flush()
        _sync(backend)
        t0 = clock()
        for _ in range(number):
            result = fn()
        _sync(backend)
        out.append((clock() - t0) / number)
    return out, result


def _round_with_events(
    fn: Callable[[], object],
    backend: TimedBackend,
    number: int,
    blocks: int,
    flush: Callable[[], None] | None,
) -> tuple[list[float], object, float, float]:
    """Samples, last output, and the round's chained event time and host time (seconds).

    Events are chained: ``marks[0]``, then for each block an optional mark after its flush
    and a mark after its calls, so consecutive marks tile the round with nothing left out.
    """
    result: object = None
    marks: list[TimingEvent] = []
    timed: list[tuple[int, int]] = []  # (start mark, end mark) of each block
    host_start = time.perf_counter()
    first = backend.event()
    first.record()
    marks.append(first)
    for _ in range(blocks):
        if flush is not None:
            flush()
            after_flush = backend.event()
            after_flush.record()
            marks.append(after_flush)
        begin = len(marks) - 1
        for _ in range(number):
            result = fn()
        end = backend.event()
        end.record()
        marks.append(end)
        timed.append((begin, len(marks) - 1))
    backend.synchronize()
    host_s = time.perf_counter() - host_start
    intervals = [marks[i].elapsed_ms(marks[i + 1]) / 1e3 for i in range(len(marks) - 1)]
    samples = [sum(intervals[b:e]) / number for b, e in timed]
    return samples, result, sum(intervals), host_s


def time_once(fn: Callable[[], object], backend: TimedBackend | None = None) -> float:
    """Seconds of one call, by device events where available, else synchronize + clock.

    For checks that must not repeat an input (the caching check), not for throughput
    figures: a single call carries the clock's or event's overhead in full.
    """
    if backend is not None and backend.has_timing_events():
        begin, end = backend.event(), backend.event()
        begin.record()
        fn()
        end.record()
        backend.synchronize()
        return begin.elapsed_ms(end) / 1e3
    _sync(backend)
    t0 = time.perf_counter()
    fn()
    _sync(backend)
    return time.perf_counter() - t0
