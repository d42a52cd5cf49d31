# Two commands on a fresh machine with only python3:  make run  |  make test
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# The CPU build of torch that lies on this machine's disk; GPU/NPU hosts install their own build.
CONSTRAINTS ?= constraints/local.txt
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: install run test test-fast lint serve migrate demo clean messages

# Translations: the .po catalogues are committed, the .mo compiled here (GNU gettext's msgfmt, through
# Django's compilemessages); `make messages` refreshes the msgids after a template or string changes.
PO_FILES := $(wildcard locale/*/LC_MESSAGES/django.po)
MO_FILES := $(PO_FILES:.po=.mo)

install: $(STAMP) var/secret_key $(MO_FILES)

locale/%/LC_MESSAGES/django.mo: locale/%/LC_MESSAGES/django.po $(STAMP) var/secret_key
	$(PY) manage.py compilemessages --locale $* --ignore '.venv' --ignore 'var' -v0

messages: $(STAMP)
	$(PY) manage.py makemessages --locale zh_Hans --no-obsolete --ignore '.venv' --ignore 'var' --ignore 'tests' --ignore 'bench' --ignore 'runners'

$(STAMP): pyproject.toml $(CONSTRAINTS)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -c $(CONSTRAINTS) -e '.[dev]'
	touch $(STAMP)

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
# they stop with the server.
run: demo
	$(PY) manage.py certify acme/local-cpu --level baseline --if-none-pending
	@echo "Portal: http://$(HOST):$(PORT)/   API docs: http://$(HOST):$(PORT)/api/docs/"
	@echo "Log in with a demo user listed above (passwords are kept in var/demo-credentials.txt)."
	$(PY) manage.py embedded_worker & WORKER=$$!; trap 'kill $$WORKER 2>/dev/null' EXIT INT TERM; \
		$(PY) manage.py runserver $(HOST):$(PORT) --noreload

test: install
	$(PY) -m pytest $(PYTEST_ARGS)

# Everything but the slow, integration and browser tests: the loop while editing.
test-fast: install
	$(PY) -m pytest -m "not slow and not integration and not browser" $(PYTEST_ARGS)

# The guards CI runs before the tests: style, formatting, import contracts, types (runners/ strict
# and clean, a baseline elsewhere that only shrinks), migrations, and the system checks of a
# production configuration (the project's own included: evaluator, programs, key directory, export rules).
lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports
	$(PY) .ci/mypy_baseline.py
	$(PY) manage.py makemigrations --check --dry-run
	HTTPS=1 HSTS_INCLUDE_SUBDOMAINS=1 HSTS_PRELOAD=1 $(PY) manage.py check --deploy --fail-level WARNING

clean:
	rm -rf $(VENV) var .pytest_cache
