"""One MLPerf LoadGen test: settings in, LoadGen's own verdict and figures out, its logs digested.

The scenarios, the query schedule (Poisson arrivals in Server), early stopping and the VALID /
INVALID decision are LoadGen's (`mlperf_loadgen`, the MLCommons package); this module only builds
its TestSettings from the program's settings, runs the test, and reads back what LoadGen wrote in
``mlperf_log_detail.txt`` (one ``:::MLLOG`` JSON record per line) and ``mlperf_log_summary.txt``.
Both files' sha256 go into the document; the summary text goes in whole (it is short).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mlperf_loadgen as lg

SCENARIOS = {
    "SingleStream": lg.TestScenario.SingleStream,
    "MultiStream": lg.TestScenario.MultiStream,
    "Server": lg.TestScenario.Server,
    "Offline": lg.TestScenario.Offline,
}
MODES = {"performance": lg.TestMode.PerformanceOnly, "accuracy": lg.TestMode.AccuracyOnly}
SUMMARY_FILE, DETAIL_FILE = "mlperf_log_summary.txt", "mlperf_log_detail.txt"
_MLLOG = ":::MLLOG "
_PERCENTILE_KEY = re.compile(r"^result_(?:(first_token)_)?(\d+\.\d+)_percentile_latency_ns$")
_TPOT_KEY = re.compile(r"^result_time_per_output_token_(\d+\.\d+)_percentile_ns$")


@dataclass(frozen=True)
class ScenarioSettings:
    """What the program (or an exploration override) asks of one scenario; times in ms as LoadGen's."""

    min_duration_ms: int
    min_query_count: int
    percentile: float | None = None  # target latency percentile (SingleStream 0.9, MultiStream 0.99, Server)
    latency_bound_ms: float | None = None  # Server's target latency
    samples_per_query: int = 8  # MultiStream
    ttft_ms: float | None = None  # token-latency mode (decoders): Server's bounds
    tpot_ms: float | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ScenarioSettings:
        known = {k: data[k] for k in cls.__dataclass_fields__ if data.get(k) is not None}
        settings = cls(**known)
        if settings.min_duration_ms < 0 or settings.min_query_count < 1:
            raise ValueError(f"bad scenario settings {data!r}")
        if settings.percentile is not None and not 0 < settings.percentile < 1:
            raise ValueError(f"percentile {settings.percentile} is not in (0, 1)")
        return settings


@dataclass
class LoadGenResult:
    scenario: str
    mode: str
    valid: bool | None  # None in accuracy mode (LoadGen judges performance only)
    records: dict[str, Any]  # the detail log's last value per key
    summary_text: str
    summary_sha256: str
    detail_sha256: str
    log_dir: str
    requested: dict[str, Any] = field(default_factory=dict)

    def value(self, key: str) -> Any:
        return self.records.get(key)

    @property
    def early_stopping(self) -> dict[str, Any]:
        return {
            "met": self.records.get("early_stopping_met"),
            "text": " ".join(str(self.records.get("early_stopping_result") or "").split()) or None,
        }

    def percentiles(self, prefix: str = "") -> dict[str, float]:
        """Latency percentiles in seconds: prefix "" (query), "first_token", or "tpot"."""
        out: dict[str, float] = {}
        for key, value in self.records.items():
            if not isinstance(value, int | float):
                continue
            if prefix == "tpot":
                match = _TPOT_KEY.match(key)
                if match:
                    out[match.group(1)] = value / 1e9
                continue
            match = _PERCENTILE_KEY.match(key)
            if match and (match.group(1) or "") == prefix:
                out[match.group(2)] = value / 1e9
        return dict(sorted(out.items(), key=lambda kv: float(kv[0])))

    def to_dict(self) -> dict[str, Any]:
        keep = (
            "result_validity",
            "result_invalid_reason",
            "result_min_duration_met",
            "result_min_queries_met",
            "result_perf_constraints_met",
            "early_stopping_met",
            "result_query_count",
            "result_overlatency_query_count",
            "result_scheduled_samples_per_sec",
            "result_completed_samples_per_sec",
            "result_samples_per_second",
            "result_qps_with_loadgen_overhead",
            "result_qps_without_loadgen_overhead",
            "result_completed_tokens_per_second",
            "result_token_throughput",
            "result_tokens_per_second",
            "result_mean_latency_ns",
            "result_max_latency_ns",
            "effective_min_duration_ms",
            "effective_min_query_count",
            "effective_target_latency_ns",
            "effective_target_latency_percentile",
            "effective_target_qps",
            "effective_samples_per_query",
            "effective_scenario",
            "effective_test_mode",
            "loadgen_version",
        )
        return {
            "scenario": self.scenario,
            "mode": self.mode,
            "result_valid": self.valid,
            "early_stopping": self.early_stopping,
            "loadgen": {key: self.records[key] for key in keep if key in self.records},
            "latency_percentiles_s": self.percentiles(),
            "summary_sha256": self.summary_sha256,
            "detail_sha256": self.detail_sha256,
            "summary_text": self.summary_text,
            "requested": self.requested,
        }


