"""The platform's Prometheus histograms, observed by the apps and served by certification/metrics.py.

This module imports no app, so apps.runs can observe them without reaching up the layers
(pyproject.toml, import-linter contracts)."""

from __future__ import annotations

from prometheus_client import Histogram

INGESTION_SECONDS = Histogram(
    "certification_ingestion_seconds",
    "Time to ingest one signed result envelope (verify, validate, spot-check, store)",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)
SPOT_CHECK_SECONDS = Histogram(
    "certification_spot_check_seconds",
    "Time to recompute the sampled cases of one document on the server",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
