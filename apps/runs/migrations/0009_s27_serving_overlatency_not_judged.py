"""Session 27: a serving case's mismatch fraction is kept only where LoadGen judged it.

A serving scenario's case carries LoadGen's count of queries over the latency bound as its mismatch
fraction. Documents signed before session 26 recorded it for every scenario, and for a decoder's Server
run in token-latency mode (the H200 llama: 1425 of 1425 queries over a bound LoadGen did not judge it
by); ingestion now keeps it only for a Server run judged by its query latency, read from the model's
digested LoadGen summary (runners/serving_bound.py overlatency_judged, as ingestion applies it). This applies
that rule to the rows already stored: the signed documents are untouched, only the queryable copy of
their cases is corrected. A row whose document cannot be read keeps no fraction (not shown as judged).
"""

import json

from django.db import migrations

SCENARIO_CASES = ("serving_SingleStream", "serving_MultiStream", "serving_Server", "serving_Offline")


def forwards(apps, schema_editor):
    from apps.runs.services.ingestion import serving_server_summaries
    from runners.serving_bound import overlatency_judged

    CaseResult = apps.get_model("runs", "CaseResult")
    ResultDocument = apps.get_model("runs", "ResultDocument")
    rows = CaseResult.objects.filter(case__in=SCENARIO_CASES, mismatch_fraction__isnull=False)
    for document_id in rows.values_list("document_id", flat=True).distinct().order_by():
        document = ResultDocument.objects.get(pk=document_id)
        try:
            with document.content.open("rb") as handle:
                content = json.loads(handle.read())
        except (OSError, ValueError):
            content = None
        summaries = serving_server_summaries(content) if isinstance(content, dict) else {}
        for row in rows.filter(document_id=document_id):
            if not overlatency_judged(row.case.removeprefix("serving_"), summaries.get(row.kernel)):
                row.mismatch_fraction = None
                row.save(update_fields=["mismatch_fraction"])


class Migration(migrations.Migration):
    dependencies = [("runs", "0008_s22_reveal_reveal_plan")]

    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
