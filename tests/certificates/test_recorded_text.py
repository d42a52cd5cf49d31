"""Texts recorded in English, shown in the reader's language (certification/recorded_text.py, issue 17).

What was judged stays as it was written (English, in the record and the API); the portal renders it in
zh-hans from the phrase and params stored next to it, or, for a record written before those were
stored, from the params the phrase's format reads back out of the English text. A text no phrase knows
shows as it is (or as the catalogue translates it, when it is a msgid: program and rule data)."""

from __future__ import annotations

import copy
import json
import pickle
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.template import Context, Template
from django.utils import translation

from apps.certificates import judge
from apps.procurement.export_control import classify, rule_current
from apps.procurement.requirements import requirement_describe
from apps.runs.services.programs import PROGRAMS_DIR, program_load
from certification import data_msgids
from certification.recorded_text import PHRASES, PLACEHOLDER, SCHEDULE_NAMES, Said, parse, say
from tests.real_documents import campaign_from_runner, stable_gemms

ROOT = Path(__file__).resolve().parents[2]


def zh(text, stored=None):
    with translation.override("zh-hans"):
        return Template("{% load recorded %}{{ text|recorded:stored }}").render(
            Context({"text": text, "stored": stored}, autoescape=False)
        )


def en(text, stored=None):
    with translation.override("en"):
        return Template("{% load recorded %}{{ text|recorded:stored }}").render(
            Context({"text": text, "stored": stored}, autoescape=False)
        )


# Values of the shapes the phrases' patterns name (a JSON value as jsonschema quotes it, a list, a dict,
# a tolerance's name, a count that may be unknown): a sample the rules below miss is the first that fits.
FITTING = (
    "7", "12.50%", "True", "'fast'", "'number', 'null'", "['tiny-bert']", "{'n': 7}", "rtol",
    "2026-11-30T17:00:00+00:00", "(2, 3)", "CNY", "GiB", "W", "%", ">=", "throughput",
    "QPS", "J/query", "p90", "memory", "conformance", "Backend in cpu, cuda", "12 items/s",
    "AIA-1 1.2 level baseline",
)  # fmt: skip


def sample(phrase, name):
    value = _sample(phrase, name)
    pattern = phrase.patterns.get(name)
    if pattern and not re.fullmatch(pattern, value):
        value = next(candidate for candidate in FITTING if re.fullmatch(pattern, candidate))
    return value


def _sample(phrase, name):
    pattern = phrase.patterns.get(name, "")
    if pattern == r"\d+":
        return "7"
    if pattern.endswith("%"):
        return "12%" if pattern.startswith(r"\d") else "12.50%"
    if pattern in (r"\w+", r"\S+"):
        return "bfloat16"
    if pattern.startswith("Fab"):
        return "Fab"
    if pattern.startswith("-?"):  # a number (NUMBER), perhaps with an alternative word
        return "12.5"
    if pattern.startswith(r"\d{4}"):  # a date
        return "2026-11-30"
    if pattern.startswith("TTFT"):
        return "TTFT"
    if pattern.startswith("Product failure"):  # an error class's label
        return "Rejected evidence"
    if pattern.startswith("Job "):
        return "Job 7 model:tiny-bert"
    if pattern == r"[\w-]+":
        return "serving"
    if pattern.startswith("[^;:.]+: "):  # a model's line
        return "tiny-bert: no accepted serving evidence"
    if name == "id":
        return "B2"
    if name in ("speedup", "bound"):
        return "1.250"
    return "some value, with words"


@pytest.mark.parametrize("code", sorted(PHRASES))
def test_every_phrase_reads_back_out_of_its_english_text(code):
    phrase = PHRASES[code]
    params = {name: sample(phrase, name) for name in PLACEHOLDER.findall(phrase.msgid)}
    text = say(code, **params)
    assert isinstance(text, Said) and (text.code, text.params) == (code, params)
    assert parse(str(text)) == (code, params)  # str(): a record read back from the database


@pytest.mark.parametrize("code", sorted(PHRASES))
def test_every_phrase_has_a_translation_with_the_same_values(code):
    phrase = PHRASES[code]
    params = {name: sample(phrase, name) for name in PLACEHOLDER.findall(phrase.msgid)}
    with translation.override("zh-hans"):
        translated = translation.gettext(phrase.msgid)
    assert translated and sorted(PLACEHOLDER.findall(translated)) == sorted(params)
    if PLACEHOLDER.sub("", phrase.msgid).strip(" :"):  # a phrase with words of its own
        assert translated != phrase.msgid


