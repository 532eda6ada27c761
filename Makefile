# Two commands on a fresh machine: `make run` and `make test`. Both set everything up first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=
WEB_BUNDLE := samples/web/vendor/communication-common.js

.PHONY: setup run test test-fast check lock quickstart bench emulator clean chromium loadbalancer upstream-tests

setup: $(VENV)/.installed node_modules/.installed $(WEB_BUNDLE)

$(VENV)/.installed: requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

# The web sample's browser bundle of @azure/communication-common (esbuild, under a second; git-ignored).
$(WEB_BUNDLE): node_modules/.installed samples/web/build.mjs samples/web/src/vendor-entry.js
	node samples/web/build.mjs

# Headless Chromium (Debian's package) for the browser test; only `make test` needs it, not `make run`.
chromium:
	sh scripts/install-chromium.sh

# HAProxy (Debian's package) for the multi-instance rig (tests/fleet, bench --only fleet).
loadbalancer:
	sh scripts/install-loadbalancer.sh

## Azurite + ACS emulator on loopback, then the app on http://127.0.0.1:7071 (func start if installed).
run: setup
	$(PY) -m localdev.run

## Microsoft's own tests of the pinned azure-communication-identity: its sdist from PyPI, tests/ unpacked into
## .local/upstream/ once (sha256-pinned); tests/upstream runs them against the emulator.
upstream-tests: setup
	$(PY) -m tests.upstream.sdist

## The quality bar: format, lint, layers, types (scripts/check). `make test` runs it first.
check: setup
	BIN=$(VENV)/bin bash scripts/check

## The whole test suite against real Azurite and the ACS emulator (and Microsoft's own SDK tests), after `make check`.
test: setup chromium loadbalancer upstream-tests check
	$(PY) -m pytest $(PYTEST_ARGS)

## The unit layer only (in-memory fakes, no stand-ins, no network sockets): seconds.
test-fast: setup
	$(PY) -m pytest -m "not (integration or browser or soak or upstream or fleet)" --disable-socket --allow-unix-socket $(PYTEST_ARGS)

## requirements.txt (pinned, every supported Python) from requirements.in.
lock: setup
	$(VENV)/bin/uv pip compile --universal --python-version 3.11 --custom-compile-command "make lock" requirements.in -o requirements.txt

## Microsoft's access-token quickstart, through shared/ (emulator unless ACS_* is set).
quickstart: setup
	$(PY) -m localdev.quickstart

## Benchmarks: the service's paths against the raw SDK, same run.
bench: setup
	$(PY) -m bench

## Just the ACS Identity emulator (HTTPS on 127.0.0.1:8443).
emulator: setup
	$(PY) -m emulator --port 8443

clean:
	rm -rf $(VENV) node_modules .local
