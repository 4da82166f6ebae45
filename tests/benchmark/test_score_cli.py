"""`benchmark score` and `benchmark layers` from the command line: the real MobileNetV2 end to end on the sample
dataset, a crash (SIGKILL) and resume, the no-op rerun, --help, and one-line errors without partial results."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from benchmark.cli import main
from benchmark.results import load_results
from tests.helpers.hub_fixture import local_hub  # noqa: F401 - a fixture
from tests.helpers.models import write_tiny_model
from tests.helpers.paths import REPO


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    from broden.sample import write_sample

    return write_sample(tmp_path_factory.mktemp("small") / "ds", num_images=24, size=64).path


@pytest.fixture()
def tiny_file(tmp_path):
    return write_tiny_model(tmp_path / "tiny.py", 'tiny cli', {"architecture": "two convs", "training_data": "none"})


def _cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "BRODEN_PROGRESS": "0", **(env or {})}
    return subprocess.run([sys.executable, "-m", "benchmark.cli", *args], capture_output=True, text=True,
                          env=full_env, cwd=REPO, timeout=300)


@pytest.mark.slow
def test_mobilenet_v2_end_to_end_on_sample(sample_dataset, tmp_path, capsys) -> None:
    """The leaderboard's MobileNetV2 demo entry (scored from examples/mobilenet_v2.py), re-scored through the spec
    torchvision:mobilenet_v2:IMAGENET1K_V1, which finds the same packaged weights file: the same units exactly."""
    entry = json.loads(next((REPO / "leaderboard" / "submissions").glob("mobilenetv2-imagenet__features-18__*.json"))
                       .read_text())
    out = tmp_path / "mnv2"
    args = ["score", "torchvision:mobilenet_v2:IMAGENET1K_V1", "--dataset", str(sample_dataset), "--out", str(out)]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "features.18:" in printed and "wrote" in printed
    results = load_results(out / "results.json")
    layer = results["layers"][0]
    assert (layer["name"], layer["shape"]) == ("features.18", [1280, 7, 7])
    assert results["dataset"]["num_images"] == 240 and results["dataset"]["seg_size"] == [112, 112]
    assert results["dataset"]["fingerprint"] == entry["dataset"]["fingerprint"]
    v2_only = ("iou_interval", "held_out")  # per-unit fields broden-results/2 added; the entry is version 1
    assert [{k: v for k, v in u.items() if k not in v2_only} for u in layer["units"]] == entry["layers"][0]["units"]
    assert results["model"]["weights_sha256"] == "b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889"
    assert results["model"]["weights"]["enum"] == "MobileNet_V2_Weights.IMAGENET1K_V1"
    assert results["artifacts"]["top_maps"] == "top_maps.npz"
    maps = np.load(out / "top_maps.npz")
    assert maps["features.18/maps"].shape == (1280, 10, 7, 7)
    assert not (out / "cache").exists()
    # a finished run is not redone
    assert main(args) == 0
    assert "already scored" in capsys.readouterr().out


def test_crash_and_resume_from_the_command_line(small, tiny_file, tmp_path, monkeypatch, capsys) -> None:
    common = ["score", str(tiny_file), "--dataset", str(small), "--batch-size", "5", "--workers", "1"]
    assert main([*common, "--out", str(tmp_path / "ref")]) == 0
    out = tmp_path / "out"
    # SIGKILL after 7 batches (pass 1 has 5): nothing gets a chance to clean up
    killed = _cli(*common, "--out", str(out), "--checkpoint-every", "0", env={"BRODEN_TEST_INTERRUPT_AFTER": "7:kill"})
    assert killed.returncode == -9
    assert (out / "cache" / "checkpoint.pt").is_file() and not (out / "results.json").exists()
    assert main([*common, "--out", str(out)]) == 0
    a, b = (json.loads((d / "results.json").read_text()) for d in (tmp_path / "ref", out))
    for r in (a, b):
        del r["timings"], r["created"]
    assert a == b
    capsys.readouterr()
    monkeypatch.setenv("BRODEN_TEST_INTERRUPT_AFTER", "2")  # Ctrl-C
    assert main([*common, "--out", str(tmp_path / "int")]) == 130
    assert "run the same command again to resume" in capsys.readouterr().err


def test_streaming_scores_exactly_as_the_arrow_rows(sample_dataset, tiny_file, tmp_path, local_hub,  # noqa: F811
                                                   capsys) -> None:
    from broden.cli import main as broden_main

    common = ["score", str(tiny_file), "--batch-size", "16", "--workers", "2", "--cache-budget", "0"]
    assert main([*common, "--dataset", str(sample_dataset), "--out", str(tmp_path / "arrow")]) == 0
    assert main([*common, "--dataset", str(sample_dataset), "--streaming", "--out", str(tmp_path / "stream")]) == 0
    assert broden_main(["push", str(sample_dataset), "my-org/broden-sample"]) == 0
    assert main([*common, "--dataset", "hf://my-org/broden-sample", "--streaming", "--out", str(tmp_path / "hub")]) == 0
    runs = [json.loads((tmp_path / d / "results.json").read_text()) for d in ("arrow", "stream", "hub")]
    for r in runs:
        del r["timings"], r["created"], r["dataset"]["path"]
    assert runs[0] == runs[1] == runs[2]
    assert runs[0]["layers"][0]["summary"]["units"] == 6
    snapshot = next(local_hub.cache.glob("datasets--my-org--broden-sample/snapshots/*"))
    assert {p.name for p in snapshot.iterdir()} >= {"README.md", "broden.json", "labels", "data"}


@pytest.mark.parametrize(
    "extra, message",
    [
        (["missing_model.py"], "missing_model.py: model file not found"),
        (["torchvision:resnet18:V9"], "torchvision:resnet18:V9: resnet18 has no weights 'V9'"),
        (["{tiny}", "--weights", "{missing}"], "nope.npz: file not found"),
        (["{tiny}", "--layers", "haed"], "layer 'haed' not found in the model; closest: head"),
        (["{tiny}", "--categories", "object,animal"], "category 'animal' is not in the dataset"),
        (["{tiny}", "--device", "cuda:0"], "CUDA is not available"),
        (["{tiny}", "--threads", "0"], "--threads 0: must be at least 1"),
        (["{tiny}", "--workers", "-1"], "--workers -1: give 0"),
        (["torchvision:resnet17"], "no such torchvision classification model; closest: resnet18"),
        (["--activations", "{missing}"], "activations file not found"),
        ([], "give either MODEL"),
    ],
)
def test_bad_input_is_one_line_and_leaves_no_results(small, tiny_file, tmp_path, capsys, extra, message) -> None:
    if "cuda:0" in extra and torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    args = [a.format(tiny=tiny_file, missing=tmp_path / "nope.npz") for a in extra]
    out = tmp_path / "out"
    assert main(["score", *args, "--dataset", str(small), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1
    assert not (out / "results.json").exists()


def test_missing_dataset(tiny_file, tmp_path, capsys) -> None:
    assert main(["score", str(tiny_file), "--dataset", str(tmp_path / "none"), "--out", str(tmp_path / "o")]) == 2
    assert "dataset not found" in capsys.readouterr().err


def test_help_documents_the_model_contract(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["score", "--help"])
    text = capsys.readouterr().out
    for word in ("build_model()", "LAYERS", "preprocess", "METADATA", "EXTRA_TOKENS", "torchvision:NAME",
                 "--activations", "--force", "resume", "examples:"):
        assert word in text


def test_layers_command(tiny_file, capsys) -> None:
    assert main(["layers", str(tiny_file), "--input-size", "64"]) == 0
    lines = capsys.readouterr().out.splitlines()
    head = next(line for line in lines if line.startswith("head "))
    assert "1x6x8x8" in head and "6x8x8" in head and "(default)" in head
    assert main(["layers", "torchvision:resnet18", "--dissectable"]) == 0  # no weights needed to list layers
    text = capsys.readouterr().out
    assert "layer4" in text and "512x7x7" in text and "fc " not in text