def test_a_said_text_survives_pickle_and_deepcopy():
    text = say("conformance.pass", passed=3, judged=4, rate="75.00%")
    for copied in (pickle.loads(pickle.dumps(text)), copy.deepcopy({"e": text})["e"]):  # noqa: S301 (our own bytes)
        assert copied == text and (copied.code, copied.params) == (text.code, text.params)
    assert json.loads(json.dumps({"e": text})) == {"e": "3 of 4 cases pass (75.00%)."}


def test_an_unknown_text_falls_back_to_itself():
    text = "Reviewed on site; the vendor's lab was visited."
    assert parse(text) is None
    assert zh(text) == text == en(text)
    assert zh(text, {"explanation_code": "no.such.phrase", "explanation_params": {}}) == text


def test_a_judge_detail_renders_in_chinese_and_unchanged_in_english():
    thresholds = judge.Thresholds(
        conformance_min_pass_rate=None,
        unsupported_tolerated=None,
        accuracy={},
        claims_min_ratio=None,
        above_peak_ratio=1.1,
        test01_max_mismatches=0,
        test01_tolerance=None,
        test04_max_speedup=0.1,
        max_unstable_fraction=None,
        spot_check_size=4,
        required_approvals=1,
    )
    verdict = judge.caching_verdict(
        item={"fresh_median_s": 0.002, "repeated_median_s": 0.002}, thresholds=thresholds
    )
    english = "repeat-input speed-up 1.000 (fresh / repeated median), within the bound 1.10: no sign of a result cache"
    assert verdict.detail == english and en(verdict.detail) == english
    assert (
        zh(verdict.detail)
        == "重复输入提速 1.000（新输入 / 重复输入的中位数），在上限 1.10 之内：没有结果缓存的迹象"
    )
    assert zh(english) == zh(verdict.detail)  # read back from the text alone


def test_the_export_control_explanation_and_a_requirement_line_render_in_chinese():
    rule = rule_current()
    result = classify(peaks={"bf16": 989.4}, die_area_mm2=None, data_center=True, rule=rule)
    assert result.explanation[0] == (
        "TPP = 2 x (989.4 / 2) x 16 = 15,830.4 (bf16, the maximum over the declared precisions)."
    )
    assert (
        zh(result.explanation[0]) == "TPP = 2 x (989.4 / 2) x 16 = 15,830.4（bf16，各声明精度中的最大值）。"
    )
    exclusion = next(line for line in result.explanation if line.startswith("Exclusion"))
    assert zh(exclusion) == "排除条款“非为数据中心设计或销售，且 TPP 低于 4800”：不满足。"
    line = requirement_describe(kind="backend", params={"backends": ["cpu", "cuda"]})
    assert line == "Backend in cpu, cuda" and en(line) == line
    assert zh(line) == "后端属于 cpu, cuda"


