"""Which weights a model document says ran, against the artifacts the campaign registered.

The runner records, per model, the sha256 of the weights file over the very bytes it parsed
(the document's ``models`` section, runners/model_suite). Evidence about other weights, a file
changed on disk after upload, or weights that replaced the upload, is not evidence about the
registered model: such a document is refused.
"""

from __future__ import annotations

from apps.runs.models import Job


def model_weights_problems(*, document: dict, job: Job) -> list[str]:
    """Every way the document's model digests disagree with the job's registered artifact(s)."""
    if job.model_id is not None:
        expected = {job.model.weights_sha256}
    else:
        expected = set(job.campaign.model_artifacts.values_list("weights_sha256", flat=True))
    records = document.get("models")
    if not isinstance(records, list):
        return ["the document records no weights digests"]
    problems: list[str] = []
    loaded = 0
    for record in records:
        if not isinstance(record, dict):
            problems.append("a models item is not an object")
            continue
        name, digest = record.get("name"), record.get("weights_sha256")
        if digest is None:
            if record.get("loaded"):
                problems.append(f"{name}: loaded, but no digest recorded")
            continue
        if digest not in expected:
            problems.append(
                f"{name}: the runner read weights with sha256 {digest}, not the registered artifact's"
            )
        elif record.get("loaded"):
            loaded += 1
    scored = [
        c for c in document.get("cases") or [] if isinstance(c, dict) and c.get("status") in {"pass", "fail"}
    ]
    if (scored or document.get("measurements")) and not loaded:
        problems.append("results are reported, but no registered weights were loaded")
    return problems
