"""The runner's commitment: canonical digests, the per-attempt store, the reveal's safetensors bytes,
and the platform-side judge of revealed outputs (runners/revealed.py) on a real conformance run."""

from __future__ import annotations

import base64
import hashlib

import pytest
import torch

from runners.backends import get_backend
from runners.commitment import (
    OutputCommitment,
    OutputStore,
    RevealError,
    output_digest,
    reveal_pack,
    reveal_unpack,
)
from runners.conformance import run_conformance
from runners.revealed import RevealContext, judge_output, judgeable
from runners.signing import RunnerIdentity
from runners.spec import attempt_tag, build_spec
from runners.worker import reveal_answer

CHALLENGE = hashlib.sha256(b"commitment tests").hexdigest()
ATTEMPT = attempt_tag(CHALLENGE)


def test_the_digest_covers_dtype_shape_and_values_not_the_layout():
    x = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    assert output_digest(x) == output_digest(x.t().contiguous().t())  # same values, other strides
    assert output_digest(x) != output_digest(x.reshape(4, 3))
    assert output_digest(x) != output_digest(x.to(torch.float64))
    y = x.clone()
    y[2, 3] = torch.nextafter(y[2, 3], torch.tensor(100.0))
    assert output_digest(x) != output_digest(y)
    # Same bits as the little-endian bytes a numpy array of that dtype writes.
    assert output_digest(torch.tensor([1.0], dtype=torch.bfloat16)) == output_digest(
        torch.tensor([1.0], dtype=torch.bfloat16).contiguous()
    )


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16, torch.int8, torch.int64])
def test_the_store_gives_back_the_committed_tensor(tmp_path, dtype):
    commitment = OutputCommitment(OutputStore(tmp_path, ATTEMPT))
    tensor = (torch.randn(5, 7) * 10).to(dtype)[:, ::2]  # non-contiguous on purpose
    digest = commitment.record("conformance/k/float32/c", tensor)
    back = OutputStore(tmp_path, ATTEMPT).get("conformance/k/float32/c")
    assert back.dtype == dtype and torch.equal(back, tensor) and output_digest(back) == digest
    assert commitment.section()["outputs"][0] == {
        "id": "conformance/k/float32/c",
        "digest": digest,
        "dtype": str(dtype).removeprefix("torch."),
        "shape": [5, 4],
    }
    with pytest.raises(ValueError):
        commitment.record("conformance/k/float32/c", tensor)


def test_a_store_refuses_an_attempt_tag_that_is_a_path(tmp_path):
    with pytest.raises(ValueError):
        OutputStore(tmp_path, "../../etc")


def test_a_reveal_round_trips_and_names_what_the_store_lacks(tmp_path):
    store = OutputStore(tmp_path, ATTEMPT)
    store.put("a", torch.ones(3))
    body = reveal_pack(store, ["a", "b"])
    assert body["missing"] == ["b"]
    tensors = reveal_unpack(body)
    assert list(tensors) == ["a"] and torch.equal(tensors["a"], torch.ones(3))


def test_a_reveal_that_is_not_safetensors_or_not_its_digest_or_too_large_is_refused(tmp_path):
    store = OutputStore(tmp_path, ATTEMPT)
    store.put("a", torch.ones(1000))
    body = reveal_pack(store, ["a"])
    with pytest.raises(RevealError, match="digest"):
        reveal_unpack({**body, "outputs_sha256": "0" * 64})
    pickled = base64.b64encode(b"\x80\x04K\x01.").decode()  # a pickle: never loaded
    with pytest.raises(RevealError, match="safetensors"):
        reveal_unpack(
            {"outputs_b64": pickled, "outputs_sha256": hashlib.sha256(base64.b64decode(pickled)).hexdigest()}
        )
    with pytest.raises(RevealError, match="larger"):
        reveal_unpack(body, max_bytes=100)
    with pytest.raises(RevealError, match="more than"):
        reveal_pack(store, ["a"], max_bytes=100)


@pytest.mark.parametrize("damage", ["!", "\n", "=", " ", "é"])
def test_a_reveal_whose_outputs_are_not_strict_base64_is_refused(tmp_path, damage):
    """The answer's outputs are decoded strictly (pybase64, validate=True, as the standard library's
    validate=True): a character outside the alphabet, a line break or padding inside the text is refused
    before any digest is taken, and the bytes the runner packed come back exactly."""
    store = OutputStore(tmp_path, ATTEMPT)
    store.put("a", torch.arange(1000, dtype=torch.float32))
    body = reveal_pack(store, ["a"])
    assert base64.b64decode(body["outputs_b64"], validate=True)  # what the runner packed is standard
    assert torch.equal(reveal_unpack(body)["a"], torch.arange(1000, dtype=torch.float32))
    text = body["outputs_b64"]
    damaged = text[:40] + damage + text[41:] if damage != "=" else text[:40] + "==" + text[42:]
    with pytest.raises(RevealError, match="not base64"):
        reveal_unpack({**body, "outputs_b64": damaged})


def test_the_runner_answers_a_reveal_signed_and_an_unreadable_request_with_an_error(tmp_path):
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    identity = RunnerIdentity("runner-x", Ed25519PrivateKey.generate())
    OutputStore(tmp_path, ATTEMPT).put("a", torch.zeros(2))
    answer = reveal_answer(
        {"reveal_id": 1, "job_id": "7", "attempt": ATTEMPT, "outputs": ["a"]},
        identity=identity,
        root=tmp_path,
    )
    assert answer["runner"] == "runner-x" and answer["signature"]
    assert '"outputs_sha256"' in answer["payload_json"]
    bad = reveal_answer({"attempt": "../x", "outputs": ["a"]}, identity=identity, root=tmp_path)
    assert '"error"' in bad["payload_json"]


@pytest.fixture(scope="module")
def honest_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("outputs")
    spec = build_spec(
        suite="conformance",
        device="cpu",
        challenge=CHALLENGE,
        kernels=["cumsum", "argmax", "gelu_tanh"],
        dtypes=["float32", "bfloat16"],
    )
    commitment = OutputCommitment(OutputStore(root, ATTEMPT))
    document = run_conformance(spec, get_backend("cpu"), commitment=commitment)
    return spec, document, OutputStore(root, ATTEMPT)


@pytest.mark.slow
def test_every_judged_case_is_committed_and_judged_the_same_on_the_server(honest_run):
    spec, document, store = honest_run
    judged = [c for c in document["cases"] if c["status"] in ("pass", "fail")]
    ids = [e["id"] for e in document["commitment"]["outputs"]]
    assert len(ids) == len(judged) > 10
    context = RevealContext(document, spec)
    for output_id in ids:
        assert judgeable(context, output_id) is None
        verdict = judge_output(context, output_id, store.get(output_id))
        assert verdict["agrees"], (output_id, verdict)


def test_a_wrong_output_reported_as_passing_is_judged_a_failure_by_the_server(honest_run):
    spec, document, store = honest_run
    context = RevealContext(document, spec)
    entry = next(
        e
        for e in document["commitment"]["outputs"]
        if e["id"].startswith("conformance/cumsum/float32/") and e["shape"] and 0 not in e["shape"]
    )
    honest = store.get(entry["id"])
    wrong = honest + 0.5
    verdict = judge_output(context, entry["id"], wrong)
    assert verdict["runner_status"] == "pass" and verdict["server_status"] == "fail" and not verdict["agrees"]
    wrong_dtype = judge_output(context, entry["id"], honest.to(torch.float64))
    assert wrong_dtype["server_status"] == "fail"
