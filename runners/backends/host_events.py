"""The CPU timed through the device-events path, with honest host-clock events: for tests and bench.

Not a device and not registered with ``get_backend``: a CPU has no timing events, so its
measurements are timed by the host clock and the clock cross-check (runners/timing.py step 7)
says ``not_applicable``. ``HostEventsCpu`` switches the events path on with the base backend's
``ClockEvent`` (each record synchronizes, then reads ``time.perf_counter_ns``), so every round
goes through the same chained-event cross-check a GPU's events do, and its events are honest by
construction. What it is for:

- tests of the cross-check (tests/runners/test_timing.py, test_performance.py,
  tests/certificates/test_no_loopholes.py), and the cheating backends derived from it there;
- bench/timing_false_alarms.py and bench/clock_check.py: how often honest runs trip the
  program's ``clock_ratio_bounds`` (a false alarm) on a host without a device.

It imports torch and nothing of the platform, so the bench scripts can use it without Django.
"""

from __future__ import annotations

from runners.backends.builtin import CpuBackend


class HostEventsCpu(CpuBackend):
    """The CPU with honest 'device events': each record synchronizes and reads the host clock."""

    def has_timing_events(self) -> bool:
        return True
