"""One dissection across processes (torch.distributed, gloo on CPU) is identical to a single run.

The mergeable accumulators are checked in-process against one stream over the same rows, for arbitrary splits
(exact and sketch thresholds, tied top images, tallies). The runs are launched as a user would, through torchrun
(``python -m torch.distributed.run``) or ``benchmark score --nproc``, on a small supplied-activations fixture
with ties, and once with a model on the sample dataset: world sizes 1, 2 and 3 with uneven shards, a rank killed
with SIGKILL in pass 1 and in pass 2 then relaunched, another world size starting over, a rank that raises and a
rank that hangs (collective timeout).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import torch

from benchmark.cli import main
from benchmark.distributed import rank_device, shard_bounds
from benchmark.quantile import ShardQuantile, TopQuantile, sketch_switch_row
from benchmark.scorer import INTERRUPT_ENV
from benchmark.tally import Tally
from benchmark.topk import TopImages
from broden.errors import BrodenError
from tests.helpers.paths import REPO

BATCH = 4  # 23 rows: 6 batches, so 2 and 3 processes get uneven shards (3+3 and 2+2+2 batches of 4, 4, 3 rows)


# -- the accumulators, in-process ----------------------------------------------------------------------------------
def test_shard_bounds_are_the_datasets_contiguous_shards() -> None:
    from datasets import Dataset

    for n in (1, 5, 6, 23):
        table = Dataset.from_dict({"i": list(range(n))})
        for world in (w for w in (1, 2, 3, 4, 7) if w <= n):  # datasets refuses more shards than rows
            for rank in range(world):
                start, end = shard_bounds(n, world, rank)
                assert list(range(start, end)) == table.shard(world, rank, contiguous=True)["i"]
    assert [shard_bounds(2, 3, r) for r in range(3)] == [(0, 1), (1, 2), (2, 2)]  # more ranks than rows: one idles


def test_each_rank_takes_the_gpu_of_its_local_rank(monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert rank_device("cuda") == "cuda" and rank_device("cpu") == "cpu"  # not launched: as given
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert rank_device("cuda") == "cuda:1" and rank_device("cpu") == "cpu"
    with pytest.raises(BrodenError, match="--device cuda:0: under torchrun each process uses the GPU of its"):
        rank_device("cuda:0")
    monkeypatch.setenv("LOCAL_RANK", "2")
    with pytest.raises(BrodenError, match="LOCAL_RANK 2: this node has 2 GPU"):
        rank_device("cuda")


def _cuts(n: int, rng: np.random.Generator, parts: int) -> list[int]:
    return [0, *sorted(rng.integers(0, n + 1, parts - 1).tolist()), n]


def _same_state(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(
        torch.equal(a[k], b[k]) if isinstance(a[k], torch.Tensor) else a[k] == b[k] for k in a)


@pytest.mark.parametrize("limit", [10**6, 300, 40])  # exact; sketch from row 15; sketch from the first batch
def test_shard_quantiles_merge_into_the_single_stream(limit: int) -> None:
    rng = np.random.default_rng(limit)
    n, units, hw, bs = 37, 3, (4, 4), 5
    drift = torch.linspace(0.5, 3, n)[:, None, None, None]  # later rows larger: the sketch's window moves
    acts = torch.from_numpy(rng.gamma(2.0, 1.0, (n, units, *hw)).astype(np.float32)) * drift
    acts[:, 1] = acts[:, 1].round()  # ties
    stream = TopQuantile(units, 0.05, exact_limit=limit)
    for s in range(0, n, bs):
        stream.add(acts[s : s + bs])
    switch = sketch_switch_row(n, hw[0] * hw[1], bs, limit)
    assert (switch is None) == (limit == 10**6)
    for trial in range(7):
        # any split, shards not aligned to batches, empty ones
        cuts = [0, 0, 20, 20, n] if trial == 6 else _cuts(n, rng, parts=1 + trial)
        parts = []
        for a, b in zip(cuts[:-1], cuts[1:]):
            part = ShardQuantile(units, 0.05, exact_limit=limit, switch_row=switch)
            for s in range(a, b, bs):
                part.add(acts[s : min(s + bs, b)], s)
            parts.append(ShardQuantile.from_state_dict(part.state_dict()))  # as gathered from the ranks
        merged = parts[0]
        for part in parts[1:]:
            merged.merge(part)
        got = merged.result()
        assert _same_state(got.state_dict(), stream.state_dict()), cuts
        assert torch.equal(got.thresholds(), stream.thresholds()) and got.method == stream.method


def test_top_images_merge_into_the_single_stream_with_ties() -> None:
    rng = np.random.default_rng(1)
    n, units, k = 40, 4, 6
    acts = torch.from_numpy(rng.integers(0, 4, (n, units, 3, 3)).astype(np.float32))  # many tied peaks
    stream = TopImages(units, k, (3, 3))
    stream.add(acts, 0)
    for trial in range(8):
        cuts = _cuts(n, rng, parts=2 + trial % 4)
        parts = []
        for a, b in zip(cuts[:-1], cuts[1:]):
            part = TopImages(units, k, (3, 3))
            for s in range(a, b, 3):
                part.add(acts[s : min(s + 3, b)], s)
            parts.append(part)
        merged = parts.pop(trial % len(parts))  # merged in any order
        for part in reversed(parts):
            merged.merge(part)
        for name in ("values", "rows", "maps"):
            assert torch.equal(getattr(merged, name), getattr(stream, name)), (cuts, name)
    few = TopImages(units, k, (3, 3))  # fewer rows than k: unused slots stay last
    few.add(acts[:2], 0)
    other = TopImages(units, k, (3, 3))
    other.add(acts[2:4], 2)
    few.merge(other)
    assert (few.rows[:, 4:] == -1).all() and sorted(few.rows[0, :4].tolist()) == [0, 1, 2, 3]


def test_tally_counts_are_every_count_and_merge_adds_them() -> None:
    from benchmark.tally import COUNT_TENSORS, TallyInput

    tally = Tally(2, 5, ["object"], {1: "object", 2: "object"})
    assert set(tally.counts()) == {*COUNT_TENSORS, "images"}
    assert {name for name, value in vars(tally).items()  # nothing that counts is left out of the merge
            if isinstance(value, torch.Tensor) and value.dtype == torch.int64} == {*COUNT_TENSORS, "images", "label_cat"}
    maps = torch.tensor([[[[1, 2], [0, 1]]]])
    tally.add(TallyInput(torch.ones(1, 2, 2, 2), maps, [[]]), torch.zeros(2))
    twice = Tally.from_state_dict(tally.state_dict())
    twice.merge(tally)
    for name, count in twice.counts().items():
        assert torch.equal(count, 2 * tally.counts()[name]), name
    assert int(twice.images) == 2 and torch.equal(twice.label_cat, tally.label_cat)


def test_checkpoints_are_kept_only_for_the_same_shards(tmp_path) -> None:
    from benchmark.checkpoint import Checkpoint

    root = tmp_path / "cache"

    def launch(world: int, batch: int, key: str = "k") -> str | None:
        note = Checkpoint(root, key, world_size=world, batch_size=batch).prepare()
        for rank in range(world):
            ckpt = Checkpoint(root, key, rank=rank, world_size=world, batch_size=batch)
            if ckpt.load() is None:
                ckpt.save({"rank": rank})
        return note

    assert launch(2, 4) is None and launch(2, 4) is None
    assert Checkpoint(root, "k", rank=1, world_size=2, batch_size=4).load()["rank"] == 1  # kept
    note = launch(2, 8)
    assert "of a run with 2 process(es) and batches of 4 rows and this run has 2 process(es) and batches of 8" in note
    assert "this run has 1 process(es), so it starts over" in launch(1, 8)
    assert launch(1, 16) is None and (root / "checkpoint.pt").is_file()  # one process: its rows do not move
    assert launch(2, 16, key="other") is None and not (root / "checkpoint.pt").exists()  # another run: cleared


# -- launched runs -------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def fixture(tmp_path_factory):
    """23 sample images at 64 px and supplied activations (5 units, 8x8) with tied values and peaks, plus the
    single-process run on them."""
    from broden.sample import write_sample

    work = tmp_path_factory.mktemp("dist")
    ds = write_sample(work / "ds", num_images=23, size=64)
    rng = np.random.default_rng(0)
    acts = rng.gamma(2.0, 1.0, (len(ds), 5, 8, 8)).astype(np.float16)
    acts[:, 0] = np.round(acts[:, 0])
    np.savez(work / "acts.npz", activations=acts, image=np.asarray(ds.ids), layer="conv")
    args = ["--activations", str(work / "acts.npz"), "--dataset", str(ds.path), "--batch-size", str(BATCH),
            "--workers", "0"]
    assert main(["score", *args, "--out", str(work / "single")]) == 0
    return work, args


def _launch(*args: str, nproc: int, via: str = "torchrun", env: dict | None = None, timeout: float = 240):
    """``benchmark score ARGS`` as ``nproc`` processes, launched with torchrun or with ``--nproc``."""
    inherited = {k: v for k, v in os.environ.items() if k != INTERRUPT_ENV}
    full_env = {**inherited, "BRODEN_PROGRESS": "0", "OMP_NUM_THREADS": "1", **(env or {})}
    if via == "torchrun":
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
               "-m", "benchmark", "score", *args]
    else:
        cmd = [sys.executable, "-m", "benchmark", "score", "--nproc", str(nproc), *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=full_env, cwd=REPO, timeout=timeout)


def assert_identical(out, ref, world_size: int) -> None:
    """Same units, thresholds, summary and top images, byte for byte; only timings, the world size and the
    thread budget (the CPUs are shared among the ranks on one machine) differ."""
    a, b = (json.loads((d / "results.json").read_text()) for d in (ref, out))
    assert b["environment"]["world_size"] == world_size
    assert json.dumps(a["layers"]) == json.dumps(b["layers"])
    for r in (a, b):
        del r["timings"], r["created"], r["environment"]["world_size"]
        for key in ("cpus", "torch_threads", "workers", "tally_threads", "tally_workers"):
            r["environment"].pop(key, None)
    assert a == b
    maps_a, maps_b = np.load(ref / "top_maps.npz"), np.load(out / "top_maps.npz")
    assert maps_a.files == maps_b.files and all(np.array_equal(maps_a[k], maps_b[k]) for k in maps_a.files)
    assert not (out / "cache").exists()


@pytest.mark.slow
@pytest.mark.parametrize("nproc, batch", [(1, BATCH), (2, BATCH), (3, 12)])  # 3 with 4-row batches: next test
def test_world_sizes_give_the_single_run(fixture, tmp_path, nproc, batch) -> None:
    work, args = fixture
    ref = work / "single"
    if batch != BATCH:  # 2 batches for 3 processes: the last one has no rows
        args = [*args, "--batch-size", str(batch)]
        ref = tmp_path / "single"
        assert main(["score", *args, "--out", str(ref)]) == 0
    done = _launch(*args, "--out", str(tmp_path / "o"), nproc=nproc, via="torchrun" if nproc < 3 else "nproc")
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("wrote ") == 1  # rank 0 alone prints
    assert_identical(tmp_path / "o", ref, nproc)


@pytest.mark.slow
def test_killed_rank_resumes_and_another_world_size_starts_over(fixture, tmp_path) -> None:
    work, args = fixture
    out = tmp_path / "o"
    run = [*args, "--out", str(out), "--checkpoint-every", "0"]
    # rank 1 (rows 12-23: 3 batches per pass) dies in pass 1 after 2 batches; torchrun stops rank 0
    killed = _launch(*run, nproc=2, env={INTERRUPT_ENV: "2:kill@1"})
    assert killed.returncode != 0 and not (out / "results.json").exists()
    assert json.loads((out / "cache" / "manifest.json").read_text())["world_size"] == 2
    assert {p.name for p in (out / "cache").iterdir()} == {"manifest.json", "rank-0", "rank-1"}
    shutil.copytree(out, tmp_path / "copy")
    # resumed, rank 1 finishes pass 1 with its last batch and dies after its first batch of pass 2
    killed = _launch(*run, nproc=2, env={INTERRUPT_ENV: "2:kill@1"})
    assert killed.returncode != 0 and not (out / "results.json").exists()
    state = torch.load(out / "cache" / "rank-1" / "checkpoint.pt", weights_only=True)
    assert (state["stage"], state["row"]) == ("tally", 16)
    done = _launch(*run, nproc=2)
    assert done.returncode == 0, done.stderr
    assert "starts over" not in done.stderr
    assert_identical(out, work / "single", 2)
    # the copy of the first crash, relaunched with 3 processes: a clear note, a fresh start, the same results
    other = _launch(*args, "--out", str(tmp_path / "copy"), nproc=3, via="nproc")
    assert other.returncode == 0, other.stderr
    assert other.stdout.count("wrote ") == 1
    assert ("the checkpoints are of a run with 2 process(es) and batches of 4 rows and this run has 3 process(es) "
            "and batches of 4 rows, so it starts over") in other.stderr
    assert_identical(tmp_path / "copy", work / "single", 3)


@pytest.mark.slow
def test_a_rank_that_raises_stops_every_rank_with_one_message(fixture, tmp_path) -> None:
    work, args = fixture
    start = time.monotonic()
    failed = _launch(*args, "--out", str(tmp_path / "o"), nproc=3, env={INTERRUPT_ENV: "1:raise@1"})
    assert failed.returncode != 0 and time.monotonic() - start < 120
    errors = [line for line in failed.stderr.splitlines() if line.startswith("error:")]
    assert errors == ["error: BRODEN_TEST_INTERRUPT_AFTER: rank 1 stops after 1 batches"]
    assert not (tmp_path / "o" / "results.json").exists()


@pytest.mark.slow
def test_a_hung_rank_stops_the_others_at_the_collective_timeout(fixture, tmp_path) -> None:
    work, args = fixture
    failed = _launch(*args, "--out", str(tmp_path / "o"), "--dist-timeout", "2", nproc=2, via="nproc",
                     env={INTERRUPT_ENV: "1:hang@1"}, timeout=120)
    assert failed.returncode == 2
    assert failed.stderr.splitlines() == [
        "error: rank 0: another of the 2 processes failed or did not answer within --dist-timeout 2s while "
        "gathering the ranks' states; run the same command again to resume"]
    assert not (tmp_path / "o" / "results.json").exists()


TINY = """
from collections import OrderedDict
import torch
from torch import nn

LAYERS = ["head"]

def build_model():
    torch.manual_seed(0)
    return nn.Sequential(OrderedDict(
        stem=nn.Sequential(nn.Conv2d(3, 8, 3, stride=8, padding=1), nn.ReLU()),
        head=nn.Sequential(nn.Conv2d(8, 6, 3, stride=2, padding=1), nn.ReLU()),
    ))
"""


@pytest.mark.slow
def test_a_model_on_the_sample_in_two_processes(sample_dataset, tmp_path) -> None:
    model = tmp_path / "tiny.py"
    model.write_text(textwrap.dedent(TINY))
    args = [str(model), "--dataset", str(sample_dataset), "--batch-size", "32", "--workers", "0"]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the reference computes its forward passes as each rank does
    try:
        assert main(["score", *args, "--out", str(tmp_path / "single")]) == 0
    finally:
        torch.set_num_threads(threads)
    done = _launch(*args, "--out", str(tmp_path / "o"), nproc=2)
    assert done.returncode == 0, done.stderr
    assert_identical(tmp_path / "o", tmp_path / "single", 2)