def parse_detail(text: str) -> dict[str, Any]:
    """The last value of every key of an ``mlperf_log_detail.txt`` (lines ``:::MLLOG {json}``)."""
    records: dict[str, Any] = {}
    for line in text.splitlines():
        if not line.startswith(_MLLOG):
            continue
        try:
            entry = json.loads(line[len(_MLLOG) :])
        except json.JSONDecodeError:
            continue
        if isinstance(entry, dict) and isinstance(entry.get("key"), str):
            records[entry["key"]] = entry.get("value")
    return records


def loadgen_settings(
    scenario: str,
    mode: str,
    settings: ScenarioSettings,
    *,
    expected_latency_s: float,
    expected_qps: float,
    target_qps: float | None,
    token_latencies: bool,
    seed: int,
) -> lg.TestSettings:
    s = lg.TestSettings()
    s.scenario = SCENARIOS[scenario]
    s.mode = MODES[mode]
    s.min_duration_ms = int(settings.min_duration_ms)
    s.min_query_count = int(settings.min_query_count)
    # The schedule and sample choice derive from the job's challenge, so nothing is known in advance.
    s.qsl_rng_seed = seed & 0xFFFFFFFF
    s.sample_index_rng_seed = (seed >> 32) & 0xFFFFFFFF
    s.schedule_rng_seed = (seed >> 64) & 0xFFFFFFFF
    expected_ns = max(int(expected_latency_s * 1e9), 1000)
    if scenario == "SingleStream":
        s.single_stream_expected_latency_ns = expected_ns
        if settings.percentile is not None:
            s.single_stream_target_latency_percentile = settings.percentile
    elif scenario == "MultiStream":
        s.multi_stream_samples_per_query = int(settings.samples_per_query)
        s.multi_stream_expected_latency_ns = expected_ns
        if settings.percentile is not None:
            s.multi_stream_target_latency_percentile = settings.percentile
    elif scenario == "Server":
        s.server_target_qps = float(target_qps or expected_qps)
        if settings.latency_bound_ms is not None:
            s.server_target_latency_ns = int(settings.latency_bound_ms * 1e6)
        if settings.percentile is not None:
            s.server_target_latency_percentile = settings.percentile
    else:
        s.offline_expected_qps = max(float(expected_qps), 1.0)
    if token_latencies:
        s.use_token_latencies = True
        if settings.ttft_ms is not None:
            s.ttft_latency = int(settings.ttft_ms * 1e6)
        if settings.tpot_ms is not None:
            s.tpot_latency = int(settings.tpot_ms * 1e6)
    return s


def run_test(
    sut: Any,
    *,
    sample_count: int,
    scenario: str,
    mode: str,
    settings: ScenarioSettings,
    log_dir: Path,
    expected_latency_s: float,
    expected_qps: float,
    target_qps: float | None = None,
    token_latencies: bool = False,
    seed: int = 0,
) -> LoadGenResult:
    """Run one LoadGen test against ``sut`` (an object with ``issue(samples)`` and ``flush()``)."""
    log_dir.mkdir(parents=True, exist_ok=True)
    ts = loadgen_settings(
        scenario,
        mode,
        settings,
        expected_latency_s=expected_latency_s,
        expected_qps=expected_qps,
        target_qps=target_qps,
        token_latencies=token_latencies,
        seed=seed,
    )
    output = lg.LogOutputSettings()
    output.outdir = str(log_dir)
    output.copy_summary_to_stdout = False
    log_settings = lg.LogSettings()
    log_settings.log_output = output
    log_settings.enable_trace = False
    handle = lg.ConstructSUT(sut.issue, sut.flush)
    qsl = lg.ConstructQSL(sample_count, sample_count, lambda _samples: None, lambda _samples: None)
    try:
        lg.StartTestWithLogSettings(handle, qsl, ts, log_settings)
    finally:
        lg.DestroyQSL(qsl)
        lg.DestroySUT(handle)
    summary = (log_dir / SUMMARY_FILE).read_bytes()
    detail = (log_dir / DETAIL_FILE).read_bytes()
    records = parse_detail(detail.decode("utf-8", "replace"))
    validity = records.get("result_validity")
    return LoadGenResult(
        scenario=scenario,
        mode=mode,
        valid=None if mode == "accuracy" else validity == "VALID",
        records=records,
        summary_text=summary.decode("utf-8", "replace"),
        summary_sha256=hashlib.sha256(summary).hexdigest(),
        detail_sha256=hashlib.sha256(detail).hexdigest(),
        log_dir=str(log_dir),
        requested={
            "min_duration_ms": settings.min_duration_ms,
            "min_query_count": settings.min_query_count,
            "percentile": settings.percentile,
            "latency_bound_ms": settings.latency_bound_ms if scenario == "Server" else None,
            "samples_per_query": settings.samples_per_query if scenario == "MultiStream" else 1,
            "target_qps": target_qps if scenario == "Server" else None,
            "expected_qps": expected_qps if scenario == "Offline" else None,
            "ttft_ms": settings.ttft_ms if token_latencies else None,
            "tpot_ms": settings.tpot_ms if token_latencies else None,
            "token_latencies": token_latencies,
        },
    )
