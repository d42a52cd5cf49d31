"""Declared specifications of well-known accelerators (vendors' datasheet claims, not certified)."""

from __future__ import annotations

import csv
import re
from pathlib import Path

from apps.registry.models import PEAK_FIELDS

REFERENCE_CSV = Path(__file__).parent / "data" / "accelerators.csv"

# Where each reference vendor's parts are fabricated and assembled, as publicly reported.
VENDOR_COUNTRIES = {"NVIDIA": ("TW", "TW"), "AMD": ("TW", "TW"), "Huawei": ("CN", "CN")}


def _number(text: str) -> float | None:
    return float(text) if text.strip() else None


def _process_nm(text: str) -> float:
    match = re.search(r"(\d+(?:\.\d+)?)", text)
    return float(match.group(1)) if match else 7.0


def reference_chips() -> list[dict]:
    """Rows of the reference CSV as keyword arguments for `chip_create` (plus the vendor name)."""
    rows = []
    with REFERENCE_CSV.open(newline="") as handle:
        for row in csv.DictReader(handle):
            fab, assembly = VENDOR_COUNTRIES.get(row["vendor"], ("US", "US"))
            peaks = {
                key: value
                for key, column in PEAK_FIELDS.items()  # the CSV's columns are the model's field names
                if (value := _number(row[column])) is not None
            }
            rows.append(
                {
                    "vendor_name": row["vendor"],
                    "sku": row["sku"],
                    "name": row["name"],
                    "architecture": row["process"],
                    "process_node_nm": _process_nm(row["process"]),
                    "die_area_mm2": _number(row["die_area_mm2"]),
                    "memory_gib": _number(row["memory_gib"]) or 0,
                    "memory_bandwidth_gbs": _number(row["memory_bw_gbs"]),
                    "tdp_w": _number(row["tdp_w"]) or 1,
                    "data_center": row["data_center"].strip().lower() == "yes",
                    "fab_country": fab,
                    "assembly_country": assembly,
                    "spec_source": f"{row['source']} (confidence: {row['confidence']})",
                    "declared_peak": peaks,
                }
            )
    return rows
