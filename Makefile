# Two commands on a fresh machine with only python3:  make run  |  make test
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# The CPU build of torch that lies on this machine's disk; GPU/NPU hosts install their own build.
CONSTRAINTS ?= constraints/local.txt
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: install run test serve migrate demo clean

install: $(STAMP) var/secret_key

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

clean:
	rm -rf $(VENV) var .pytest_cache
