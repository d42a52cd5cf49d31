"""`make run` ends with the demo logins and the URL together, printed once the portal answers, and
says honestly where the local CPU's demo certification stands (issue 17, item 7)."""

from __future__ import annotations

import http.server
import threading
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

pytestmark = pytest.mark.django_db


@pytest.fixture
def portal():
    """A real HTTP server on 127.0.0.1 answering 200 to GET, like the portal once it serves."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"portal")

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


@pytest.fixture
def credentials(settings, tmp_path):
    settings.VAR_DIR = tmp_path
    (tmp_path / "demo-credentials.txt").write_text("acme-engineer s3cret-1\nreviewer s3cret-2\n")


def banner(*args) -> list[str]:
    out = StringIO()
    call_command("demo_banner", *args, stdout=out)
    return out.getvalue().rstrip("\n").splitlines()


def test_the_last_lines_are_the_logins_and_the_url_once_the_portal_answers(portal, credentials):
    lines = banner(portal, "--certification-log", "var/demo-certification.log")
    assert lines[-1].startswith(f"Portal: {portal} ") and "did not answer" not in lines[-1]
    assert lines[-4].startswith("Demo logins") and "demo-credentials.txt" in lines[-4]
    assert lines[-3].split() == ["acme-engineer", "s3cret-1"]
    assert lines[-2].split() == ["reviewer", "s3cret-2"]
    # No campaign yet: the certification is said to be starting in the background, not done.
    assert "starting in the background" in lines[-5] and "var/demo-certification.log" in lines[-5]


def test_a_portal_that_does_not_answer_is_said_so(credentials):
    lines = banner("http://127.0.0.1:9/", "--wait", "1")
    assert lines[-1].startswith("Portal: http://127.0.0.1:9/") and "did not answer within 1 s" in lines[-1]


def test_a_campaign_that_cannot_be_certified_is_reported_as_such(portal, credentials, cast, awaiting):
    from apps.certificates.models import CriterionOutcome
    from apps.registry.models import HardwareTarget

    campaign = awaiting()
    HardwareTarget.objects.filter(pk=campaign.target_id).update(slug="local-cpu")
    result = campaign.criterion_results.filter(blocker=True).first()
    type(result).objects.filter(pk=result.pk).update(outcome=CriterionOutcome.FAIL)
    lines = banner(portal)
    assert (
        f"awaits review but cannot be certified (a blocker failed): {portal}campaigns/{campaign.pk}/"
        in (lines[-5])
    )


def test_the_background_certification_needs_the_seeded_registry(settings, tmp_path):
    settings.VAR_DIR = tmp_path
    with pytest.raises(CommandError, match="seed_demo --skip-certification"):
        call_command("seed_demo", "--certification-only", stdout=StringIO())
