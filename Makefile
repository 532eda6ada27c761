# Two commands on a fresh machine: `make run` and `make test`. Both set everything up first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=
WEB_BUNDLE := samples/web/vendor/communication-common.js

# Python 3.13 for the second pass of `make test` (the functions inside azure-functions-runtime) and `make run313`:
# python3.13 on the PATH if it runs, else the newest ~/.pyenv/versions/3.13*/bin/python3.13. Empty when there is none.
PYTHON313 ?= $(firstword $(foreach candidate,python3.13 $(sort $(wildcard $(HOME)/.pyenv/versions/3.13*/bin/python3.13)),\
	$(shell $(candidate) -c 'import sys; assert sys.version_info[:2] == (3, 13)' >/dev/null 2>&1 && command -v $(candidate))))
VENV313 := .venv313
PY313 := $(VENV313)/bin/python
# On 3.13: the unit layer, the API over HTTP, the revocation sweep, devhost (incl. both paths compared), the app module.
TESTS_313 := tests/shared tests/app tests/devhost tests/test_function_app.py $(wildcard tests/revocation)

.PHONY: setup run test test-fast check lock quickstart bench emulator clean chromium loadbalancer upstream-tests setup313 run313 test313

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

# HAProxy (Debian's package) for the multi-instance rig (tests/fleet, the fleet benchmark).
loadbalancer:
	sh scripts/install-loadbalancer.sh

## Azurite + ACS emulator on loopback, then the app on http://127.0.0.1:7071 (func start if installed).
run: setup
	$(PY) -m localdev.run

## Microsoft's own tests of the pinned azure-communication-identity: its sdist from PyPI, tests/ unpacked into
## .local/upstream/ once (sha256-pinned); tests/upstream runs them against the emulator.
upstream-tests: setup
	$(PY) -m tests.upstream.sdist

## The quality bar: format, lint, layers, types (scripts/check), then azure-functions-doctor's deploy profile
## (scripts/doctor: no failed check). `make test` runs it first.
check: setup
	BIN=$(VENV)/bin bash scripts/check
	BIN=$(VENV)/bin bash scripts/doctor

## The whole test suite against real Azurite and the ACS emulator (and Microsoft's own SDK tests), after `make check`;
## then, where Python 3.13 is found, the unit, API, revocation and devhost tests again on it (make test313).
test: setup chromium loadbalancer upstream-tests check
	$(PY) -m pytest $(PYTEST_ARGS)
	@$(MAKE) --no-print-directory test313

## .venv313: the same requirements on Python 3.13 (azure-functions 2.x, azure-functions-runtime), and the FunctionRpc
## message classes devhost's runtime path needs (python -m devhost.rpc.protos).
setup313:
ifeq ($(strip $(PYTHON313)),)
	@echo "setup313: no Python 3.13 found (python3.13 on the PATH, or ~/.pyenv/versions/3.13*); install one to use it"; exit 1
else
	@$(MAKE) --no-print-directory setup VENV=$(VENV313) PYTHON=$(PYTHON313)
	$(PY313) -m devhost.rpc.protos >/dev/null
endif

## The tests that matter per interpreter, on Python 3.13: the functions run inside azure-functions-runtime there.
test313:
ifeq ($(strip $(PYTHON313)),)
	@echo "test313: SKIPPED - no Python 3.13 found (python3.13 on the PATH, or ~/.pyenv/versions/3.13*); only $$($(PY) -V) was tested"
else
	@$(MAKE) --no-print-directory setup313
	$(PY313) -m pytest $(TESTS_313) -m "not (soak or browser or fleet)" $(PYTEST_ARGS)
endif

## make run on Python 3.13: the same stand-ins, the functions inside azure-functions-runtime.
run313: setup313
	$(MAKE) --no-print-directory run VENV=$(VENV313) PYTHON=$(PYTHON313)

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
bench: setup loadbalancer
	$(if $(strip $(PYTHON313)),@$(MAKE) --no-print-directory setup313,@echo "bench: no Python 3.13 found; its cold start rows will say so")
	$(PY) -m bench

## Just the ACS Identity emulator (HTTPS on 127.0.0.1:8443).
emulator: setup
	$(PY) -m emulator --port 8443

clean:
	rm -rf $(VENV) $(VENV313) node_modules .local
