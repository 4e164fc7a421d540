# Set-up and entry points. Every target is safe to run twice.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
BUNDLE := models/whisper-base-int8
SAMPLE := samples/demo.wav
THREADS ?= 2
DEMO_TEXT := Edge inference runs speech recognition on small devices, without a network connection. Please call me back when you get home tonight.

.PHONY: demo test lint bench debian venv bundle clean

demo: debian $(VENV)/.installed $(BUNDLE)/manifest.json $(SAMPLE)
	$(VENV)/bin/edge-alm transcribe $(SAMPLE) --threads $(THREADS) --timings

test: debian $(VENV)/.installed $(BUNDLE)/manifest.json
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q

# The side-by-side comparison (peers installed here); writes benchmarks/results/latest/.
bench: debian $(VENV)/.installed $(BUNDLE)/manifest.json
	@command -v flite >/dev/null && command -v sox >/dev/null || \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq flite sox >/dev/null)
	$(PY) -m pip install -q -e ".[bench]"
	$(PY) -m benchmarks.compare --threads 1 2 --repeats 3 --out benchmarks/results/latest

# Debian packages: espeak-ng (speech for the demo and tests), libsndfile (audio I/O).
debian:
	@if ! command -v espeak-ng >/dev/null || ! ldconfig -p | grep -q libsndfile.so.1; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq espeak-ng libsndfile1 >/dev/null; \
	fi

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[export,default-model,dev]"
	touch $@

$(BUNDLE)/manifest.json: | $(VENV)/.installed
	$(VENV)/bin/edge-alm export whisper --source default --quantize int8 --out $(BUNDLE)

$(SAMPLE):
	mkdir -p $(dir $@)
	espeak-ng -v en-us+f3 -s 140 -w $@ "$(DEMO_TEXT)"

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

clean:
	rm -rf $(VENV) models .cache samples