def test_every_program_and_rule_string_has_a_translation():
    result = subprocess.run(
        [sys.executable, "tools/data_msgids.py", "--check"], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr  # the module lists what the data files hold now
    assert len(data_msgids.MSGIDS) > 50
    with translation.override("zh-hans"):
        untranslated = [m for m in (*data_msgids.MSGIDS, *SCHEDULE_NAMES) if translation.gettext(m) == m]
    assert untranslated == []


def test_program_files_are_untouched_by_their_translation():
    """Translations live in the catalogue: each file's content still loads under its pinned digest."""
    for path in sorted(Path(PROGRAMS_DIR).glob("aia-*.json")):
        definition = json.loads(path.read_text())
        title = definition["levels"][0]["criteria"][0]["title"]
        assert zh(title) != title and en(title) == title


def rewrite_beat_schedules() -> None:
    """Runs again every data migration that writes Celery beat rows (they get_or_create): a transactional
    test that ran earlier in the same process flushes the migrated rows, and the rows are what is judged."""
    import inspect

    from django.apps import apps
    from django.db import connection
    from django.db.migrations.loader import MigrationLoader

    for migration in MigrationLoader(None, ignore_no_migrations=True).disk_migrations.values():
        for operation in migration.operations:
            code = getattr(operation, "code", None)
            if code is not None and "PeriodicTask" in inspect.getsource(code):
                with connection.schema_editor() as editor:
                    code(apps, editor)


@pytest.mark.django_db
def test_every_beat_schedule_name_is_translated():
    from django_celery_beat.models import PeriodicTask

    rewrite_beat_schedules()
    names = set(PeriodicTask.objects.values_list("name", flat=True))
    assert names and names <= set(SCHEDULE_NAMES)
    assert all(zh(name) != name for name in names)


@pytest.mark.slow
def test_a_recorded_explanation_renders_in_chinese_for_zh_hans_and_unchanged_in_english(cast):
    definition = json.loads(Path(PROGRAMS_DIR, "aia-1.0.json").read_text())
    program, _ = program_load(definition=definition)
    campaign = campaign_from_runner(
        vendor=cast.vendor, program=program, submitted_by=cast.owner, edit=stable_gemms
    )
    results = {r.criterion_id: r for r in campaign.criterion_results.all()}
    conformance = results["B1"]
    stored = conformance.evidence
    assert stored["explanation_code"] == "conformance.pass"
    params = stored["explanation_params"]
    assert (
        conformance.explanation == f"{params['passed']} of {params['judged']} cases pass ({params['rate']})."
    )
    chinese = f"{params['judged']} 个用例中通过 {params['passed']} 个（{params['rate']}）。"
    assert zh(conformance.explanation, stored) == chinese
    assert en(conformance.explanation, stored) == conformance.explanation
    # A record written before the phrase was stored: the same Chinese, read back from the English text.
    old = {k: v for k, v in stored.items() if not k.startswith("explanation_")}
    assert zh(conformance.explanation, old) == chinese
    # The criterion's title (program data, a catalogue msgid) and the campaign's reason.
    assert zh(conformance.title) == "算子符合性，float32 与 bfloat16"
    assert campaign.state_reason == "Every blocker criterion passes; awaiting review."
    assert zh(campaign.state_reason) == "所有否决项准则均已通过；等待审核。"
    for result in results.values():  # every explanation of the campaign has its phrase
        assert result.evidence.get("explanation_code") in PHRASES, (result.criterion_id, result.explanation)
        assert zh(result.explanation, result.evidence) != result.explanation


def test_the_runners_server_rate_problems_render_in_chinese():
    """runners/serving_rate.py writes these without Django; the portal reads their values back."""
    from runners.serving_rate import above_offline_problem, unsustained_problem

    server = "Scenario : Server\nScheduled samples per second : 711.2\nCompleted samples per second : 379.7\n"
    server += "target_qps : 717.9\n"
    offline = "Scenario : Offline\nSamples per second : 410.2\n"
    for text in (unsustained_problem(server), above_offline_problem(server, offline)):
        assert text and parse(text) is not None, text
        assert en(text) == text and "LoadGen" in text or "QPS" in text
        rendered = zh(text)
        assert rendered != text and ("样本/秒" in rendered), rendered


def test_the_runners_server_bound_problems_render_in_chinese():
    """runners/serving_bound.py writes these without Django; the portal reads their values back."""
    from runners.serving_bound import server_bound

    tokens = (
        "90.00 percentile first token latency (ns)   : 3000000000\n"
        "90.00 percentile time to output token (ns)   : 100000000\n"
        "ttft_latency (ns): 2000000000\ntpot_latency (ns): 200000000\n"
    )
    cases = [
        {},
        {"loadgen_summary": tokens},
        {"loadgen_summary": "ttft_latency (ns): 2000000000\n", "percentile": 0.9},
        {"loadgen_summary": "target_qps : 5\n", "percentile": 0.9},
        {"loadgen_summary": tokens, "percentile": 0.9, "ttft_bound_s": 1.0},
        {"loadgen_summary": tokens, "percentile": 0.99},
        {"loadgen_summary": tokens, "percentile": 0.9},
    ]
    texts = [server_bound(params)[1] for params in cases]
    assert len(set(texts)) == len(cases) and all(texts), texts
    for text in texts:
        assert parse(text) is not None, text
        assert en(text) == text
        rendered = zh(text)
        assert rendered != text and re.search("[\u4e00-\u9fff]", rendered), rendered
