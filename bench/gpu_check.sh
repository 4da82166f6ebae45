#!/usr/bin/env bash
# The GPU checks, in one go on a machine with a CUDA device (run from the repository root):
#   1. the CUDA tests (the tally on CUDA equals the CPU tally; --device cuda runs end to end);
#   2. ResNet-18 layer4 over the full-scale synthetic Broden (63,305 images; IMAGES=N for fewer): images/s per pass
#      and the share of data loading (bench/gpu_timing.py).
# Prints the pytest summary and `name: value` lines; record them in bench/README.md with the date and the device.
set -euo pipefail
PYTHON="${PYTHON:-.venv/bin/python}"
export HF_DATASETS_OFFLINE=1 HF_HUB_OFFLINE=1 BRODEN_PROGRESS=0 PYTHONPATH="${PYTHONPATH:-$PWD}"
"$PYTHON" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'error: no CUDA device visible to torch')"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
date -u +"date: %Y-%m-%dT%H:%M:%SZ"
"$PYTHON" -m pytest -q -p no:cacheprovider -n 0 -k "cuda" tests/benchmark/test_tally.py tests/benchmark/test_scorer.py \
    tests/benchmark/test_score_cli.py tests/benchmark/test_runtime.py
"$PYTHON" bench/gpu_timing.py --images "${IMAGES:-63305}" --device cuda
