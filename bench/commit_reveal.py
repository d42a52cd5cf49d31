"""Benchmark: what the commit–reveal round adds to a campaign's platform-side time.

One real campaign under AIA 1.2 (baseline) is fed the real runner's documents of this CPU (the tiny
plan of tests/real_documents.py: conformance, performance and a BERT model), through the platform's
real services: submission, ingestion of the three signed documents, the reveal of each (drawn after
the commitment is stored, answered by the runner from its output store, judged by the platform) and
evaluation. The runner's own work (packing the revealed outputs) is not the platform's and is left
out. The round's platform cost is the commitment coverage check, the draw and the judging of the
revealed outputs (OutputReveal.server_seconds); it is printed as a ratio of the rest of the
campaign's platform time (target: at most 10%). Uses its own database ("bench_reveal").

    .venv/bin/python bench/commit_reveal.py [--rounds 3] [--url postgresql://postgres@127.0.0.1:5432]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

from benchdb import ensure_database

ROOT = Path(__file__).resolve().parent.parent
TARGET_RATIO = 0.10


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--url", default="postgresql://postgres@127.0.0.1:5432")
    parser.add_argument("--level", default="baseline")
    args = parser.parse_args()
    ensure_database(args.url, "bench_reveal")
    os.environ["DATABASE_URL"] = f"{args.url}/bench_reveal"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "certification.settings")
    os.environ.setdefault("SECRET_KEY", "bench")
    sys.path.insert(0, str(ROOT))
    import tempfile

    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    settings.MEDIA_ROOT = Path(tempfile.mkdtemp(prefix="bench-media-"))
    settings.CERT_SIGNING_KEY_DIR = Path(tempfile.mkdtemp(prefix="bench-keys-"))
    call_command("migrate", verbosity=0)

    import runners.worker as runner_worker
    from apps.accounts.models import OrganizationKind
    from apps.runs.models import OutputReveal, RevealState
    from apps.runs.services.programs import PROGRAMS_DIR, program_load
    from apps.runs.services.reveal import commitment_problems
    from tests.factories import OrganizationFactory
    from tests.real_documents import campaign_from_runner, runner_documents

    started = time.perf_counter()
    real = runner_documents()  # the runner's side: its suites on this CPU (not platform time)
    print(f"runner documents produced in {time.perf_counter() - started:.1f}s (runner side, not counted)")
    program, _ = program_load(definition=json.loads(Path(PROGRAMS_DIR, "aia-1.2.json").read_text()))
    runner_side = 0.0
    answer = runner_worker.reveal_answer

    def timed_answer(*a, **kw):  # the runner host packing its outputs: its time, not the platform's
        nonlocal runner_side
        t = time.perf_counter()
        try:
            return answer(*a, **kw)
        finally:
            runner_side += time.perf_counter() - t

    runner_worker.reveal_answer = timed_answer
    ratios, totals, rounds = [], [], []
    for index in range(args.rounds):
        vendor = OrganizationFactory(kind=OrganizationKind.VENDOR)
        runner_side = 0.0
        t = time.perf_counter()
        campaign = campaign_from_runner(vendor=vendor, program=program, level=args.level)
        wall = time.perf_counter() - t
        reveals = list(OutputReveal.objects.filter(job__campaign=campaign))
        t = time.perf_counter()
        for suite in ("conformance", "performance", "model"):
            commitment_problems(document=real.documents[suite])
        coverage_s = time.perf_counter() - t
        reveal_s = sum(r.server_seconds or 0.0 for r in reveals) + coverage_s
        platform_s = wall - runner_side
        ratio = reveal_s / (platform_s - reveal_s)
        states = sorted(r.state for r in reveals)
        assert states == [RevealState.VERIFIED] * 3, [(r.job.suite, r.findings) for r in reveals]
        requested = sum(len(r.requested) for r in reveals)
        print(
            f"round {index + 1}: campaign platform {platform_s:.2f}s, of which commit–reveal {reveal_s:.3f}s "
            f"({requested} outputs revealed) -> +{ratio:.1%} over the campaign without it "
            f"(runner packing {runner_side:.3f}s not counted)"
        )
        ratios.append(ratio)
        totals.append(platform_s)
        rounds.append(reveal_s)
    median = statistics.median(ratios)
    verdict = "OK" if median <= TARGET_RATIO else "ABOVE TARGET"
    print(
        f"commit–reveal adds {median:.1%} (median of {args.rounds}) to a campaign's platform-side time "
        f"({statistics.median(rounds):.3f}s of {statistics.median(totals):.2f}s); target <= {TARGET_RATIO:.0%}: {verdict}"
    )
    return 0 if median <= TARGET_RATIO else 1


if __name__ == "__main__":
    sys.exit(main())
