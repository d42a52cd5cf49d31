"""The public list of signed audit checkpoints."""

from __future__ import annotations

from django.http import JsonResponse
from django.views.decorators.http import require_GET

from apps.audit.checkpoints import checkpoints_published


@require_GET
def audit_checkpoints(request):
    """/.well-known/audit-checkpoints.json: the newest signed checkpoints of the audit chain, newest first.

    Each is {"checkpoint": {type, chain_length, head_hash, signed_at, key_id, issuer}, "key_id",
    "signature"}: an Ed25519 signature over the canonical JSON of "checkpoint", checkable with the
    keys at /.well-known/certification-keys.json. Keep copies: a copy held elsewhere shows a later
    rewrite even of the checkpoint files themselves.
    """
    response = JsonResponse({"checkpoints": checkpoints_published()})
    response["Cache-Control"] = "public, max-age=300"
    response["Access-Control-Allow-Origin"] = "*"
    return response
