"""Fixtures shared by the Django test packages: isolated media and throttles, the cast, token clients."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

LOCALE_DIR = Path(__file__).resolve().parent.parent / "locale"


# Under pytest-xdist (`make test-fast`: `pytest -n auto`) each worker process runs its share of the tests;
# xdist names it in PYTEST_XDIST_WORKER (gw0, gw1, ...). pytest-django gives each worker a database of
# its own (test_<name>_gw0, ...).
XDIST_WORKER = os.environ.get("PYTEST_XDIST_WORKER")
# tests/real_documents.py SHARED_DIR_ENV (not imported here: that module imports torch and the apps).
REAL_DOCUMENTS_ENV = "REAL_DOCUMENTS_DIR"


def pytest_configure(config):
    """One torch thread per xdist worker: the workers already fill the cores, and torch's default (a
    thread per core) in each of them would oversubscribe the host, where OpenMP's barriers then cost
    more than the arithmetic (see REVEAL_TORCH_THREADS in apps/runs/services/reveal.py).

    The controlling process names the session's directory of real runner documents before it starts
    the workers (they inherit the variable): a background producer started after collection runs the
    tiny plan there, and every test process reads what it wrote (tests/real_documents.py). The
    controlling process ends that producer, if it still runs, when the session ends."""
    _whitenoise_scans_the_static_files_once()
    if XDIST_WORKER:
        import torch

        torch.set_num_threads(1)
        return
    if not os.environ.get(REAL_DOCUMENTS_ENV):
        directory = tempfile.mkdtemp(prefix="real-documents-")
        os.environ[REAL_DOCUMENTS_ENV] = directory

        def cleanup():
            _stop_producer(Path(directory))
            _drop_template_database(Path(directory))
            shutil.rmtree(directory, ignore_errors=True)
            os.environ.pop(REAL_DOCUMENTS_ENV, None)

        config.add_cleanup(cleanup)


# The settings WhiteNoise's middleware reads when it maps the static files (whitenoise/middleware.py).
_WHITENOISE_SETTINGS = (
    "DEBUG",
    "FORCE_SCRIPT_NAME",
    "INSTALLED_APPS",
    "STATIC_ROOT",
    "STATIC_URL",
    "STATICFILES_DIRS",
    "STATICFILES_FINDERS",
    "WHITENOISE_ADD_HEADERS_FUNCTION",
    "WHITENOISE_ALLOW_ALL_ORIGINS",
    "WHITENOISE_AUTOREFRESH",
    "WHITENOISE_CHARSET",
    "WHITENOISE_IMMUTABLE_FILE_TEST",
    "WHITENOISE_INDEX_FILE",
    "WHITENOISE_MAX_AGE",
    "WHITENOISE_MIMETYPES",
    "WHITENOISE_ROOT",
    "WHITENOISE_STATIC_PREFIX",
    "WHITENOISE_USE_FINDERS",
)


def _whitenoise_scans_the_static_files_once() -> None:
    """Every Django test client loads the middleware again, and WhiteNoise's (WHITENOISE_USE_FINDERS)
    then lists and stats every static file of the finders again: a tenth of the CPU of the API tests
    (session 26, tests/registry/test_authorization.py profiled). In a test process the map of URLs to
    files is built once per value of the settings it depends on, then shared by the middleware
    instances (each still serves it as in production); a test that changes one of those settings gets
    a map of its own."""
    from django.conf import settings
    from whitenoise.middleware import WhiteNoiseMiddleware

    scan = WhiteNoiseMiddleware.add_files_from_finders
    if getattr(scan, "shared_by_the_tests", False):
        return
    maps: dict[str, dict] = {}

    def add_files_from_finders(self) -> None:
        key = repr([getattr(settings, name, None) for name in _WHITENOISE_SETTINGS])
        if key not in maps:
            before = dict(self.files)
            scan(self)
            maps[key] = {url: file for url, file in self.files.items() if before.get(url) is not file}
        self.files.update(maps[key])

    add_files_from_finders.shared_by_the_tests = True
    WhiteNoiseMiddleware.add_files_from_finders = add_files_from_finders


# What a test needs of tests/real_documents.py, found from the names its module imports from there:
# nothing, the tiny plan's documents, or the collectives document too.
NO_DOCUMENTS, DOCUMENTS, COLLECTIVES = 0, 1, 2
REAL_DOCUMENTS_MODULE = "tests.real_documents"
_PRODUCER = None


def real_documents_need(item) -> int:
    module = getattr(item, "module", None)
    if module is None or REAL_DOCUMENTS_MODULE not in sys.modules:
        return NO_DOCUMENTS
    names = {
        name
        for name, value in vars(module).items()
        if value is sys.modules[REAL_DOCUMENTS_MODULE]
        or getattr(value, "__module__", None) == REAL_DOCUMENTS_MODULE
    }
    if not names:
        return NO_DOCUMENTS
    return COLLECTIVES if "runner_collectives_document" in names else DOCUMENTS


def pytest_collection_modifyitems(session, config, items):
    """The tests that use the real runner's documents run last (a stable sort: the same order in every
    xdist worker, as xdist requires), and the first test process to collect such tests starts the
    background producer of those documents (tests/real_documents.py), so the plan runs while the tests
    that need no documents do."""
    needs = {item.nodeid: real_documents_need(item) for item in items}
    items.sort(key=lambda item: needs[item.nodeid])
    if config.option.collectonly or not any(needs.values()):
        return
    from tests.real_documents import start_background_producer

    global _PRODUCER  # referenced while it runs; the controlling process ends it with the session
    _PRODUCER = start_background_producer(collectives=COLLECTIVES in needs.values())


def pytest_unconfigure(config):
    """The producer this process started is reaped if it has finished (its CPU time then counts in this
    process's children, and no zombie is left); one still running is the controlling process's to end."""
    if _PRODUCER is not None:
        _PRODUCER.poll()


def _stop_producer(directory: Path) -> None:
    """Ends the session's background producer (its process group: the collectives ranks too) if it is
    still running: the session is over, its products unused."""
    try:
        pid = int((directory / "producer.pid").read_text())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        # Right after its exec the kernel may show an empty command line for a moment (seen here once
        # in a few runs when the session ended just after the start): read again before judging it.
        for _ in range(50):
            if cmdline:
                break
            time.sleep(0.1)
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return  # never started, or already gone
    if b"tests.produce_real_documents" in cmdline and str(directory).encode() in cmdline:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)


@pytest.fixture(scope="session", autouse=True)
def _worker_database_from_a_template(request):
    """Under xdist on PostgreSQL, the first worker to get here creates and migrates the session's test
    database once (test_<name>, as a run without xdist) and every worker clones its own from it
    (test_<name>_gw0, ...: CREATE DATABASE ... TEMPLATE, as Django's parallel test runner does),
    instead of each worker running every migration (20-25 s of CPU each, session 24). The controlling
    process drops the template when the session ends. Without xdist, with --reuse-db or on another
    database, pytest-django creates the database as it always does."""
    if not XDIST_WORKER or not os.environ.get(REAL_DOCUMENTS_ENV) or request.config.getvalue("reuse_db"):
        yield
        return
    from django.conf import settings
    from django.db import connections

    creation = connections["default"].creation
    if connections["default"].vendor != "postgresql":
        yield
        return
    create_test_db = creation.create_test_db
    session_dir = Path(os.environ[REAL_DOCUMENTS_ENV])

    def create_from_template(verbosity=1, autoclobber=False, serialize=True, keepdb=False):
        if keepdb:
            return create_test_db(verbosity, autoclobber, serialize, keepdb)
        connection = creation.connection
        test = connection.settings_dict["TEST"]
        clone = creation._get_test_db_name()  # pytest-django's test_<name>_<worker>
        template = clone.removesuffix(f"_{XDIST_WORKER}")
        with open(session_dir / "database.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            ready = session_dir / TEMPLATE_DATABASE
            if not ready.is_file():
                test["NAME"] = template
                try:
                    create_test_db(verbosity, autoclobber=True, serialize=False, keepdb=False)
                finally:
                    test["NAME"] = clone
                ready.write_text(template)
            connection.settings_dict["NAME"] = template
            creation._clone_test_db(XDIST_WORKER, verbosity)  # closes the connection to the template
        connection.settings_dict["NAME"] = clone
        settings.DATABASES[connection.alias]["NAME"] = clone
        if serialize:
            connection._test_serialized_contents = creation.serialize_db_to_string()
        return clone

    creation.create_test_db = create_from_template
    yield
    creation.create_test_db = create_test_db


TEMPLATE_DATABASE = "database.template"  # in the session's directory: the template's name, once made


def _drop_template_database(directory: Path) -> None:
    try:
        template = (directory / TEMPLATE_DATABASE).read_text()
    except OSError:
        return
    from django.db import connections

    connections["default"].creation._destroy_test_db(template, verbosity=0)


def pytest_sessionstart(session):
    """The translation catalogues compiled as `make install` does (the .mo are not committed), so a
    bare `pytest` after editing a .po tests the catalogue on disk, never a stale or missing .mo."""
    if XDIST_WORKER:
        return  # the controlling process compiled them before it started the workers
    for po in LOCALE_DIR.glob("*/LC_MESSAGES/*.po"):
        mo = po.with_suffix(".mo")
        if mo.exists() and mo.stat().st_mtime >= po.stat().st_mtime:
            continue
        msgfmt = shutil.which("msgfmt")
        if msgfmt is None:
            raise pytest.UsageError(
                "msgfmt (GNU gettext) is needed to compile locale/*.po: apt install gettext"
            )
        subprocess.run([msgfmt, "--check", "-o", str(mo), str(po)], check=True)


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    """Uploaded files go to a fresh directory per test, never to var/."""
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


@pytest.fixture(autouse=True)
def signing_key_dir(settings, tmp_path):
    """Signing keys, and beside them the audit chain key and checkpoints, go to a fresh directory per
    test, never to var/: a checkpoint left there by one test would name a key the next one lacks."""
    settings.CERT_SIGNING_KEY_DIR = tmp_path / "signing-keys"
    return settings.CERT_SIGNING_KEY_DIR


@pytest.fixture(autouse=True)
def _default_language():
    """Each test starts in the default language. LocaleMiddleware activates a request's language in the
    test's thread and nothing deactivates it, so one zh-hans request would translate the next test's
    messages (a ranking test matching English failed after a zh-hans sweep)."""
    from django.utils import translation

    translation.deactivate()
    yield
    translation.deactivate()


@pytest.fixture(autouse=True)
def _fresh_throttles(request):
    """Throttle counters live in the cache; one test's requests must not throttle the next.

    The cache is a database table (settings.CACHES), so only tests with a database touch it: a
    transactional test's rows survive it, a plain one's are rolled back with its transaction.
    """
    names = set(request.fixturenames)
    if names & {"transactional_db", "live_server"}:
        request.getfixturevalue("transactional_db")
    elif "db" in names:
        request.getfixturevalue("db")
    elif request.node.get_closest_marker("django_db") is None:
        return  # no database: nothing here can have counted anything
    from django.core.cache import cache

    cache.clear()


@pytest.fixture
def aia12(db):
    """AIA 1.2 as shipped, loaded (a test module may define its own, e.g. a changed copy)."""
    from apps.runs.services.programs import PROGRAMS_DIR, program_load

    program, _ = program_load(definition=json.loads(Path(PROGRAMS_DIR, "aia-1.2.json").read_text()))
    return program


@pytest.fixture
def cast(db):
    """Organizations and users of every role: the owner, a colleague, a foreign vendor, and the rest
    (tests.factories.make_cast: three INSERTs, the rows the factories make)."""
    from tests.factories import make_cast

    return make_cast()


@pytest.fixture
def client_for(db):
    """`client_for(user)`: an API client with a real Bearer token of `user`; `client_for(None)`: anonymous."""
    from rest_framework.test import APIClient

    from apps.accounts.services import api_token_create

    def make(user):
        client = APIClient()
        if user is not None:
            _, token = api_token_create(user=user, name="test")
            client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
        return client

    return make


# In CI (REQUIRE_SERVICES=1, set by .ci/run) an integration or browser test that skips because a
# broker, PostgreSQL or Chromium is missing is a failure: a green run must mean those paths ran.
REQUIRE_SERVICES = os.environ.get("REQUIRE_SERVICES") == "1"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if (
        REQUIRE_SERVICES
        and report.skipped
        and not hasattr(report, "wasxfail")  # a known bug marked xfail(strict=True) still ran
        and any(item.get_closest_marker(name) for name in ("integration", "browser"))
    ):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped, but REQUIRE_SERVICES=1 requires it to run: {reason}"
    return report
