"""Every portal page in zh-hans (issue 17, item 1): a reader of Chinese meets no English sentence.

Each page every role can open (tests/portal/conftest.py: portal_pages) is rendered with
Accept-Language zh-CN; its visible text (titles, labels, buttons, alt and aria texts included; <code>,
<pre> and <script> left out) is split into text nodes, and a node that still holds a run of English
words is untranslated unless it is data: a value the database holds (a chip's name, a vendor, a
reason a reviewer typed) or a token of the field (units, dtypes, API and standard names). The
catalogue check (compare against the .po) says which: a node that is a msgid of the catalogue was
translated there but not shown translated; any other is a string never marked for translation. None is
allowed: program and rule data and the texts recorded at evaluation (criterion explanations, the judge's
details, a campaign's reason, a requirement's line) are shown through certification/recorded_text.py.

And `makemessages` (as the Makefile's `messages` target runs it) finds no msgid that the committed
catalogue lacks: every marked string is in the .po, so none ships untranslated."""

from __future__ import annotations

import html
import os
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]
PO = ROOT / "locale" / "zh_Hans" / "LC_MESSAGES" / "django.po"
ENGLISH_RUN = re.compile(r"[A-Za-z][a-z]+(?:[ '’-][a-z]+){1,}")  # two or more English words in a row
# Words of the field that stay as they are in Chinese text: units, standards, product and API names.
TERMS = re.compile(
    r"\b(?:TFLOP/s|TOP/s|GB/s|GiB|ms|sha256|Ed25519|RFC \d+|JSON|CSV|API|MLPerf Inference|MLPerf|LoadGen|Server|Offline|"
    r"VALID|INVALID|PyTorch|torch|webhook-\w+|Standard Webhooks|float\w*|bfloat16|int8|dtype|p\d\d|"
    r"AIA|TPOT|QPS|TDP|CV|ID|URL|UTC|Asia/Shanghai|zip|safetensors|Celery beat|nccl-tests|"
    r"text-embedding|llm-decode|image-classification|bert-encoder|llama-decoder|resnet-cnn|"
    r"date-time)\b"  # date-time: a JSON Schema format's name, as a schema problem quotes it
)
# A cited work's title inside Chinese quotation marks (“…”, 《…》) stays in the language it was published in.
CITED_TITLE = re.compile(r"“[^”]*”|《[^》]*》")
SKIP = {"code", "pre", "script", "style", "kbd", "samp", "option"}  # <option>: zone names, dtype codes


class VisibleText(HTMLParser):
    """Text nodes a reader meets, plus title, alt, placeholder and aria-label attributes."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.nodes: list[str] = []
        self._skipping: list[str] = []

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name in ("alt", "placeholder", "aria-label", "title") and value:
                self.nodes.append(value)
        if tag in SKIP:
            self._skipping.append(tag)

    def handle_endtag(self, tag):
        if self._skipping and self._skipping[-1] == tag:
            self._skipping.pop()

    def handle_data(self, data):
        if not self._skipping and data.strip():
            self.nodes.append(" ".join(data.split()))


def catalogue_msgids(po: Path = PO) -> set[str]:
    text = po.read_text(encoding="utf-8")
    ids = set()
    for block in re.findall(r'^msgid ((?:".*"\n)+)', text, re.M):
        ids.add("".join(re.findall(r'"(.*)"', block)).replace('\\"', '"').replace("\\n", "\n"))
    return ids


def data_values() -> set[str]:
    """Text the database holds and a page shows as it was entered: never a msgid."""
    from django.contrib.auth import get_user_model

    from apps.accounts.models import Organization
    from apps.certificates.models import Certificate, Program
    from apps.procurement.models import Tender
    from apps.registry.models import Chip, HardwareTarget, ModelArtifact, Runner
    from apps.runs.models import Measurement

    values: set[str] = set()
    for model, fields in [
        (Organization, ["name"]),
        (Chip, ["name", "architecture", "spec_source"]),
        (HardwareTarget, ["slug", "description", "host_cpu", "driver_version", "runtime_version"]),
        (Runner, ["name"]),
        (Measurement, ["name"]),  # a benchmark's name as the runner's document gives it
        (ModelArtifact, ["name", "license"]),
        (Program, ["title", "code"]),
        (Tender, ["title", "description"]),
    ]:
        for row in model.objects.values_list(*fields):
            values.update(str(v) for v in row if v)
    values.update(Certificate.objects.values_list("serial", flat=True))
    values.update(get_user_model().objects.values_list("username", flat=True))
    return values


def untranslated(page: str, *, data: set[str]) -> list[str]:
    parser = VisibleText()
    parser.feed(page)
    found = []
    for node in parser.nodes:
        rest = html.unescape(node)
        for value in sorted(data, key=len, reverse=True):
            rest = rest.replace(value, " ")
        rest = TERMS.sub(" ", CITED_TITLE.sub(" ", rest))
        if ENGLISH_RUN.search(rest):
            found.append(node)
    return found


class ZhSweep:
    """A strict sweep of pages read in zh-hans: every untranslated text node, with the pages it is on.
    Made once the data the pages show exists (the data values are read then)."""

    def __init__(self) -> None:
        self.data = data_values()
        self.msgids = catalogue_msgids()
        self.findings: dict[str, set[str]] = {}

    def visit(self, path: str, response) -> None:
        assert response["Content-Language"] == "zh-hans", path
        for text in untranslated(response.content.decode(), data=self.data):
            self.findings.setdefault(text, set()).add(path)

    def get(self, client: Client, path: str, *, status: int = 200):
        response = client.get(path)
        assert response.status_code == status, (path, response.status_code)
        self.visit(path, response)
        return response

    def text(self, where: str, text: str) -> None:
        """A text shown outside a page (an API answer in the reader's language), swept the same way."""
        for found in untranslated(f"<p>{html.escape(text)}</p>", data=self.data):
            self.findings.setdefault(found, set()).add(where)

    def report(self) -> list[str]:
        return [
            f"{'in the catalogue, not shown translated' if text in self.msgids else 'not marked'}: {text!r} "
            f"on {', '.join(sorted(paths))}"
            for text, paths in sorted(self.findings.items())
        ]


def test_every_portal_page_in_zh_hans_has_no_untranslated_string(portal_pages):
    sweep = ZhSweep()
    for user, paths in portal_pages.items():
        client = Client(HTTP_ACCEPT_LANGUAGE="zh-CN")
        if user is not None:
            client.force_login(user)
        for path in paths:
            sweep.get(client, path)
    report = sweep.report()
    print(f"untranslated strings: {len(report)}")
    assert report == [], f"{len(report)} untranslated strings:\n" + "\n".join(report)


def test_makemessages_finds_no_msgid_the_catalogue_lacks(tmp_path):
    """Run as the Makefile's `messages` target does, on a copy of the sources and the catalogue (the
    checkout is never written): no msgid that the committed catalogue lacks."""
    if not shutil.which("xgettext"):
        pytest.skip("GNU gettext's xgettext is not installed")
    for name in ("apps", "certification", "templates", "locale"):
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__", "*.mo"))
    shutil.copy(ROOT / "manage.py", tmp_path / "manage.py")
    environment = {**os.environ, "SECRET_KEY": "makemessages-only-" + "x" * 40}
    result = subprocess.run(
        [sys.executable, "manage.py", "makemessages", "--locale", "zh_Hans", "--no-obsolete"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=environment,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    after = catalogue_msgids(tmp_path / "locale" / "zh_Hans" / "LC_MESSAGES" / "django.po")
    assert (
        sorted(after - catalogue_msgids()) == []
    )  # a string marked in code or a template, missing from the .po
