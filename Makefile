# Two commands on a fresh machine with only python3:  make run  |  make test
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# What running needs (make run), and the test and lint tools on top (make test, make lint).
STAMP := $(VENV)/.installed
STAMP_DEV := $(VENV)/.installed-dev
# The CPU build of torch that lies on this machine's disk; GPU/NPU hosts install their own build.
CONSTRAINTS ?= constraints/local.txt
# uv where it can be had (PATH, the virtualenv, or fetched by pip), else pip; INSTALLER=pip forces pip.
INSTALLER ?= auto
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: install install-dev run test test-fast lint serve migrate demo clean messages

# Translations: the .po catalogues are committed, the .mo compiled here (GNU gettext's msgfmt, through
# Django's compilemessages); `make messages` refreshes the msgids after a template or string changes.
PO_FILES := $(wildcard locale/*/LC_MESSAGES/django.po)
MO_FILES := $(PO_FILES:.po=.mo)

install: $(STAMP) var/secret_key $(MO_FILES)

install-dev: install $(STAMP_DEV)

locale/%/LC_MESSAGES/django.mo: locale/%/LC_MESSAGES/django.po $(STAMP) var/secret_key
	$(PY) manage.py compilemessages --locale $* --ignore '.venv' --ignore 'var' -v0

messages: $(STAMP)
	$(PY) manage.py makemessages --locale zh_Hans --no-obsolete --ignore '.venv' --ignore 'var' --ignore 'tests' --ignore 'bench' --ignore 'runners'

# tools/venv_install.py creates the virtualenv when missing and installs with progress (uv with pip's
# indexes, find-links and constraints of this machine, or pip).
$(STAMP): pyproject.toml $(CONSTRAINTS)
	$(PYTHON) tools/venv_install.py --venv $(VENV) --constraints $(CONSTRAINTS) --installer $(INSTALLER) .
	touch $(STAMP)

# The dev extra (pytest, Playwright, sentence-transformers, ruff, mypy...): after `make run`, the
# first `make test` or `make lint` adds it.
$(STAMP_DEV): $(STAMP)
	$(PYTHON) tools/venv_install.py --venv $(VENV) --constraints $(CONSTRAINTS) --installer $(INSTALLER) '.[dev]'
	touch $(STAMP_DEV)

# A random secret key for this checkout, kept outside the repository (var/ is ignored).
var/secret_key:
	mkdir -p var
	umask 077 && $(PYTHON) -c "import secrets; print(secrets.token_urlsafe(50))" > $@

migrate: install
	$(PY) manage.py migrate --noinput

demo: migrate
	$(PY) manage.py collectstatic --noinput -v0
	$(PY) manage.py seed_demo

# Campaigns run in background worker processes (broker in files under var/broker), never in a request;
# they stop with the server. The demo registry is seeded first; the local CPU's certification (once:
# seed_demo skips it when the CPU has a certificate or a campaign awaiting review) runs in the
# background worker while the portal serves, its output in var/demo-certification.log. The worker's
# log is var/worker.log. The last lines printed, once the portal answers: the logins and the URL.
# The demo always uses its own file broker: a CELERY_BROKER_URL in the environment (a production
# worker's setting, which embedded_worker refuses) is left out of it, with a line saying so.
DEMO := env -u CELERY_BROKER_URL $(PY)
run: migrate
	@if [ -n "$$CELERY_BROKER_URL" ]; then echo "make run uses its own broker under var/broker; CELERY_BROKER_URL is not used by the demo (README, Production, for a real broker)"; fi
	$(PY) manage.py collectstatic --noinput -v0
	$(DEMO) manage.py seed_demo --skip-certification
	@echo "Starting the background worker, the demo certification and the portal..."
	@$(DEMO) manage.py embedded_worker > var/worker.log 2>&1 & WORKER=$$!; \
	$(DEMO) manage.py seed_demo --certification-only > var/demo-certification.log 2>&1 & CERTIFY=$$!; \
	$(DEMO) manage.py demo_banner http://$(HOST):$(PORT)/ --certification-log var/demo-certification.log & BANNER=$$!; \
	trap 'kill $$BANNER $$CERTIFY $$WORKER 2>/dev/null' EXIT INT TERM; \
	$(DEMO) manage.py runserver $(HOST):$(PORT) --noreload

# The tests' bytecode is kept under var/pycache (PYTHONPYCACHEPREFIX), never beside the sources, even
# where PYTHONDONTWRITEBYTECODE is set (as on this project's shared hosts): without it every test
# process, and every interpreter a test starts (device processes, judges, CLI runs), compiles torch,
# Django and the tests from source again, and pytest rewrites every test module's asserts again. Only
# the first run after a change pays that (session 26: 22-26 s of CPU per process to collect the fast
# tests without it, 8-10 s with it; `import torch` 5.4 s against 2.7 s). PYCACHE= turns it off.
PYCACHE ?= $(CURDIR)/var/pycache
PYTEST := $(if $(PYCACHE),PYTHONDONTWRITEBYTECODE= PYTHONPYCACHEPREFIX=$(PYCACHE)) $(PY) -m pytest

test: install-dev
	$(PYTEST) $(PYTEST_ARGS)

# Everything but the slow, integration and browser tests: the loop while editing, spread over one
# pytest-xdist worker per core (at most TEST_WORKERS_MAX; TEST_WORKERS=0 runs them in one process).
TEST_WORKERS ?= auto
TEST_WORKERS_MAX ?= 4
test-fast: install-dev
	$(PYTEST) -m "not slow and not integration and not browser" -n $(TEST_WORKERS) --maxprocesses $(TEST_WORKERS_MAX) $(PYTEST_ARGS)

# The guards CI runs before the tests: style, formatting, import contracts, types (runners/ strict
# and clean, a baseline elsewhere that only shrinks), migrations, and the system checks of a
# production configuration (the project's own included: evaluator, programs, key directory, export rules).
lint: install-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports
	$(PY) .ci/mypy_baseline.py
	$(PY) manage.py makemigrations --check --dry-run
	HTTPS=1 HSTS_INCLUDE_SUBDOMAINS=1 HSTS_PRELOAD=1 $(PY) manage.py check --deploy --fail-level WARNING

clean:
	rm -rf $(VENV) var .pytest_cache
