"""Two processes on a runner host: the judge, and the device process that runs the vendor's stack.

Which process may load what:

==========================  ===============================  =====================================
                            judge (parent: worker, CLI)      device process (runners.device.host)
==========================  ===============================  =====================================
runner signing key          yes (RunnerIdentity, in memory)  never: not in its environment, argv or
                                                             descriptors; Landlock hides the file
job spec and challenge      yes                              only what a request carries
catalog inputs              draws them from the challenge    receives them as tensors
float64 references          computes them                    never
tolerances, verdicts        ``runners.conformance.compare``  never (patching its own copy of
                                                             ``runners.conformance`` changes nothing)
backend plugin / entry      never imported                   ``runners.backends.get_backend``
point, driver, runtime
kernel device calls         never                            ``Kernel.arrange``/``run``/``comparable``
broker, platform URL        yes                              never (scrubbed from its environment)
==========================  ===============================  =====================================

Only tensors (raw bytes with dtype and shape) and JSON values (timings, the fingerprint, the
support declaration) cross, in the frames of runners/device/protocol.py; nothing is unpickled.

Per suite:

- conformance: every device call goes through ``DeviceClient.run_kernel``; the judge draws the
  inputs, computes the reference and compares the returned tensor (``verdicts_in = "judge"``).
- performance: the timed loop runs in the device process (``DeviceClient.run_suite``); each
  benchmark's accuracy output and timed samples come back as tensors and the judge re-judges
  TEST01 against its own float64 references (``rejudge_output_consistency``). Each TEST04 probe's
  raw timings, every fresh call's output, the device's output for the same values apart and the
  repeated input's output come back too, and the judge decides TEST04 (``rejudge_caching``): the
  timing verdict from the raw samples with its own spec's bar, each fresh output against its output
  apart, and a sample of fresh outputs against the judge's float64 reference of their values. Each
  timed probe call runs in a frame of the judge's (runners/probe_frames.py): each side's reported total
  must fit the judge's clock around its calls within the program's clock bounds, each fresh output is
  the one committed by digest in its frame, and the judge draws the reference sample with its own
  secret. The clock cross-check is judged on the device's timings there (``device_verdicts``; its
  raw figures are in the document for the platform).
- model: the suite runs in the device process; every scored accuracy output comes back as a tensor
  and the judge scores it again against its own float64 reference of the model
  (``rejudge_model_accuracy``), which sets each accuracy case's status, and computes a decoder's greedy
  generation agreement from the tokens the device generated against its own float64 model's. Each model
  TEST04 probe's raw timings and kept outputs come back as the performance suite's do, and the judge
  decides TEST04 (``rejudge_model_caching``): ``judge_caching`` with its own spec's bar, each fresh output
  against its output apart, and two fresh outputs (the judge's secret draw) against its float64 reference
  of their values (nearer their own reference than any other input's: ``NearestReference``), the probe's
  calls timed in the judge's frames as the performance suite's. The timed
  runs' TEST01 samples and raw per-sample timings come back too (runners/model_suite/timed_judge.py): the
  judge decides TEST01 against its own references, recomputes every timed figure and the clock
  cross-check from the raw timings with its own policy, and fails a figure whose device summary
  disagrees with them (``rejudge_model_timed``). Each timed measurement runs in a frame of the judge's
  (runners/model_suite/frames.py): the judge's clock around the timed loop bounds the device's reported
  total, and the TEST01 samples are rounds the judge draws with its own secret after the device has
  committed the digest of every round's output, each revealed output checked against its digest; the
  judge commits the samples it judged. No verdict is the device process's (``device_verdicts`` is
  empty). What stays its word (one output per round; the TEST04 probe's own timings) is in
  runners/model_suite/timed_judge.py.

- serving: LoadGen, its SUTs (batching, continuous batching), the float64 reference, the accuracy
  score, TEST01 and the commitment run in the judge (runners/serving); the device process places the
  model with the inputs the judge drew and runs each batched forward the judge's SUT asks for
  (``DeviceClient.serving_open`` / ``serving_call``, runners/serving_engine.py), and the energy meter
  around each timed run, whose raw joules the judge divides by its own counts. No verdict is the
  device process's (``device_verdicts`` is empty); LoadGen's latencies include the frames' round trips.

The key stays out of reach in every suite.

Torch's own device-extension autoload (``torch.backends`` entry points) is turned off in the
judge (runners/__init__.py) and left as the host has it in the device process.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from runners.device.local import InProcessDevice, KernelResult
from runners.document import DocumentInvalid

__all__ = [
    "InProcessDevice",
    "KernelResult",
    "as_device",
    "is_isolated",
    "open_device",
    "suite_in_device_process",
]


def as_device(backend: Any) -> Any:
    """A device to run kernels on: a ``DeviceClient`` as is, a Backend object wrapped in-process."""
    if hasattr(backend, "run_kernel") and hasattr(backend, "isolation"):
        return backend
    return InProcessDevice(backend)


def open_device(name: str, *, protected_paths: Any = ()) -> Any:
    """A ``DeviceClient`` for backend ``name`` (raises runners.device.client.UnknownDevice)."""
    from runners.device.client import DeviceClient

    return DeviceClient(name, protected_paths=protected_paths)


def is_isolated(backend: Any) -> bool:
    """True for a device process client (it can run a whole suite over there)."""
    return hasattr(backend, "run_suite") and hasattr(backend, "isolation")


def suite_in_device_process(
    spec: dict[str, Any], device: Any, progress: Any = None, *, commitment: Any = None
) -> dict[str, Any]:
    """Runs a performance or model suite's loop in the device process; the judge then puts back the
    spec it was given, re-judges what it can (performance: TEST01 and TEST04 from the returned outputs
    against its own float64 references; model: accuracy, generation agreement, TEST01, TEST04 and every
    timed figure from the returned outputs and raw timings), records the process split, and validates
    the document before anyone signs it."""
    from runners.document import validate_document

    document, outputs, tensors, caching, extra = device.run_suite(spec, progress)
    committed: list[Any] = []
    if document.get("suite") != spec.get("suite"):
        raise DocumentInvalid(f"the device process returned a {document.get('suite')!r} document")
    document["spec"] = spec
    document["fingerprint"] = device.fingerprint()
    # TEST04's probe calls timed in the judge's frames (runners/probe_frames.py).
    probes = device.frames.probes if getattr(device, "frames", None) is not None else None
    if spec.get("suite") == "performance":
        from runners.performance import rejudge_caching, rejudge_output_consistency

        rejudge_output_consistency(document, outputs, tensors, str(spec["challenge"]))
        rejudge_caching(document, caching, tensors, spec, frames=probes)
        # The clock cross-check is a verdict on the device's own timings (raw figures in the document,
        # re-judged by the platform); TEST01, TEST04 and every reference are the judge's.
        document["process_isolation"] = device.isolation("judge", ["integrity.timing (clock cross-check)"])
    else:
        from runners.model_suite import (
            rejudge_model_accuracy,
            rejudge_model_caching,
            rejudge_model_timed,
        )

        workloads: dict[str, Any] = {}
        generated = {
            (str(g.get("model")), str(g.get("dtype"))): tensors.get(str(g.get("tensor")))
            for g in extra["generated"]
        }
        rejudge_model_accuracy(document, spec, outputs, tensors, workloads, generated)
        rejudge_model_caching(document, spec, caching, tensors, workloads, frames=probes)
        committed = rejudge_model_timed(
            document, spec, extra["timed"], tensors, outputs, workloads, frames=device.frames
        )
        # Every verdict is the judge's; the timed loops ran in its frames (runners/model_suite/frames.py).
        document["process_isolation"] = device.isolation("judge", [])
    document["commitment"] = _judge_commitment(spec, outputs, tensors, commitment, committed)
    validate_document(document)
    return document


def _judge_commitment(
    spec: dict[str, Any],
    outputs: list[dict[str, Any]],
    tensors: dict[str, Any],
    commitment: Any,
    judged: Sequence[tuple[str, Any]] = (),
) -> dict[str, Any]:
    """The document's commitment, made by the judge from the outputs the device process returned
    (the device process's own digests are never used): performance, each benchmark's accuracy
    output and TEST01 rounds; model, every output the suite judged. With the worker's
    ``commitment`` the raw outputs also go to this host's store for the platform's reveal."""
    from runners.commitment import OutputCommitment, performance_output_id

    commitment = commitment if commitment is not None else OutputCommitment()
    if spec.get("suite") == "performance":
        for index, item in enumerate(outputs):
            name, dtype = str(item.get("name")), str(item.get("dtype"))
            accuracy = tensors.get(f"{index}.accuracy")
            if accuracy is None:
                raise DocumentInvalid(f"the device process returned no accuracy output for {name} {dtype}")
            commitment.record(performance_output_id(name, dtype, "accuracy"), accuracy)
            for round_index in item.get("rounds") or []:
                sample = tensors.get(f"{index}.round{round_index}")
                if sample is None:
                    raise DocumentInvalid(f"the device process returned no round {round_index} of {name}")
                commitment.record(performance_output_id(name, dtype, f"round{round_index}"), sample)
    else:
        for item in outputs:
            if "committed" in item:
                tensor = tensors.get(str(item.get("tensor")))
                if tensor is None:
                    raise DocumentInvalid(f"the device process returned no output {item['committed']!r}")
                commitment.record(str(item["committed"]), tensor)
        for output_id, tensor in judged:  # the TEST01 samples the judge judged (rejudge_model_timed)
            commitment.record(output_id, tensor)
    return commitment.section()
