"""A real broker for tests without a server: kombu's filesystem transport (the embedded default's)
in a test's own folder, and a reader of the messages published to it."""

from __future__ import annotations

import base64
import json
from contextlib import contextmanager
from pathlib import Path


def filesystem_options(folder: Path) -> dict:
    for name in ("queue", "control"):
        (folder / name).mkdir(parents=True, exist_ok=True)
    return {
        "data_folder_in": str(folder / "queue"),
        "data_folder_out": str(folder / "queue"),
        "control_folder": str(folder / "control"),
        "store_processed": False,
    }


def point_at(app, url: str, options: dict, read_write: tuple | None = None) -> None:
    """Make a Celery app publish to this broker from now on (dropping connections to any other).

    Celery prefers the CELERY_BROKER_URL environment variable (set in CI) over `broker_url`, but not over
    `broker_read_url`/`broker_write_url`: those are set too (restored from `read_write`)."""
    app.conf.broker_url, app.conf.broker_transport_options = url, options
    app.conf.broker_read_url, app.conf.broker_write_url = (url, url) if read_write is None else read_write
    drop_connections(app)


def drop_connections(app) -> None:
    """Close the app's broker connections and forget them.

    `app.pool` is kombu's process-wide pool for the broker URL (`kombu.pools.connections[...]`), cached
    by URL: closed but left there, it would be handed back on the next switch to the same URL, and
    every publish would fail with "Acquire on closed pool". `kombu.pools.reset()` closes and forgets."""
    from kombu import pools

    pools.reset()
    app._pool = None
    app.amqp._producer_pool = None


@contextmanager
def filesystem_broker(app, folder: Path, settings=None):
    saved = (
        app.conf.get("broker_url"),
        dict(app.conf.broker_transport_options or {}),
        (app.conf.get("broker_read_url"), app.conf.get("broker_write_url")),
    )
    options = filesystem_options(folder)
    if settings is not None:
        settings.CELERY_BROKER_URL, settings.CELERY_BROKER_TRANSPORT_OPTIONS = (
            "filesystem://localhost//",
            options,
        )
    point_at(app, "filesystem://localhost//", options)
    try:
        yield options
    finally:
        point_at(app, *saved)


def published(folder: Path, queue: str) -> list[dict]:
    """The messages waiting on `queue`, oldest first: {"task", "id", "expires", "args", "kwargs", "embed"}."""
    found = []
    for path in sorted((folder / "queue").glob(f"*.{queue}.msg")):
        if path.name.partition(".")[2] != f"{queue}.msg":
            continue
        message = json.loads(path.read_text())
        body = message["body"]
        if message.get("properties", {}).get("body_encoding") == "base64":
            body = base64.b64decode(body)
        args, kwargs, embed = json.loads(body)
        headers = message.get("headers", {})
        found.append(
            {
                "task": headers.get("task"),
                "id": headers.get("id"),
                "expires": headers.get("expires"),
                "args": args,
                "kwargs": kwargs,
                "embed": embed,
            }
        )
    return found
