"""Fixtures of the notification tests: the portal tests' evaluated and certified campaigns, and a
real HTTP receiver on 127.0.0.1 that records what it is sent and answers with the codes it is told."""

from __future__ import annotations

import http.server
import threading
from types import SimpleNamespace

import pytest

from tests.portal.conftest import awaiting, certified, login, program, signing_key_dir  # noqa: F401


@pytest.fixture
def receiver(settings):
    """`receiver.url`, `receiver.requests` (headers, body) and `receiver.codes` (answered in turn, then 200)."""
    settings.WEBHOOK_ALLOW_HTTP = True
    settings.WEBHOOK_ALLOW_PRIVATE_HOSTS = True
    state = SimpleNamespace(requests=[], codes=[])

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            state.requests.append(({k.lower(): v for k, v in self.headers.items()}, body))
            code = state.codes.pop(0) if state.codes else 200
            self.send_response(code)
            self.end_headers()
            self.wfile.write(b"ok" if code < 300 else b"receiver says no")

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hooks"
    yield state
    server.shutdown()
    server.server_close()
