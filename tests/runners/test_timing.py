"""The timing method: statistics, stop rule, events path, cache flush."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest
import torch

from runners.backends.base import ClockEvent, TimingEvent
from runners.backends.builtin import CpuBackend
from runners.timing import (
    TimingPolicy,
    measure,
    measure_with_output,
    median_confidence_ranks,
    summarize,
    time_once,
)


def busy(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def test_summary_statistics_of_known_samples() -> None:
    stats = summarize([float(x) for x in range(1, 101)])
    assert stats.median == pytest.approx(50.5)
    assert stats.p90 == pytest.approx(90.1)
    assert stats.p99 == pytest.approx(99.01)
    assert stats.iqr == pytest.approx(49.5)
    assert stats.n == 100
    assert stats.ci_low < stats.median < stats.ci_high
    assert stats.cv == pytest.approx(torch.arange(1, 101.0).std().item() / 50.5)


def test_median_interval_widens_with_fewer_samples() -> None:
    lo_small, hi_small = median_confidence_ranks(10)
    lo_big, hi_big = median_confidence_ranks(1000)
    assert (hi_small - lo_small) / 10 > (hi_big - lo_big) / 1000
    assert median_confidence_ranks(1) == (0, 0)


def test_it_flags_high_variation_as_unstable() -> None:
    assert summarize([1.0, 1.0, 5.0, 9.0], target_rel_iqr=0.05).unstable
    assert not summarize([1.0, 1.0, 1.001, 1.0], target_rel_iqr=0.05).unstable


def test_it_measures_a_known_duration() -> None:
    stats = measure(lambda: busy(0.002), policy=TimingPolicy.quick())
    assert stats.median == pytest.approx(0.002, rel=0.5)
    assert stats.method == "host_clock"
    assert stats.n >= TimingPolicy.quick().min_samples


def test_short_calls_are_grouped_in_blocks() -> None:
    stats = measure(lambda: None, policy=TimingPolicy.quick())
    assert stats.calls_per_sample > 1


def test_it_stops_at_max_time_when_the_target_is_unreachable() -> None:
    policy = TimingPolicy(min_time_s=0.01, max_time_s=0.05, target_rel_iqr=0.0, warmup_s=0.0)
    start = time.perf_counter()
    stats = measure(lambda: busy(0.0005), policy=policy)
    assert time.perf_counter() - start < 1.0
    assert stats.unstable


class FakeEvent:
    """Device events on a fake timeline: every fn() call advances it by 1 ms."""

    clock = 0.0

    def record(self) -> None:
        self.at = FakeEvent.clock

    def elapsed_ms(self, end: FakeEvent) -> float:
        return (end.at - self.at) * 1e3


class EventBackend:
    syncs = 0

    def synchronize(self) -> None:
        self.syncs += 1

    def has_timing_events(self) -> bool:
        return True

    def event(self) -> FakeEvent:
        return FakeEvent()

    def device(self, index: int = 0) -> torch.device:
        return torch.device("cpu")

    def last_level_cache_bytes(self) -> int | None:
        return 1 << 20


def test_it_uses_device_events_where_the_backend_has_them() -> None:
    def kernel() -> str:
        FakeEvent.clock += 1e-3
        busy(1e-4)  # host time is not what is reported
        return "out"

    backend = EventBackend()
    stats, output = measure_with_output(kernel, backend=backend, policy=TimingPolicy.quick())
    assert stats.method == "device_events"
    assert stats.median == pytest.approx(1e-3)
    assert output == "out"
    assert time_once(kernel, backend) == pytest.approx(1e-3)


def test_cache_flush_times_every_call_on_its_own() -> None:
    policy = TimingPolicy(flush_cache=True, min_time_s=0.005, max_time_s=0.2, warmup_s=0.0)
    stats = measure(lambda: busy(2e-4), backend=EventBackendWithClock(), policy=policy)
    assert stats.calls_per_sample == 1


class EventBackendWithClock(EventBackend):
    def has_timing_events(self) -> bool:
        return False


def test_policy_from_spec() -> None:
    assert TimingPolicy.from_dict({"quick": True, "min_time_s": 0.5}).min_time_s == 0.5
    assert TimingPolicy.from_dict({"quick": True}).max_time_s == TimingPolicy.quick().max_time_s
    assert TimingPolicy.from_dict(None) == TimingPolicy()


class HostEventsCpu(CpuBackend):
    """The CPU with 'device events' that are honest host-clock events (record = sync + clock)."""

    def has_timing_events(self) -> bool:
        return True


class UnderReportingEvent(ClockEvent):
    """An event pair that reports a twelfth of the time that really passed between them."""

    def elapsed_ms(self, end: TimingEvent) -> float:
        return super().elapsed_ms(end) / 12


class UnderReportingCpu(HostEventsCpu):
    def event(self) -> TimingEvent:
        return UnderReportingEvent(self)


# The clock bounds a platform job spec carries (the program level's clock_ratio_bounds).
BOUNDED = replace(TimingPolicy.quick(), clock_ratio_min=0.5, clock_ratio_max=1.05)


def test_honest_events_agree_with_the_host_clock() -> None:
    stats = measure(lambda: busy(5e-4), backend=HostEventsCpu(), policy=BOUNDED)
    assert stats.method == "device_events"
    assert stats.clock is not None and stats.clock.agrees
    assert 0.9 <= stats.clock.ratio <= 1.0 + 1e-6
    assert stats.clock.rounds >= 1
    assert not stats.clock_disagrees


def test_events_that_under_report_time_disagree_with_the_host_clock() -> None:
    stats = measure(lambda: busy(5e-4), backend=UnderReportingCpu(), policy=BOUNDED)
    assert stats.clock_disagrees
    assert stats.clock.ratio == pytest.approx(1 / 12, rel=0.2)
    assert stats.median == pytest.approx(5e-4 / 12, rel=0.5)  # what the events claimed


def test_the_clock_bounds_come_from_the_policy() -> None:
    lenient = TimingPolicy.from_dict({"quick": True, "clock_ratio_min": 0.01, "clock_ratio_max": 1.05})
    assert not measure(lambda: busy(5e-4), backend=UnderReportingCpu(), policy=lenient).clock_disagrees


def test_without_the_programs_bounds_the_runner_reports_the_raw_ratio_and_refuses_nothing() -> None:
    stats = measure(lambda: busy(5e-4), backend=UnderReportingCpu(), policy=TimingPolicy.quick())
    assert stats.clock is not None and stats.clock.bounds is None and stats.clock.agrees is None
    assert not stats.clock_disagrees
    assert stats.clock.ratio == pytest.approx(1 / 12, rel=0.2)  # the platform judges this figure


def test_host_clock_measurements_have_no_cross_check() -> None:
    assert measure(lambda: busy(5e-4), policy=TimingPolicy.quick()).clock is None


def test_significant_digits_follow_the_confidence_interval() -> None:
    tight = summarize([1.0, 1.0001, 0.9999, 1.0, 1.0002, 0.9998, 1.0] * 10)
    loose = summarize([1.0, 1.5, 0.6, 1.2, 0.8, 1.4, 0.7])
    assert tight.significant_digits == 4  # capped, as torch.utils.benchmark caps it
    assert loose.significant_digits == 1
    mid = summarize([1.0 + 0.005 * (i % 5 - 2) for i in range(40)])  # CI half-width 0.005
    assert mid.significant_digits == 2


def test_round_hooks_run_between_rounds_with_the_rounds_output() -> None:
    seen: list[tuple[int, object]] = []
    measure_with_output(
        lambda: "out", policy=TimingPolicy.quick(), between_rounds=lambda i, o: seen.append((i, o))
    )
    assert seen and [i for i, _ in seen] == list(range(len(seen)))
    assert all(o == "out" for _, o in seen)
