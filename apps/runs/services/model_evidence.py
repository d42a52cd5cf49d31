"""Which weights a model document says ran, against the artifacts the campaign registered.

The runner records, per model, the sha256 of the weights file over the very bytes it parsed
(the document's ``models`` section, runners/model_suite). Evidence about other weights, a file
changed on disk after upload, or weights that replaced the upload, is not evidence about the
registered model: such a document is refused.
"""

from __future__ import annotations

from apps.runs.models import Job
from certification.recorded_text import say


def model_weights_problems(*, document: dict, job: Job) -> list[str]:
    """Every way the document's model digests disagree with the job's registered artifact(s)."""
    if job.model_id is not None:
        expected = {job.model.weights_sha256}
    else:
        expected = set(job.campaign.model_artifacts.values_list("weights_sha256", flat=True))
    records = document.get("models")
    if not isinstance(records, list):
        return [say("weights.no_record")]
    problems: list[str] = []
    loaded = 0
    for record in records:
        if not isinstance(record, dict):
            problems.append(say("weights.not_object"))
            continue
        name, digest = record.get("name"), record.get("weights_sha256")
        if digest is None:
            if record.get("loaded"):
                problems.append(say("weights.no_digest", name=name))
            continue
        if digest not in expected:
            problems.append(say("weights.other", name=name, digest=digest))
        elif record.get("loaded"):
            loaded += 1
    scored = [
        c for c in document.get("cases") or [] if isinstance(c, dict) and c.get("status") in {"pass", "fail"}
    ]
    if (scored or document.get("measurements")) and not loaded:
        problems.append(say("weights.none_loaded"))
    return problems
