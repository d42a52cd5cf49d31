"""What the device-process mode costs the serving suite: LoadGen queries/s with the model's forward in
this process against the same forward in the device process (runners/serving_engine.py), same model,
shapes, SUT and LoadGen settings, runs interleaved (in, device, device, in, ...), medians and ratio.

    python bench/serving_device_overhead.py [--rounds 5] [--duration-ms 1000]

Both processes use one torch thread (OMP_NUM_THREADS=1), so the ratio is the frames' round trips and
not a thread count. Figures are LoadGen's: Offline samples/s, SingleStream queries/s (with LoadGen's
overhead), and for the decoder its Offline tokens/s; first, one sample's forward called directly
(the frames' round trip alone). The load average is printed with them.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from runners.device.client import DeviceClient  # noqa: E402
from runners.model_suite import DTYPES, default_models  # noqa: E402
from runners.model_suite.workloads import workload_for  # noqa: E402
from runners.models import ModelSpec, load_model  # noqa: E402
from runners.models.seeded import seeded_model_entry  # noqa: E402
from runners.serving.loadgen_run import ScenarioSettings, run_test  # noqa: E402
from runners.serving.sut import BatchingSUT, ContinuousDecoderSUT  # noqa: E402
from runners.serving_engine import ServingEngine  # noqa: E402

CHALLENGE = "5e" * 32
BERT = {
    "vocab_size": 512,
    "hidden_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "intermediate_size": 128,
    "max_position_embeddings": 64,
}


def run(engine, decoder: bool, size: int, scenario: str, duration_ms: int, expected_qps: float, log: Path):
    sut = (ContinuousDecoderSUT if decoder else BatchingSUT)(
        engine, max_batch=1 if scenario == "SingleStream" else 8
    )
    try:
        result = run_test(
            sut,
            sample_count=size,
            scenario=scenario,
            mode="performance",
            settings=ScenarioSettings(
                min_duration_ms=duration_ms, min_query_count=64 if scenario == "SingleStream" else 1
            ),
            log_dir=log,
            expected_latency_s=1 / expected_qps,
            expected_qps=expected_qps,
            token_latencies=decoder,
        )
    finally:
        sut.close()
    if sut.error is not None:
        raise sut.error
    if scenario == "SingleStream":
        return float(result.value("result_qps_with_loadgen_overhead")), None
    tokens = result.value("result_tokens_per_second") if decoder else None
    return float(result.value("result_samples_per_second")), tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration-ms", type=int, default=1000)
    args = parser.parse_args()
    torch.set_num_threads(1)
    scratch = Path(tempfile.mkdtemp(prefix="overhead-"))
    llama = next(m for m in default_models() if m["architecture"] == "llama-decoder")
    bert = seeded_model_entry("bench-bert", "bert-encoder", BERT, seed=0, directory=scratch / "weights")
    client = DeviceClient("cpu")
    try:
        for entry in (bert, llama):
            loaded = load_model(ModelSpec.from_dict(entry))
            workload = workload_for(loaded, CHALLENGE, quick=False)
            decoder = workload.kind == "decoder"
            dtype = DTYPES["float32"]
            inputs = workload.make_batch(range(workload.size), torch.device("cpu"), dtype)
            module = loaded.place(torch.device("cpu"), dtype, free_bytes=None)
            local = ServingEngine(module, module, inputs, decoder=decoder, output_tokens=8)
            remote, _meter = client.serving_open(
                entry, "float32", inputs, decoder=decoder, output_tokens=8, energy_rate_hz=10
            )
            if not decoder:  # one sample's forward called directly: the frames' round trip alone
                calls: dict[str, list[float]] = {"in_process": [], "device_process": []}
                for n in range(6):
                    order = (
                        ("in_process", "device_process") if n % 2 == 0 else ("device_process", "in_process")
                    )
                    for mode in order:
                        engine = local if mode == "in_process" else remote
                        times = []
                        for _ in range(100):
                            began = time.perf_counter()
                            engine.forward_rows([0])
                            times.append(time.perf_counter() - began)
                        calls[mode].append(statistics.median(times))
                a, b = statistics.median(calls["in_process"]), statistics.median(calls["device_process"])
                print(
                    f"{loaded.spec.name:<20} one-sample forward: in-process {a * 1e6:.0f} us, device-process "
                    f"{b * 1e6:.0f} us, round trip +{(b - a) * 1e6:.0f} us (load {os.getloadavg()[0]:.2f})",
                    flush=True,
                )
            for scenario in ("SingleStream", "Offline"):
                # LoadGen's hint, the same for both modes (so the same query sizes): one short warm-up run.
                hint, _ = run(local, decoder, workload.size, scenario, 300, 50.0, scratch / "warm")
                figures = {"in_process": [], "device_process": []}
                tokens = {"in_process": [], "device_process": []}
                for n in range(args.rounds):
                    order = (
                        ("in_process", "device_process") if n % 2 == 0 else ("device_process", "in_process")
                    )
                    for mode in order:
                        engine = local if mode == "in_process" else remote
                        qps, tps = run(
                            engine,
                            decoder,
                            workload.size,
                            scenario,
                            args.duration_ms,
                            hint,
                            scratch / f"{mode}-{n}",
                        )
                        figures[mode].append(qps)
                        if tps is not None:
                            tokens[mode].append(float(tps))
                a, b = statistics.median(figures["in_process"]), statistics.median(figures["device_process"])
                unit = "queries/s" if scenario == "SingleStream" else "samples/s"
                line = (
                    f"{loaded.spec.name:<20} {scenario:<12} in-process {a:9.1f} {unit}  device-process "
                    f"{b:9.1f}  ratio {b / a:.3f}  (medians of {args.rounds}; load {os.getloadavg()[0]:.2f})"
                )
                if tokens["in_process"]:
                    ta, tb = (
                        statistics.median(tokens["in_process"]),
                        statistics.median(tokens["device_process"]),
                    )
                    line += f"  tokens/s {ta:.1f} vs {tb:.1f}"
                print(line, flush=True)
            remote.close()
    finally:
        client.close()
    print(f"finished {time.strftime('%H:%M:%S')}, load average {os.getloadavg()}")


if __name__ == "__main__":
    main()
