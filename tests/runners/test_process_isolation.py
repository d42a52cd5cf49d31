"""Issue 13: the vendor's code runs apart from the judge and the key.

A real out-of-tree backend plugin (tests/plugins/hostile_backend, found through the platform's
entry point) tries, from the device process, to (a) rewrite the verdict code, (b) read the runner's
signing key and (c) computes GELU with the tanh approximation. The judge here is a separate
interpreter started as a runner host starts its worker (RUNNER_NAME, RUNNER_KEY_FILE), running
``runners.worker.run_job``; the tests read its signed envelope and the plugin's own report.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest
import torch

from runners.backends import ENTRY_POINT_GROUP
from runners.device.protocol import DTYPES, ProtocolError, read_frame, write_frame
from runners.device.sandbox import Confinement, landlock_abi, scrubbed_environment
from runners.signing import keygen, verify_signature

ROOT = Path(__file__).resolve().parents[2]
PLUGIN = ROOT / "tests" / "plugins" / "hostile_backend"
CHALLENGE = "5eed" * 16


def install_plugin(site: Path) -> None:
    """The plugin's dist-info, generated from its pyproject.toml, in a directory put on PYTHONPATH:
    an installed distribution as importlib.metadata sees one, without pip and without network."""
    project = tomllib.loads((PLUGIN / "pyproject.toml").read_text())["project"]
    dist_info = site / f"{project['name'].replace('-', '_')}-{project['version']}.dist-info"
    dist_info.mkdir(parents=True)
    (dist_info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n"
    )
    lines = [
        f"[{group}]\n" + "".join(f"{k} = {v}\n" for k, v in eps.items())
        for group, eps in project["entry-points"].items()
    ]
    (dist_info / "entry_points.txt").write_text("\n".join(lines))
    assert ENTRY_POINT_GROUP in project["entry-points"]


def plugin_environment(tmp: Path) -> dict[str, str]:
    site = tmp / "site"
    install_plugin(site)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(site), str(PLUGIN)])
    env["HOSTILE_PROBE_DIR"] = str(tmp / "probe")
    (tmp / "probe").mkdir()
    return env


def run_control(script: str, *args: str, env: dict[str, str]) -> dict:
    """Runs a control script (the plugin loaded in-process) with this interpreter; its last stdout line."""
    result = subprocess.run(  # noqa: S603 - our interpreter, our script
        [sys.executable, "-c", script, *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


JUDGE = textwrap.dedent(
    """
    import json, sys
    from runners.signing import RunnerIdentity
    from runners.spec import build_spec
    from runners.worker import run_job
    import runners.conformance as conformance, runners.document as document

    compare, summarize = conformance.compare, document.summarize
    spec = build_spec(suite="conformance", device="hostile", challenge=sys.argv[1], kernels=["gelu_erf"])
    failures = []
    envelope = run_job(spec, identity=RunnerIdentity.from_env(), report=lambda n, m: failures.append(n))
    print(json.dumps({
        "envelope": envelope,
        "failures": [f for f in failures if f != "runs.job_progress"],
        "judge_patched": conformance.compare is not compare or document.summarize is not summarize,
        "judge_loaded_plugin": "hostile_backend" in sys.modules,
    }))
    """
)


@pytest.fixture(scope="module")
def judged(tmp_path_factory) -> dict:
    """One job of the hostile chip through the worker's code path, judge in its own interpreter."""
    tmp = tmp_path_factory.mktemp("hostile")
    keys = tmp / "keys"
    key_file = keys / "runner.pem"
    keygen(key_file, keys / "runner.pub.pem")
    env = plugin_environment(tmp)
    (tmp / "probe" / "guesses.txt").write_text(f"{key_file}\n")  # the vendor knows where keys live
    env.update(RUNNER_NAME="hostile-host", RUNNER_KEY_FILE=str(key_file))
    result = subprocess.run(  # noqa: S603 - our interpreter, our script
        [sys.executable, "-c", JUDGE, CHALLENGE],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    reports = [json.loads(p.read_text()) for p in sorted((tmp / "probe").glob("report-*.json"))]
    envelope = out["envelope"]
    assert envelope is not None, (out, result.stderr[-3000:])
    return {
        **out,
        "document": json.loads(envelope["document_json"]),
        "reports": reports,
        "key_file": key_file,
        "public_pem": (keys / "runner.pub.pem").read_text(),
    }


@pytest.mark.slow
def test_the_plugin_ran_in_the_device_process_only(judged):
    isolation = judged["document"]["process_isolation"]
    assert isolation["mode"] == "child_process" and isolation["verdicts_in"] == "judge"
    assert "hostile_backend" in isolation["device"]["packages"]
    assert "hostile_backend" not in isolation["judge"]["packages"]
    assert not judged["judge_loaded_plugin"]
    assert judged["reports"], "the plugin never ran"
    assert {r["key_hunt"]["parent"] for r in judged["reports"]} == {isolation["judge"]["pid"]}


def test_a_plugin_patching_the_verdict_code_changes_nothing(judged):
    # (a): the plugin did patch runners.conformance and runners.document, in its own process.
    assert all("runners.conformance.compare" in r["patched"] for r in judged["reports"])
    assert not judged["judge_patched"]
    document = judged["document"]
    failed = [c for c in document["cases"] if c["status"] == "fail"]
    assert failed and all(c["stats"]["mismatches"] > 0 for c in failed)
    assert document["summary"]["failed"] == len(failed)


def test_gelu_computed_with_tanh_is_caught(judged):
    # (c): the tanh approximation is off by up to ~5e-4 relative: outside float32's and float16's tolerances.
    document = judged["document"]
    failed = {(c["dtype"], c["case"]) for c in document["cases"] if c["status"] == "fail"}
    assert {dtype for dtype, _ in failed} >= {"float32", "float16"}
    assert len(failed) >= 10
    assert all(c["kernel"] == "gelu_erf" for c in document["cases"])


def test_the_plugin_cannot_reach_the_signing_key(judged):
    # (b): nothing names the key in the device process's environment, the judge's /proc is closed
    # to it, and where Landlock exists the key file cannot be opened even by its known path.
    document = judged["document"]
    protections = document["process_isolation"]["protections"]
    for report in judged["reports"]:
        hunt = report["key_hunt"]
        assert hunt["env_names"] == []
        assert not hunt["parent_environ"].get("has_private_key")
        if hunt["parent_environ"]["readable"] and hunt["parent_environ"]["mentions_key_file"]:
            # The judge's environment names the key file where the kernel lets a root child read a
            # non-dumpable parent's environ (runners/device/sandbox.py, item 3): the path leaks,
            # so the file itself must be shielded.
            assert protections["landlock"] or protections["device_user"], protections
        assert hunt["parent_mem"] != "opened"
        assert not any(fd.get("has_private_key") for fd in hunt["parent_fds"])
        assert not any(fd.get("target", "").endswith("runner.pem") for fd in hunt["parent_fds"])
        assert not any(target.endswith(".pem") for target in hunt["own_fds"]), hunt["own_fds"]
        guess = hunt["guesses"][0]
        assert guess["path"] == str(judged["key_file"])
        if protections["landlock"]:
            assert guess["readable"] is False, guess
        else:  # the document says the key file was not shielded, and why
            assert protections["landlock_reason"]
    assert protections["environment_scrubbed"] and protections["judge_undumpable"]
    assert landlock_abi() == 0 or protections["landlock"], protections


def test_the_signed_document_verifies_with_the_runner_key_only(judged):
    envelope = judged["envelope"]
    payload = envelope["document_json"].encode()
    assert verify_signature(judged["public_pem"], payload, envelope["signature"])
    assert judged["failures"] == []


IN_PROCESS = textwrap.dedent(
    """
    import json, sys
    from runners.backends import get_backend
    from runners.conformance import run_conformance
    from runners.spec import build_spec

    spec = build_spec(suite="conformance", device="hostile", challenge=sys.argv[1], kernels=["gelu_erf"],
                      dtypes=["float32"])
    document = run_conformance(spec, get_backend("hostile"))
    print(json.dumps(document["summary"]))
    """
)


@pytest.mark.slow
def test_without_the_device_process_the_same_plugin_would_rewrite_the_verdicts(tmp_path):
    """The control: loaded into the judge (a library call, no device process), the plugin wins."""
    env = plugin_environment(tmp_path)
    summary = run_control(IN_PROCESS, CHALLENGE, env=env)
    assert summary["failed"] == 0 and summary["passed"] == summary["total"] > 0


@pytest.mark.slow
def test_a_device_process_that_dies_fails_that_case_and_the_next_runs(tmp_path, monkeypatch):
    from runners.conformance import run_conformance
    from runners.device.client import DeviceClient
    from runners.spec import build_spec

    env = plugin_environment(tmp_path)
    (tmp_path / "probe" / "config.json").write_text(json.dumps({"exit_on_kernel": "gelu_erf"}))
    for name in ("PYTHONPATH", "HOSTILE_PROBE_DIR"):
        monkeypatch.setenv(name, env[name])
    spec = build_spec(
        suite="conformance",
        device="hostile",
        challenge=CHALLENGE,
        kernels=["gelu_erf", "silu"],
        dtypes=["float32"],
        cases=["odd_sizes"],
    )
    with DeviceClient("hostile") as device:
        document = run_conformance(spec, device)
    records = {c["kernel"]: c for c in document["cases"]}
    assert records["gelu_erf"]["status"] == "error"
    assert records["gelu_erf"]["code"] == "product_failure"
    assert "exit code 9" in records["gelu_erf"]["message"]
    assert records["silu"]["status"] == "pass"
    assert document["process_isolation"]["device"]["restarts"] == 1


@pytest.mark.slow
def test_heartbeat_fingerprints_come_from_a_device_process(tmp_path, monkeypatch):
    """The worker's heartbeat lists the plugin's backend without importing the plugin itself."""
    from runners import worker

    env = plugin_environment(tmp_path)
    for name in ("PYTHONPATH", "HOSTILE_PROBE_DIR"):
        monkeypatch.setenv(name, env[name])
    monkeypatch.setattr(worker, "_fingerprints_cache", None)
    fingerprints = worker._device_fingerprints()
    assert {"cpu", "hostile"} <= {f["backend"] for f in fingerprints}
    assert "hostile_backend" not in sys.modules
    assert worker._device_fingerprints() is fingerprints  # cached: no device process per heartbeat


PERF_OPTIONS = {
    "quick": True,
    "performance": {"dtypes": ["float32"], "kinds": ["gemm"], "gemm_sizes": [128], "max_call_s": 60},
}


def _performance(device_name: str) -> dict:
    from runners.device.client import DeviceClient
    from runners.performance import run_performance
    from runners.spec import build_spec

    spec = build_spec(suite="performance", device=device_name, challenge=CHALLENGE, options=PERF_OPTIONS)
    with DeviceClient(device_name) as device:
        return run_performance(spec, device)


@pytest.mark.slow
def test_performance_test01_is_judged_by_the_judge_from_the_returned_outputs(tmp_path, monkeypatch):
    """The plugin's GEMM is 1% off and it patches the suite's TEST01 verdict to pass in its process:
    the judge rebuilds the benchmark, computes its own float64 reference and fails it."""
    env = plugin_environment(tmp_path)
    (tmp_path / "probe" / "config.json").write_text(json.dumps({"skew_matmul": 1.01}))
    for name in ("PYTHONPATH", "HOSTILE_PROBE_DIR"):
        monkeypatch.setenv(name, env[name])
    document = _performance("hostile")
    consistency = document["integrity"]["output_consistency"]
    assert consistency["verdict"] == "fail"
    assert consistency["items"][0]["reference_failures"] == ["matmul perf_128:float32"]
    isolation = document["process_isolation"]
    assert isolation["verdicts_in"] == "judge" and "hostile_backend" in isolation["device"]["packages"]
    report = json.loads(next((tmp_path / "probe").glob("report-*.json")).read_text())
    assert "runners.performance._consistency" in report["patched"] and report["matmul"] == "x1.01"


@pytest.mark.slow
def test_an_honest_device_passes_test01_judged_by_the_judge():
    from runners.document import validate_document

    document = _performance("cpu")
    validate_document(document)
    assert document["integrity"]["output_consistency"]["verdict"] == "pass"
    assert document["measurements"] and document["process_isolation"]["mode"] == "child_process"
    # TEST04 judged by the judge from what came back: outputs clean; no bar in this spec, so the
    # timing figures are reported for the platform (not_judged), never failed.
    [caching] = document["integrity"]["caching"]["items"]
    assert caching["verdict"] == "not_judged", caching
    assert caching["fresh_outputs_checked"] == 8 and caching["fresh_output_mismatches"] == 0
    assert caching["fresh_reference_checked"] == 2 and caching["fresh_reference_failures"] == 0
    assert document["process_isolation"]["device_verdicts"] == ["integrity.timing (clock cross-check)"]
    frames = caching["host_frames"]
    assert frames["checked"] >= 8 + 3 * 4 and frames["refused"] == 0 and frames["max_call_ratio"] <= 1.0


def _hostile_caching(tmp_path: Path, monkeypatch, memo: str) -> tuple[dict, dict]:
    env = plugin_environment(tmp_path)
    (tmp_path / "probe" / "config.json").write_text(json.dumps({"memo_matmul": memo}))
    for name in ("PYTHONPATH", "HOSTILE_PROBE_DIR"):
        monkeypatch.setenv(name, env[name])
    document = _performance("hostile")
    report = json.loads(next((tmp_path / "probe").glob("report-*.json")).read_text())
    return document, report


@pytest.mark.slow
def test_a_plugin_memoizing_gemm_by_buffer_and_forging_test04_fails_it_in_the_judge(tmp_path, monkeypatch):
    """The plugin's GEMM caches its result per operand buffer (the probe's refilled buffers get the
    repeated input's answer) and, in its process, makes every fresh output "equal" to its output apart
    and every probe "pass": the judge compares the returned fresh outputs itself and fails TEST04."""
    from runners.document import validate_document

    document, report = _hostile_caching(tmp_path, monkeypatch, "buffer")
    validate_document(document)
    assert report["matmul"] == "memoized by buffer"
    assert {"runners.integrity._same_output", "runners.integrity.judge_caching"} <= set(report["patched"])
    integrity = document["integrity"]
    assert integrity["output_consistency"]["verdict"] == "pass"  # its answers on its own input are right
    [caching] = integrity["caching"]["items"]
    assert integrity["caching"]["verdict"] == caching["verdict"] == "fail", caching
    assert caching["fresh_output_mismatches"] == caching["fresh_outputs_checked"] == 8
    assert caching["fresh_outputs_stale"] == 8
    assert "fresh calls returned an output other than" in caching["reason"]
    assert_caching_judged_apart(document)


@pytest.mark.slow
def test_a_plugin_memoizing_gemm_by_shape_is_caught_by_the_judges_reference_of_fresh_inputs(
    tmp_path, monkeypatch
):
    """A cache keyed on shapes alone answers the fresh values with the first result timed and apart
    alike, so the device's outputs agree with each other: the judge's float64 reference of the fresh
    values (a challenge-drawn two of the eight) is what fails it."""
    from runners.document import validate_document

    document, report = _hostile_caching(tmp_path, monkeypatch, "shape")
    validate_document(document)
    assert report["matmul"] == "memoized by shape"
    [caching] = document["integrity"]["caching"]["items"]
    assert document["integrity"]["caching"]["verdict"] == caching["verdict"] == "fail", caching
    assert caching["fresh_output_mismatches"] == 0  # stale apart too: the outputs agree
    assert caching["fresh_reference_failures"] == caching["fresh_reference_checked"] == 2
    assert "float64 reference" in caching["reason"]
    assert document["integrity"]["output_consistency"]["verdict"] == "pass"


IN_PROCESS_PERFORMANCE = textwrap.dedent(
    """
    import json, sys
    from runners.backends import get_backend
    from runners.performance import run_performance
    from runners.spec import build_spec

    spec = build_spec(suite="performance", device="hostile", challenge=sys.argv[1], options=json.loads(sys.argv[2]))
    document = run_performance(spec, get_backend("hostile"))
    print(json.dumps(document["integrity"]["caching"]))
    """
)


@pytest.mark.slow
def test_without_the_device_process_the_same_plugin_would_forge_test04(tmp_path):
    """The control: loaded into the judge (a library call), the buffer-memoizing plugin's forged
    comparison stands."""
    env = plugin_environment(tmp_path)
    (tmp_path / "probe" / "config.json").write_text(json.dumps({"memo_matmul": "buffer"}))
    caching = run_control(IN_PROCESS_PERFORMANCE, CHALLENGE, json.dumps(PERF_OPTIONS), env=env)
    assert caching["verdict"] == "pass"
    assert caching["items"][0]["fresh_output_mismatches"] == 0


def assert_caching_judged_apart(document: dict) -> None:
    """The plugin ran only in the device process, and TEST04 is not among the device's verdicts."""
    isolation = document["process_isolation"]
    assert "hostile_backend" in isolation["device"]["packages"]
    assert "hostile_backend" not in isolation["judge"]["packages"]
    assert not any("caching" in v for v in isolation["device_verdicts"])


def _model(device_name: str, directory: Path, options: dict | None = None) -> dict:
    """A quick float32 model run of the seeded ResNet through the device process (`options` added)."""
    from dataclasses import asdict

    from runners.device.client import DeviceClient
    from runners.model_suite import run_model
    from runners.models.resnet import ResNetConfig
    from runners.models.seeded import seeded_model_entry
    from runners.spec import build_spec

    entry = seeded_model_entry(
        "resnet-tiny", "resnet-cnn", asdict(ResNetConfig.small()), seed=0, directory=directory
    )
    spec = build_spec(
        suite="model",
        device=device_name,
        challenge=CHALLENGE,
        models=[entry],
        options={
            "quick": True,
            "model_dtypes": ["float32"],
            "model_performance_dtypes": [],
            **(options or {}),
        },
    )
    with DeviceClient(device_name) as device:
        return run_model(spec, device)


@pytest.mark.slow
def test_model_accuracy_is_scored_by_the_judge_from_the_returned_outputs(tmp_path, monkeypatch):
    """The plugin's convolutions return noise and it rewrites the model cases to "pass" in its process:
    the judge scores the returned outputs against its own float64 reference and fails the case."""
    env = plugin_environment(tmp_path)
    (tmp_path / "probe" / "config.json").write_text(json.dumps({"noisy_conv": True}))
    for name in ("PYTHONPATH", "HOSTILE_PROBE_DIR"):
        monkeypatch.setenv(name, env[name])
    document = _model("hostile", tmp_path / "weights")
    [case] = document["cases"]
    assert (case["kernel"], case["status"]) == ("resnet-tiny", "fail")
    assert case["metrics"]["value"] < 0.9
    assert document["summary"]["failed"] == 1
    assert document["process_isolation"]["verdicts_in"] == "judge"
    report = json.loads(next((tmp_path / "probe").glob("report-*.json")).read_text())
    assert "runners.model_suite._case" in report["patched"] and report["conv2d"] == "noise"


@pytest.mark.slow
def test_an_honest_device_passes_the_model_accuracy_judged_by_the_judge(tmp_path):
    document = _model("cpu", tmp_path)
    [case] = document["cases"]
    assert case["status"] == "pass" and case["metrics"]["value"] == 1.0
    [accuracy] = [m for m in document["measurements"] if m["kind"] == "accuracy"]
    assert accuracy["value"] == 1.0


# The model suite's TEST04: the probe runs in the device process, the judge decides -------------------

MODEL_TEST04_BAR = 0.25  # any bar: the cheats below fail on their outputs, whatever the timing verdict


def _model_timed(device_name: str, directory: Path) -> dict:
    """The quick model run with its timed float32 runs and TEST04 probe."""
    return _model(
        device_name,
        directory,
        {"model_performance_dtypes": ["float32"], "integrity": {"caching_threshold": MODEL_TEST04_BAR}},
    )


def _hostile_model_run(tmp_path: Path, monkeypatch, config: dict) -> tuple[dict, dict]:
    """The model suite's timed run on the hostile plugin set up with ``config``: the document and the
    plugin's own report of what it did."""
    env = plugin_environment(tmp_path)
    (tmp_path / "probe" / "config.json").write_text(json.dumps(config))
    for name in ("PYTHONPATH", "HOSTILE_PROBE_DIR"):
        monkeypatch.setenv(name, env[name])
    document = _model_timed("hostile", tmp_path / "weights")
    report = json.loads(next((tmp_path / "probe").glob("report-*.json")).read_text())
    return document, report


@pytest.mark.slow
def test_a_plugin_memoizing_model_forwards_by_buffer_and_forging_test04_fails_it_in_the_judge(
    tmp_path, monkeypatch
):
    """The plugin's model runtime answers a one-item forward from a cache keyed on the input buffers
    (the probe refills the latency input's buffers in place and gets the repeated input's answer) and, in
    its process, makes every fresh output "equal" to its output apart and the model suite's TEST04 judge
    "pass": the judge compares the returned fresh outputs itself and fails TEST04."""
    from runners.document import validate_document

    document, report = _hostile_model_run(tmp_path, monkeypatch, {"memo_model": "buffer"})
    validate_document(document)
    [caching] = document["integrity"]["caching"]["items"]
    assert (caching["model"], caching["dtype"]) == ("resnet-tiny", "float32")
    assert document["integrity"]["caching"]["verdict"] == caching["verdict"] == "fail", caching
    assert caching["fresh_outputs_checked"] == 12
    assert caching["fresh_output_mismatches"] >= 1 and caching["fresh_outputs_stale"] >= 1
    assert "fresh calls returned an output other than" in caching["reason"]
    assert report["model"] == "memoized by buffer"
    assert {"runners.integrity.judge_caching", "runners.model_suite.performance.judge_caching"} <= set(
        report["patched"]
    )
    assert_caching_judged_apart(document)


@pytest.mark.slow
def test_a_plugin_memoizing_model_forwards_by_shape_is_caught_by_the_judges_reference_of_fresh_inputs(
    tmp_path, monkeypatch
):
    """A cache keyed on the input's shape answers every one-item input with the first one's output, timed
    and apart alike, so the device's outputs agree with each other: the judge's float64 reference of two
    challenge-drawn fresh inputs (each output must lie nearer its own reference than any other input's)
    fails it."""
    from runners.document import validate_document

    document, report = _hostile_model_run(tmp_path, monkeypatch, {"memo_model": "shape"})
    validate_document(document)
    assert report["model"] == "memoized by shape"
    [caching] = document["integrity"]["caching"]["items"]
    assert document["integrity"]["caching"]["verdict"] == caching["verdict"] == "fail", caching
    assert caching["fresh_output_mismatches"] == 0  # stale apart too: the outputs agree
    assert caching["fresh_reference_failures"] == caching["fresh_reference_checked"] == 2
    assert "float64 reference" in caching["reason"]


@pytest.mark.slow
def test_an_honest_device_passes_the_model_test04_judged_by_the_judge(tmp_path):
    from runners.document import validate_document

    document = _model_timed("cpu", tmp_path)
    validate_document(document)
    [caching] = document["integrity"]["caching"]["items"]
    assert caching["verdict"] == "pass", caching
    assert caching["threshold"] == MODEL_TEST04_BAR
    assert caching["fresh_outputs_checked"] == 12 and caching["fresh_output_mismatches"] == 0
    assert caching["fresh_reference_checked"] == 2 and caching["fresh_reference_failures"] == 0
    assert not any("caching" in v for v in document["process_isolation"]["device_verdicts"])
    # Every timed probe call ran in a frame of the judge's (no bounds in this spec: reported, none refused).
    frames = caching["host_frames"]
    assert frames["checked"] >= 12 + 3 * 6 and frames["refused"] == 0 and frames["bounds"] is None, frames
    assert 0 < frames["min_ratio"] and frames["max_call_ratio"] <= 1.0


IN_PROCESS_MODEL = textwrap.dedent(
    """
    import json, sys
    from dataclasses import asdict
    from pathlib import Path
    from runners.backends import get_backend
    from runners.model_suite import run_model
    from runners.models.resnet import ResNetConfig
    from runners.models.seeded import seeded_model_entry
    from runners.spec import build_spec

    entry = seeded_model_entry("resnet-tiny", "resnet-cnn", asdict(ResNetConfig.small()), seed=0,
                               directory=Path(sys.argv[3]))
    spec = build_spec(suite="model", device="hostile", challenge=sys.argv[1], models=[entry],
                      options=json.loads(sys.argv[2]))
    document = run_model(spec, get_backend("hostile"))
    print(json.dumps(document["integrity"]["caching"]))
    """
)


@pytest.mark.slow
@pytest.mark.parametrize("memo", ["buffer", "shape"])
def test_without_the_device_process_the_same_plugin_would_forge_the_model_test04(tmp_path, memo):
    """The control: loaded into the judge (a library call), the memoizing plugin's forged TEST04 stands."""
    env = plugin_environment(tmp_path)
    (tmp_path / "probe" / "config.json").write_text(json.dumps({"memo_model": memo}))
    options = {
        "quick": True,
        "model_dtypes": ["float32"],
        "model_performance_dtypes": ["float32"],
        "integrity": {"caching_threshold": MODEL_TEST04_BAR},
    }
    caching = run_control(IN_PROCESS_MODEL, CHALLENGE, json.dumps(options), str(tmp_path / "w"), env=env)
    assert caching["verdict"] == "pass", caching
    assert caching["items"][0]["fresh_output_mismatches"] == 0


# The model suite's TEST01 and timed figures: raw evidence from the device process, the judge decides --


@pytest.mark.slow
def test_a_plugin_forging_the_model_test01_verdict_and_timed_figures_is_refused_by_the_judge(
    tmp_path, monkeypatch
):
    """The plugin runs one-item forwards (the latency path) in bfloat16 in a float32 run and, in its
    process, rewrites the model suite's TEST01 verdict to "pass" and every timed figure ten times better.
    The judge decides TEST01 from the returned samples against the returned accuracy output and its own
    float64 reference, and recomputes every figure from the raw timings: TEST01 fails, the forged
    figures are replaced, and the clock cross-check item fails for the disagreement. (On the code before
    this check, TEST01 passed and the forged figures were published.)"""
    from runners.document import validate_document
    from runners.timing import TimingPolicy

    document, report = _hostile_model_run(tmp_path, monkeypatch, {"forge_model": True})
    validate_document(document)
    assert report["model"] == "bfloat16 latency path"
    assert "runners.model_suite.performance.output_samples_verdict" in report["patched"]
    [consistency] = document["integrity"]["output_consistency"]["items"]
    assert document["integrity"]["output_consistency"]["verdict"] == consistency["verdict"] == "fail"
    assert consistency["mismatches"] >= 1
    failed = {d["sample"].split("@")[0] for d in consistency["details"]}
    assert {"latency", "b1"} <= failed and "b4" not in failed, consistency["details"]
    [timing] = document["integrity"]["timing"]["items"]
    assert document["integrity"]["timing"]["verdict"] == timing["verdict"] == "fail"
    assert timing["raw_timings"]["checked"] == timing["raw_timings"]["disagreements"] == 3
    assert "disagree with the raw timings" in timing["reason"]
    # The published figures are the judge's: each throughput is the items over the recomputed median.
    policy = TimingPolicy.quick()
    for item in document["measurements"]:
        if item["kind"] == "model_throughput":
            assert item["value"] == pytest.approx(
                item["params"]["items"] / item["stats"]["median"], rel=1e-12
            )
        if item["kind"] == "model_latency":
            assert item["value"] == item["stats"]["median"]
            assert item["unstable"] == (
                item["stats"]["iqr"] / item["stats"]["median"] > policy.target_rel_iqr
            )
    assert document["process_isolation"]["device_verdicts"] == []
    sample_ids = {f"model/resnet-tiny/float32/{label}" for label in consistency["sample_ids"]}
    assert sample_ids and sample_ids <= {o["id"] for o in document["commitment"]["outputs"]}


@pytest.mark.slow
def test_an_honest_device_passes_the_model_test01_and_timing_judged_by_the_judge(tmp_path):
    from runners.document import validate_document

    document = _model_timed("cpu", tmp_path)
    validate_document(document)
    [consistency] = document["integrity"]["output_consistency"]["items"]
    assert consistency["verdict"] == "pass" and consistency["mismatches"] == 0, consistency
    groups = {label.split("@")[0] for label in consistency["sample_ids"]}
    assert groups == {"latency", "b1", "b4"}
    [timing] = document["integrity"]["timing"]["items"]
    assert timing["verdict"] == "not_applicable", timing  # the CPU has no timing events
    assert timing["raw_timings"] == {"checked": 3, "disagreements": 0, "details": []}
    assert document["process_isolation"]["device_verdicts"] == []


IN_PROCESS_TEST01 = IN_PROCESS_MODEL.replace(
    'print(json.dumps(document["integrity"]["caching"]))', 'print(json.dumps(document["integrity"]))'
)


@pytest.mark.slow
def test_without_the_device_process_the_same_plugin_would_forge_the_model_test01(tmp_path):
    """The control: loaded into the judge (a library call), the plugin's forged TEST01 verdict stands."""
    env = plugin_environment(tmp_path)
    (tmp_path / "probe" / "config.json").write_text(json.dumps({"forge_model": True}))
    options = {"quick": True, "model_dtypes": ["float32"], "model_performance_dtypes": ["float32"]}
    integrity = run_control(IN_PROCESS_TEST01, CHALLENGE, json.dumps(options), str(tmp_path / "w"), env=env)
    assert integrity["output_consistency"]["verdict"] == "pass", integrity["output_consistency"]
    assert integrity["timing"]["verdict"] == "not_applicable"


# The model suite's timed frames: the judge's clock around each timed loop, rounds it draws itself ------


def _program_clock_bounds() -> dict:
    """The program's clock cross-check bounds (AIA 1.2, every level the same), as a job spec sends them."""
    program = json.loads((ROOT / "apps" / "runs" / "programs" / "aia-1.2.json").read_text())
    [bounds] = {
        json.dumps(level["thresholds"]["clock_ratio_bounds"]["value"], sort_keys=True)
        for level in program["levels"]
    }
    value = json.loads(bounds)
    return {"clock_ratio_min": value["min"], "clock_ratio_max": value["max"]}


def _cheating_timed_run(tmp_path: Path, monkeypatch, mode: str) -> tuple[dict, dict]:
    env = plugin_environment(tmp_path)
    (tmp_path / "probe" / "config.json").write_text(json.dumps({"cheat_timed": mode}))
    for name in ("PYTHONPATH", "HOSTILE_PROBE_DIR"):
        monkeypatch.setenv(name, env[name])
    document = _model(
        "hostile",
        tmp_path / "weights",
        {"model_performance_dtypes": ["float32"], "timing": _program_clock_bounds()},
    )
    report = json.loads(next((tmp_path / "probe").glob("report-*.json")).read_text())
    return document, report


@pytest.mark.slow
def test_timings_under_reported_12x_consistently_are_refused_by_the_judges_clock(tmp_path, monkeypatch):
    """The plugin rewrites the timed harness in the device process to report every sample 12 times
    shorter, its summary consistent with them: the judge's raw-timing check finds nothing, but the
    device's total no longer fits the judge's clock around the frame, so every timed figure is refused
    and the clock item fails. (On the code before the frames, the forged figures were published.)"""
    from runners.document import validate_document

    document, report = _cheating_timed_run(tmp_path, monkeypatch, "underreport")
    validate_document(document)
    assert report["model"] == "timed runs: underreport"
    [timing] = document["integrity"]["timing"]["items"]
    assert document["integrity"]["timing"]["verdict"] == timing["verdict"] == "fail", timing
    assert timing["raw_timings"]["disagreements"] == 0  # consistent with its own samples
    frames = timing["host_frames"]
    assert frames["checked"] == frames["refused"] == 3, frames
    assert frames["max_ratio"] < 0.5 * _program_clock_bounds()["clock_ratio_min"]
    assert "on the judge's clock" in timing["reason"]
    timed = [m for m in document["measurements"] if m["kind"] in ("model_latency", "model_throughput")]
    assert len(timed) == 3 and all(m["value"] is None and "unavailable" in m["flags"] for m in timed)
    # The platform's judge says why, in its own words: the frames, not events against the host clock.
    from apps.certificates.judge import level_thresholds, timing_verdicts
    from certification.recorded_text import parse

    program = json.loads((ROOT / "apps" / "runs" / "programs" / "aia-1.2.json").read_text())
    verdicts = timing_verdicts(
        measurements=document["measurements"],
        integrity=document["integrity"],
        thresholds=level_thresholds(program=program, level="baseline"),
    )
    failed = [str(v.detail) for v in verdicts if not v.passed]
    assert [parse(text)[0] for text in failed] == ["timing.host_frames_outside"], failed


@pytest.mark.slow
def test_a_timed_loop_skipping_work_with_outputs_computed_apart_fails_test01_on_the_judges_draw(
    tmp_path, monkeypatch
):
    """Inside the timed loop the plugin's calls skip the work (zeros), and it hands the sampler an output
    computed apart where it can: on the rounds the challenge draws before the frames (TEST01 passed), on
    every fourth round here. The judge draws the rounds with its own secret after the digests of every
    round are in: it draws skipped ones, whose outputs fail TEST01."""
    from runners.document import validate_document

    document, report = _cheating_timed_run(tmp_path, monkeypatch, "skip")
    validate_document(document)
    assert "runners.model_suite.frames.CommittingSampler.__call__" in report["patched"]
    [consistency] = document["integrity"]["output_consistency"]["items"]
    assert document["integrity"]["output_consistency"]["verdict"] == consistency["verdict"] == "fail"
    assert consistency["mismatches"] >= 1, consistency
    assert {d["sample"].split("@")[0] for d in consistency["details"]} & {"latency", "b1", "b4"}


@pytest.mark.slow
def test_revealed_outputs_other_than_the_committed_ones_fail_test01(tmp_path, monkeypatch):
    """The plugin commits the digests of what its timed calls returned (zeros) and reveals outputs
    computed apart instead: each revealed output is checked against its round's digest, and fails."""
    from runners.document import validate_document

    document, report = _cheating_timed_run(tmp_path, monkeypatch, "reveal")
    validate_document(document)
    assert "runners.model_suite.frames.TimedFrames.finish" in report["patched"]
    [consistency] = document["integrity"]["output_consistency"]["items"]
    assert consistency["verdict"] == "fail", consistency
    assert "not the one its digest committed" in consistency["reason"]


@pytest.mark.slow
def test_an_honest_device_fits_the_judges_clock_with_the_programs_bounds(tmp_path):
    """Every timed loop ran in a frame of the judge's, its reported total inside the frame. The lower
    bound's false alarms on a loaded host are bench/model_frames.py's to count, not this test's: on the
    2-core host here at load 13-15 one honest quick-policy frame in 18 fell below half of its frame."""
    from runners.document import validate_document

    document = _model(
        "cpu", tmp_path, {"model_performance_dtypes": ["float32"], "timing": _program_clock_bounds()}
    )
    validate_document(document)
    [timing] = document["integrity"]["timing"]["items"]
    assert timing["raw_timings"]["disagreements"] == 0, timing
    frames = timing["host_frames"]
    assert frames["checked"] == 3 and frames["bounds"] == [0.5, 1.05], frames
    assert 0 < frames["min_ratio"] <= frames["max_ratio"] <= 1.0  # the device's calls lie inside the frame
    [consistency] = document["integrity"]["output_consistency"]["items"]
    assert consistency["verdict"] == "pass", consistency
    assert len(consistency["sample_ids"]) >= 3


# TEST04's probe calls in the judge's frames (runners/probe_frames.py) ------------------------------


def _cached_answers_run(tmp_path: Path, monkeypatch, suite: str) -> tuple[dict, dict]:
    """The plugin's ``cheat_timed: "cache"``: a result cache keyed on the inputs' content (every answer
    right, a repeated input free) and TEST04's fresh probe calls reported as long as the shortest cached one."""
    env = plugin_environment(tmp_path)
    (tmp_path / "probe" / "config.json").write_text(json.dumps({"cheat_timed": "cache"}))
    for name in ("PYTHONPATH", "HOSTILE_PROBE_DIR"):
        monkeypatch.setenv(name, env[name])
    bar = {"timing": _program_clock_bounds(), "integrity": {"caching_threshold": MODEL_TEST04_BAR}}
    if suite == "model":
        document = _model("hostile", tmp_path / "weights", {"model_performance_dtypes": ["float32"], **bar})
    else:
        from runners.device.client import DeviceClient
        from runners.performance import run_performance
        from runners.spec import build_spec

        # A GEMM whose compute outweighs the cache's fingerprint and the judge's frame (at 128 a call
        # lasts about as long as the frame around it, and the two sides differ by the host's noise).
        perf = {**PERF_OPTIONS["performance"], "gemm_sizes": [512]}
        spec = build_spec(
            suite="performance",
            device="hostile",
            challenge=CHALLENGE,
            options={**PERF_OPTIONS, "performance": perf, **bar},
        )
        with DeviceClient("hostile") as device:
            document = run_performance(spec, device)
    report = json.loads(next((tmp_path / "probe").glob("report-*.json")).read_text())
    return document, report


def _platform_caching_reasons(document: dict) -> list[str]:
    from apps.certificates.judge import integrity_verdicts, level_thresholds
    from certification.recorded_text import parse

    program = json.loads((ROOT / "apps" / "runs" / "programs" / "aia-1.2.json").read_text())
    verdicts = integrity_verdicts(
        integrity=document["integrity"],
        check="caching",
        thresholds=level_thresholds(program=program, level="baseline"),
    )
    assert verdicts and not any(v.passed for v in verdicts)
    return [parse(str(v.detail))[0] for v in verdicts]


@pytest.mark.slow
@pytest.mark.parametrize("suite", ["model", "performance"])
def test_a_cache_under_reporting_its_fresh_probe_calls_is_refused_by_the_judges_clock(
    tmp_path, monkeypatch, suite
):
    """The plugin answers from a content cache and reports each fresh probe call as long as the shortest
    cached one: the fresh median is no slower than the repeated one and every output is right, so TEST04
    passed on the code before the probe's frames (the control below shows it without a device process).
    The judge's clock around each probe call saw the fresh calls compute: their reported total is far
    below half of it, the probe's timings are refused and TEST04 fails, and the platform's judge says so
    in its own words."""
    from runners.document import validate_document

    document, report = _cached_answers_run(tmp_path, monkeypatch, suite)
    validate_document(document)
    assert report["model"] == "timed runs: cache"
    assert "runners.integrity.time_once" in report["patched"]
    [caching] = document["integrity"]["caching"]["items"]
    assert document["integrity"]["caching"]["verdict"] == caching["verdict"] == "fail", caching
    assert caching["speedup_ratio"] < 1 + MODEL_TEST04_BAR  # the forged timings alone would pass
    assert caching["fresh_output_mismatches"] == 0 and caching["fresh_reference_failures"] == 0
    frames = caching["host_frames"]
    assert frames["bounds"] == [0.5, 1.05] and frames["refused"] >= 1, frames
    assert frames["fresh_ratio"] < 0.5 * 0.5, frames
    assert caching["reason"].startswith("TEST04 timings refused: the device reports its fresh probe calls")
    assert _platform_caching_reasons(document) == ["test04.host_frames_outside"]
    assert_caching_judged_apart(document)


IN_PROCESS_CACHED_MODEL = IN_PROCESS_MODEL.replace(
    'print(json.dumps(document["integrity"]["caching"]))',
    'print(json.dumps(document["integrity"]["caching"]["items"][0]))',
)


@pytest.mark.slow
def test_without_the_judges_frames_the_same_cache_passes_test04(tmp_path):
    """The control: the content cache with its under-reported fresh calls, the probe timed by no one but
    the device (a library call, as the device process's probe was before its frames): TEST04 passes."""
    env = plugin_environment(tmp_path)
    (tmp_path / "probe" / "config.json").write_text(json.dumps({"cheat_timed": "cache"}))
    options = {
        "quick": True,
        "model_dtypes": ["float32"],
        "model_performance_dtypes": ["float32"],
        "integrity": {"caching_threshold": MODEL_TEST04_BAR},
    }
    caching = run_control(
        IN_PROCESS_CACHED_MODEL, CHALLENGE, json.dumps(options), str(tmp_path / "weights"), env=env
    )
    assert caching["verdict"] == "pass", caching
    assert caching["fresh_output_mismatches"] == 0 and "host_frames" not in caching


# The serving suite: LoadGen and every verdict in the judge, each forward in the device process -----

SERVING_SETTINGS = {
    "source": "test settings (short LoadGen runs)",
    "dtype": "float32",
    "max_batch": 4,
    "scenarios": {
        "SingleStream": {"min_duration_ms": 100, "min_query_count": 32, "percentile": 0.9},
        "Server": {"min_duration_ms": 100, "min_query_count": 32, "percentile": 0.9, "latency_bound_ms": 500},
        "Offline": {"min_duration_ms": 100, "min_query_count": 1},
    },
    "server_search": {"max_steps": 1, "start_fraction": 0.2, "precision": 0.1, "max_step_s": 5},
}
TINY_BERT = {
    "vocab_size": 64,
    "hidden_size": 32,
    "num_hidden_layers": 1,
    "num_attention_heads": 2,
    "intermediate_size": 64,
    "max_position_embeddings": 32,
}


def _serving(device_name: str, directory: Path) -> dict:
    pytest.importorskip("mlperf_loadgen")
    from runners.device.client import DeviceClient
    from runners.models.seeded import seeded_model_entry
    from runners.serving import run_serving
    from runners.spec import build_spec

    entry = seeded_model_entry("tiny-bert", "bert-encoder", TINY_BERT, seed=0, directory=directory)
    spec = build_spec(
        suite="serving",
        device=device_name,
        challenge=CHALLENGE,
        models=[entry],
        options={"quick": True, "serving": SERVING_SETTINGS},
    )
    with DeviceClient(device_name) as device:
        return run_serving(spec, device)


def test_a_serving_run_in_device_process_mode_gives_a_schema_valid_document(tmp_path):
    from runners.document import validate_document

    document = _serving("cpu", tmp_path)
    validate_document(document)
    cases = {c["case"]: c for c in document["cases"]}
    assert set(cases) == {"serving_accuracy", "serving_SingleStream", "serving_Offline", "serving_Server"}
    assert all(c["status"] in ("pass", "fail") for c in cases.values())  # LoadGen ran: no error case
    assert cases["serving_accuracy"]["status"] == "pass"
    assert cases["serving_accuracy"]["metrics"]["value"] > 0.9999
    assert document["integrity"]["output_consistency"]["verdict"] == "pass"
    model = document["serving"]["models"][0]
    for scenario in ("SingleStream", "Offline", "Server"):
        assert len(model["scenarios"][scenario]["summary_sha256"]) == 64
    isolation = document["process_isolation"]
    assert isolation["mode"] == "child_process" and isolation["verdicts_in"] == "judge"
    assert isolation["device_verdicts"] == []
    # LoadGen ran in the judge; the device process ran each forward and never loaded LoadGen.
    assert "mlperf_loadgen" in isolation["judge"]["packages"]
    assert "mlperf_loadgen" not in isolation["device"]["packages"]
    # One call per batched forward: SingleStream alone ran at least its 32 queries one by one.
    assert isolation["device"]["calls"] >= 32 and isolation["device"]["pid"] != isolation["judge"]["pid"]


def test_a_device_process_serving_stale_outputs_fails_the_accuracy_mode(tmp_path, monkeypatch):
    """The plugin's serving path answers every batch with the first output it computed, and it
    rewrites the serving accuracy score and TEST01 verdict to pass in its process: the judge scores
    what came back against its own float64 reference and fails the accuracy mode."""
    env = plugin_environment(tmp_path)
    (tmp_path / "probe" / "config.json").write_text(json.dumps({"stale_serving": True}))
    for name in ("PYTHONPATH", "HOSTILE_PROBE_DIR"):
        monkeypatch.setenv(name, env[name])
    document = _serving("hostile", tmp_path / "weights")
    accuracy = next(c for c in document["cases"] if c["case"] == "serving_accuracy")
    assert accuracy["status"] == "fail" and accuracy["metrics"]["metric"] == "cosine_min"
    assert accuracy["metrics"]["value"] < accuracy["metrics"]["informational_bar"]
    assert document["integrity"]["output_consistency"]["verdict"] == "fail"
    isolation = document["process_isolation"]
    assert "hostile_backend" in isolation["device"]["packages"]
    assert "hostile_backend" not in isolation["judge"]["packages"]
    report = json.loads(next((tmp_path / "probe").glob("report-*.json")).read_text())
    assert "runners.served_outputs.serving_accuracy_score" in report["patched"]
    assert report["serving"] == "stale"


# The wire format ---------------------------------------------------------------------------------


def _roundtrip(header: dict, tensors: dict) -> tuple[dict, dict]:
    buffer = io.BytesIO()
    write_frame(buffer, header, tensors)
    buffer.seek(0)
    return read_frame(buffer)


def test_every_wire_dtype_crosses_bit_exact_with_its_shape():
    g = torch.Generator().manual_seed(0)
    tensors = {}
    for name, dtype in DTYPES.items():
        values = torch.randn(3, 5, generator=g) * 100
        tensors[name] = values > 0 if dtype == torch.bool else values.to(dtype)
    tensors["empty"] = torch.empty(0, 7, dtype=torch.bfloat16)
    tensors["scalar"] = torch.tensor(2.5, dtype=torch.float16)
    tensors["transposed"] = torch.arange(12, dtype=torch.int32).reshape(3, 4).t()
    header, back = _roundtrip({"op": "x", "n": 1}, tensors)
    assert header == {"op": "x", "n": 1}
    for name, tensor in tensors.items():
        assert back[name].dtype == tensor.dtype and back[name].shape == tensor.shape
        assert torch.equal(back[name].reshape(-1).view(torch.uint8), tensor.reshape(-1).view(torch.uint8))


def _frame(header: dict, payload: bytes = b"") -> io.BytesIO:
    text = json.dumps(header).encode()
    return io.BytesIO(len(text).to_bytes(8, "big") + text + payload)


@pytest.mark.parametrize(
    ("header", "payload"),
    [
        ({"tensors": [{"name": "x", "dtype": "object", "shape": [1]}]}, b"\0" * 8),
        ({"tensors": [{"name": "x", "dtype": "float32", "shape": [4]}]}, b"\0" * 8),  # short
        ({"tensors": [{"name": "x", "dtype": "float32", "shape": [-1]}]}, b""),
        ({"tensors": [{"name": "x", "dtype": "float32", "shape": [1], "pickle": "..."}]}, b"\0" * 4),
        (
            {
                "tensors": [
                    {"name": "x", "dtype": "int8", "shape": [1]},
                    {"name": "x", "dtype": "int8", "shape": [1]},
                ]
            },
            b"\0\0",
        ),
        ({"tensors": [{"name": "x", "dtype": "float32", "shape": [2**39, 2**39]}]}, b""),
    ],
)
def test_a_frame_that_breaks_the_format_is_refused(header, payload):
    with pytest.raises(ProtocolError):
        read_frame(_frame(header, payload))


def test_a_header_with_nan_or_not_json_is_refused():
    with pytest.raises(ProtocolError):
        read_frame(io.BytesIO((3).to_bytes(8, "big") + b"NaN"))
    with pytest.raises(ProtocolError):
        read_frame(io.BytesIO((2).to_bytes(8, "big") + b"{x"))
    with pytest.raises(ProtocolError):
        read_frame(io.BytesIO((2**40).to_bytes(8, "big")))


# The device process's confinement -----------------------------------------------------------------


def test_the_device_environment_names_no_secret_nor_the_platform():
    env = scrubbed_environment(
        {
            "PATH": "/usr/bin",
            "LD_LIBRARY_PATH": "/opt/vendor/lib",
            "ASCEND_HOME": "/usr/local/Ascend",
            "RUNNER_KEY_FILE": "/etc/runner/key.pem",
            "RUNNER_NAME": "host-1",
            "CELERY_BROKER_URL": "redis://x",
            "PLATFORM_URL": "https://p",
            "DATABASE_URL": "postgresql://x",
            "AWS_SECRET_ACCESS_KEY": "s",
            "HF_TOKEN": "t",
        }
    )
    assert env == {
        "PATH": "/usr/bin",
        "LD_LIBRARY_PATH": "/opt/vendor/lib",
        "ASCEND_HOME": "/usr/local/Ascend",
    }


@pytest.mark.skipif(landlock_abi() < 1, reason="this kernel has no Landlock")
def test_landlock_hides_the_protected_file_and_nothing_else(tmp_path):
    secret, sibling = tmp_path / "keys" / "runner.pem", tmp_path / "keys" / "runner.pub.pem"
    secret.parent.mkdir()
    secret.write_text("-----BEGIN PRIVATE KEY-----\n")
    sibling.write_text("public\n")
    script = (
        "import sys\n"
        "def can(p):\n"
        "    try:\n        open(p).read(); return True\n"
        "    except OSError:\n        return False\n"
        "print(can(sys.argv[1]), can(sys.argv[2]), can('/etc/hostname') or can('/etc/passwd'))\n"
    )
    confinement = Confinement([secret])
    try:
        assert confinement.active and confinement.rules > 0
        result = subprocess.run(  # noqa: S603 - our interpreter, fixed script
            [sys.executable, "-S", "-c", script, str(secret), str(sibling)],
            preexec_fn=confinement.preexec(),  # noqa: PLW1509
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        confinement.close()
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "True", "True"]
