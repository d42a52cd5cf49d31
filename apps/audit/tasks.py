"""Scheduled audit work (queue `platform`, run by a Celery beat row editable in the admin)."""

from __future__ import annotations

from celery import shared_task


@shared_task(name="audit.checkpoint", ignore_result=True)
def checkpoint() -> int:
    """Sign the chain head (skipped when nothing changed); returns the chain length it covers."""
    from apps.audit.checkpoints import audit_checkpoint_take

    return audit_checkpoint_take(skip_unchanged=True).chain_length
