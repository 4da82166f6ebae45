"""The dissection run (Python API): one pass for several layers, resume, no-op reruns, the cache, supplied
activations, token layers and every bad-input case, on tiny hand-built models and a small sample dataset."""

from __future__ import annotations

import copy
import json
import os
from collections import OrderedDict
from collections.abc import Callable

import numpy as np
import pytest
import torch
from torch import nn

from benchmark.activations import SuppliedActivations
from benchmark.models.layers import LayerTaps
from benchmark.models.loader import LoadedModel, Preprocessing
from benchmark.results import load_results
from benchmark.scorer import INTERRUPT_ENV, Settings, score_activations, score_model
from broden.dataset import open_image
from broden.errors import BrodenError


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """24 sample images at 64 px (segmentation 32 px), all six categories."""
    from broden.sample import write_sample

    return write_sample(tmp_path_factory.mktemp("small") / "ds", num_images=24, size=64)


def tiny(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(OrderedDict(
        stem=nn.Sequential(nn.Conv2d(3, 8, 3, stride=4, padding=1), nn.ReLU()),
        head=nn.Sequential(nn.Conv2d(8, 6, 3, stride=2, padding=1), nn.ReLU()),
        pool=nn.AdaptiveAvgPool2d(1),
    ))


def loaded(module: nn.Module, layers: list[str] | None = None, name: str = "tiny", **kw) -> LoadedModel:
    return LoadedModel(name=name, source="file", module=module, layers=layers, **kw)


def settings(**kw) -> Settings:
    base = dict(batch_size=5, workers=0, checkpoint_every_s=0.0)
    base.update(kw)
    return Settings(**base)


def stable(results: dict) -> dict:
    """Results without what legitimately changes between runs."""
    r = copy.deepcopy(results)
    for key in ("timings", "created"):
        r.pop(key)
    return r


def test_run_writes_schema_valid_results_and_top_maps(small, tmp_path) -> None:
    out = tmp_path / "out"
    outcome = score_model(loaded(tiny(), ["stem", "head"]), small, out, settings())
    results = load_results(out / "results.json")  # schema-valid
    assert outcome.results == results and not outcome.skipped
    assert not (out / "cache").exists()
    assert results["provenance"] == {"kind": "measured"}
    assert results["dataset"]["num_images"] == 24 and results["dataset"]["fingerprint"] == small.fingerprint
    assert results["protocol"]["preprocess"]["sources"] == dict.fromkeys(("size", "interpolation", "mean", "std"), "default")
    assert results["protocol"]["preprocess"]["crop"] is None and results["protocol"]["batch_size"] == 5
    assert set(results["timings"]) >= {"forward_s", "threshold_s", "tally_s", "total_s"}
    env = results["environment"]  # the thread budget (workers=0 given, threads from the CPUs left)
    assert env["workers"] == env["tally_workers"] == 0 and env["tally_threads"] == max(1, min(8, env["cpus"] // 2))
    assert env["torch_threads"] == env["cpus"] == len(os.sched_getaffinity(0))
    assert env["allocator_tuned"] is True  # glibc
    stem, head = results["layers"]
    assert (stem["name"], stem["shape"], head["shape"]) == ("stem", [8, 16, 16], [6, 8, 8])
    maps = np.load(out / "top_maps.npz")
    assert maps["head/maps"].shape == (6, 10, 8, 8) and maps["head/maps"].dtype == np.float16
    for unit in head["units"]:
        ids = [t["id"] for t in unit["top_images"]]
        assert ids == list(maps["head/ids"][unit["unit"]])
        acts = [t["activation"] for t in unit["top_images"]]
        assert acts == sorted(acts, reverse=True) and unit["threshold"] is not None
        # the stored map of the best image is that image's activation map
        assert float(maps["head/maps"][unit["unit"], 0].max()) == pytest.approx(acts[0], rel=1e-3)
    # activations recomputed for the top image agree with the stored map
    unit = head["units"][0]
    row = small.ids.index(unit["top_images"][0]["id"])
    x = Preprocessing((64, 64))(small[row].image())[None]
    ref = LayerTaps(tiny(), ["head"]).run(x)["head"][0, 0].half()
    assert torch.equal(torch.from_numpy(maps["head/maps"][0, 0]), ref)


def test_several_layers_in_one_pass_equal_separate_runs(small, tmp_path) -> None:
    both = score_model(loaded(tiny(), ["stem", "head"]), small, tmp_path / "both", settings()).results
    for i, layer in enumerate(["stem", "head"]):
        alone = score_model(loaded(tiny(), [layer]), small, tmp_path / layer, settings()).results
        assert alone["layers"][0] == both["layers"][i]
        maps_alone, maps_both = np.load(tmp_path / layer / "top_maps.npz"), np.load(tmp_path / "both" / "top_maps.npz")
        assert np.array_equal(maps_alone[f"{layer}/maps"], maps_both[f"{layer}/maps"])


def test_interrupted_run_resumes_to_identical_results(small, tmp_path, monkeypatch) -> None:
    model = loaded(tiny(), ["stem", "head"])
    ref = score_model(model, small, tmp_path / "ref", settings()).results
    out = tmp_path / "out"
    monkeypatch.setenv(INTERRUPT_ENV, "3")  # 5 batches per pass: stop inside pass 1
    with pytest.raises(KeyboardInterrupt):
        score_model(model, small, out, settings())
    assert (out / "cache" / "checkpoint.pt").is_file() and not (out / "results.json").exists()
    monkeypatch.setenv(INTERRUPT_ENV, "4")  # 2 batches finish pass 1, then stop inside pass 2
    with pytest.raises(KeyboardInterrupt):
        score_model(model, small, out, settings())
    assert not (out / "results.json").exists()
    monkeypatch.delenv(INTERRUPT_ENV)
    resumed = score_model(model, small, out, settings()).results
    assert stable(resumed) == stable(ref)
    a, b = np.load(tmp_path / "ref" / "top_maps.npz"), np.load(out / "top_maps.npz")
    assert all(np.array_equal(a[k], b[k]) for k in a.files)


@pytest.mark.skipif(not __import__("sys").platform.startswith("linux"),
                    reason="the dataset check runs in a forked child on Linux only")
@pytest.mark.parametrize("forked", [True, False])
def test_set_up_leaves_a_cpu_to_the_dataset_check(small, tmp_path, monkeypatch, forked) -> None:
    """While the check runs in its child, the set-up (the model's shape probe) uses one torch thread fewer: OpenMP
    threads sharing a core with the child wait for each other at every barrier."""
    import broden.validate
    from benchmark.activations.producers import ModelProducer

    seen = []
    probe = ModelProducer._probe_shapes

    def spy(self):
        seen.append(torch.get_num_threads())
        return probe(self)

    monkeypatch.setattr(ModelProducer, "_probe_shapes", spy)
    monkeypatch.setattr(broden.validate, "PREFLIGHT_FORK_MIN_ROWS", 1 if forked else 10**9)
    results = score_model(loaded(tiny(), ["head"]), small, tmp_path / "out", settings(threads=2)).results
    assert seen == [1 if forked else 2] and results["environment"]["torch_threads"] == 2


def test_stale_checkpoint_is_not_reused(small, tmp_path, monkeypatch) -> None:
    out = tmp_path / "out"
    monkeypatch.setenv(INTERRUPT_ENV, "3")
    with pytest.raises(KeyboardInterrupt):
        score_model(loaded(tiny(seed=1), ["head"]), small, out, settings())
    monkeypatch.delenv(INTERRUPT_ENV)
    # other weights: the checkpoint of seed 1 must not leak into the run of seed 0
    got = score_model(loaded(tiny(seed=0), ["head"]), small, out, settings()).results
    ref = score_model(loaded(tiny(seed=0), ["head"]), small, tmp_path / "ref", settings()).results
    assert stable(got) == stable(ref)


def test_finished_run_is_a_no_op_unless_forced(small, tmp_path) -> None:
    out = tmp_path / "out"
    first = score_model(loaded(tiny(), ["head"]), small, out, settings())
    again = score_model(loaded(tiny(), ["head"]), small, out, settings(batch_size=7))
    assert again.skipped and again.results["created"] == first.results["created"]
    with pytest.raises(BrodenError, match="holds the results of a different run.*--force"):
        score_model(loaded(tiny(), ["head"]), small, out, settings(quantile=0.01))
    forced = score_model(loaded(tiny(), ["head"]), small, out, settings(quantile=0.01, force=True))
    assert not forced.skipped and load_results(out / "results.json")["protocol"]["quantile"] == 0.01


def test_recomputing_the_forward_equals_the_cache(small, tmp_path) -> None:
    cached = score_model(loaded(tiny(), ["stem", "head"]), small, tmp_path / "a", settings()).results
    recomputed = score_model(loaded(tiny(), ["stem", "head"]), small, tmp_path / "b",
                             settings(cache_budget_bytes=0, workers=2)).results
    assert cached["layers"] == recomputed["layers"]


@pytest.mark.parametrize("workers", [1, 2])
def test_pass_two_counts_in_the_workers_like_here(small, tmp_path, monkeypatch, workers) -> None:
    """From stored activations (the cache; supplied ones, rotated too) pass 2 counts each batch in the DataLoader
    worker that decoded it and only adds the counts here: the same results as counting here (workers=0), and as a
    second forward pass counted here."""
    import benchmark.scorer as scorer_module

    count = scorer_module._CountBatch.__call__

    def spy(self, batch) -> None:
        (tmp_path / f"counted-by-{os.getpid()}").touch()
        count(self, batch)

    monkeypatch.setattr(scorer_module._CountBatch, "__call__", spy)
    here = score_model(loaded(tiny(), ["stem", "head"]), small, tmp_path / "here", settings()).results
    assert {p.name for p in tmp_path.glob("counted-by-*")} == {f"counted-by-{os.getpid()}"}
    for p in tmp_path.glob("counted-by-*"):
        p.unlink()
    there = score_model(loaded(tiny(), ["stem", "head"]), small, tmp_path / "there", settings(workers=workers)).results
    counted_by = {p.name for p in tmp_path.glob("counted-by-*")}
    assert len(counted_by) == workers and f"counted-by-{os.getpid()}" not in counted_by
    assert there["environment"]["tally_workers"] == workers and there["layers"] == here["layers"]
    recomputed = score_model(loaded(tiny(), ["stem", "head"]), small, tmp_path / "again",
                             settings(cache_budget_bytes=0)).results
    assert recomputed["layers"] == here["layers"]
    path = tmp_path / "acts.npz"
    np.savez(path, activations=_acts(small, list(range(len(small)))), image=np.asarray(small.ids), layer="head")
    for rotate in (None, 0.5):
        runs = [score_activations(SuppliedActivations(path, small), small, tmp_path / f"s{rotate}{w}",
                                  settings(workers=w, rotate=rotate)).results["layers"] for w in (0, workers)]
        assert runs[0] == runs[1]


def test_compiled_loop_by_run_size_gives_the_same_results(small, tmp_path, monkeypatch) -> None:
    """A run keeps its thresholds' candidates and top images, counts its float16 batches in one pass, decodes and
    groups its masks and adds its counts with the compiled loops from COMPILED_MIN_MAPS (image, unit) maps on, with tensor operations and
    pycocotools below: the same results either way, here or in the workers (which inherit the loaded loops)."""
    import benchmark.activations as activations
    import benchmark.compiled as compiled
    import benchmark.upsample as upsample

    def spied(owner, name: str, engine: Callable[[object], str]) -> None:
        """``owner.name`` (a method, or a loop of the kernels module) marking which engine ran, and where."""
        call = getattr(owner, name)

        def spy(*args):
            (tmp_path / f"{engine(args[0])}-{os.getpid()}").touch()
            return call(*args)

        monkeypatch.setattr(owner, name, spy)

    spied(upsample.ActiveKeys, "count", lambda keys: "compiled" if keys.kernel is not None else "tensor")
    spied(activations.RowBatches, "_filled_label_maps", lambda _: "fill")
    spied(activations.RowBatches, "_stacked_label_maps", lambda _: "pycocotools")
    spied(compiled.kernels(), "group_pixels", lambda _: "group")  # the grouping of label tuples
    spied(compiled.kernels(), "add_batch_counts", lambda _: "add")  # the adding of counts
    spied(compiled.kernels(), "keep_above", lambda _: "above")  # pass 1: the thresholds' candidates
    spied(compiled.kernels(), "keep_top_images", lambda _: "tops")  # pass 1: the top images
    spied(compiled.kernels(), "count_batch", lambda _: "batch")  # pass 2: a float16 batch counted in one pass
    runs = {}
    for limit, workers in ((10**12, 0), (0, 0), (0, 2)):
        monkeypatch.setattr(compiled, "COMPILED_MIN_MAPS", limit)
        runs[limit, workers] = score_model(loaded(tiny(), ["stem", "head"]), small, tmp_path / f"r{limit}-{workers}",
                                           settings(workers=workers)).results["layers"]
        engines = {p.name.split("-")[0] for p in tmp_path.glob("*-*") if p.is_file()}
        compiled_engines = {"batch", "fill", "group", "add", "above", "tops"}
        assert engines == ({"tensor", "pycocotools"} if limit else compiled_engines), (limit, workers)
        for p in tmp_path.glob("*-*"):
            if p.is_file():
                p.unlink()
    assert runs[10**12, 0] == runs[0, 0] == runs[0, 2]


def _acts(small, rows: list[int]) -> np.ndarray:
    pre = Preprocessing((64, 64))
    x = torch.stack([pre(open_image(small.rows[r]["image"]["bytes"])) for r in rows])
    return LayerTaps(tiny(), ["head"]).run(x)["head"].numpy()


def test_supplied_activations_score_like_the_model(small, tmp_path) -> None:
    rows = list(range(len(small)))
    path = tmp_path / "acts.npz"
    np.savez(path, activations=_acts(small, rows), image=np.asarray(small.ids), layer="head")
    supplied = SuppliedActivations(path, small)
    assert isinstance(supplied.array, np.memmap)  # uncompressed: read lazily, by positioned reads
    with np.load(path) as npz:
        assert torch.equal(supplied.read(3, 7), torch.from_numpy(npz["activations"][3:7].astype(np.float32)))
    got = score_activations(supplied, small, tmp_path / "acts", settings()).results
    ref = score_model(loaded(tiny(), ["head"]), small, tmp_path / "model", settings()).results
    assert got["model"]["source"] == "activations" and got["protocol"]["preprocess"]["kind"] == "supplied"
    assert got["layers"] == ref["layers"]


def test_supplied_activations_subset_in_any_order(small, tmp_path) -> None:
    rows = [9, 3, 17, 4, 0, 11, 20]
    path = tmp_path / "subset.npz"
    np.savez_compressed(path, activations=_acts(small, rows), image=np.asarray([small.ids[r] for r in rows]))
    results = score_activations(SuppliedActivations(path, small), small, tmp_path / "o", settings()).results
    assert results["dataset"]["num_images"] == len(rows)
    layer = results["layers"][0]
    assert layer["name"] == "activations" and layer["shape"] == [6, 8, 8]
    ids = {t["id"] for u in layer["units"] for t in u["top_images"]}
    assert ids <= {small.ids[r] for r in rows} and len(ids) > 1


@pytest.mark.parametrize(
    "arrays, message",
    [
        (lambda ids: {"activations": np.zeros((2, 3, 4, 4), np.float32), "image": np.asarray(["nope/1.jpg", ids[0]])},
         "image id 'nope/1.jpg' is not in the dataset"),
        (lambda ids: {"activations": np.zeros((2, 3, 4), np.float32), "image": np.asarray(ids[:2])},
         r"'activations' has shape \(2, 3, 4\); expected \(N, units, h, w\)"),
        (lambda ids: {"activations": np.zeros((3, 3, 4, 4), np.float32), "image": np.asarray(ids[:2])},
         "'image' must be 3 dataset ids"),
        (lambda ids: {"activations": np.zeros((2, 3, 4, 4), np.float32)}, "no 'image' array"),
        (lambda ids: {"activations": np.zeros((0, 3, 4, 4), np.float32), "image": np.asarray([], dtype=str)},
         "no activation rows"),
        (lambda ids: {"activations": np.zeros((2, 3, 4, 4), np.float32), "image": np.asarray([ids[1], ids[1]])},
         "appears twice"),
    ],
)
def test_supplied_activations_errors(small, tmp_path, arrays, message) -> None:
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays(small.ids))
    with pytest.raises(BrodenError, match=message):
        SuppliedActivations(path, small)


def test_supplied_nan_names_the_image(small, tmp_path) -> None:
    acts = np.zeros((3, 2, 4, 4), np.float32)
    acts[2, 1, 0, 0] = np.nan
    path = tmp_path / "nan.npz"
    np.savez(path, activations=acts, image=np.asarray(small.ids[:3]))
    with pytest.raises(BrodenError, match=f"NaN or Inf activations on image {small.ids[2]}"):
        score_activations(SuppliedActivations(path, small), small, tmp_path / "o", settings())
    assert not (tmp_path / "o" / "results.json").exists()


class Poison(nn.Module):
    """Identity, except NaN (or a value beyond float16) in the batch element whose index is ``at``."""

    def __init__(self, value: float, at: int) -> None:
        super().__init__()
        self.value, self.at = value, at

    def forward(self, x):
        x = x.clone()
        if x.shape[0] > self.at:
            x[self.at, 0, 0, 0] = self.value
        return x


@pytest.mark.parametrize("value, message", [(float("nan"), "NaN or Inf activations"), (1e6, "activations beyond float16's range")])
def test_bad_activations_name_layer_and_image(small, tmp_path, value, message) -> None:
    module = nn.Sequential(OrderedDict(conv=nn.Conv2d(3, 2, 3, stride=8), bad=Poison(value, at=2)))
    with pytest.raises(BrodenError, match=f"layer 'bad': {message}.* on image {small.ids[2]}; "):
        score_model(loaded(module, ["bad"]), small, tmp_path / "o", settings(batch_size=4))
    assert not (tmp_path / "o" / "results.json").exists()


class TinyViT(nn.Module):
    """Patch embedding + class token + one block: the block outputs (B, 1 + 16, C) tokens at 64 px."""

    def __init__(self, extra: int = 1) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.patch = nn.Conv2d(3, 5, 16, stride=16)
        self.cls = nn.Parameter(torch.randn(1, extra, 5))
        self.block = nn.Sequential(nn.Linear(5, 5), nn.GELU())

    def forward(self, x):
        tokens = self.patch(x).flatten(2).transpose(1, 2)
        tokens = torch.cat([self.cls.expand(x.shape[0], -1, -1), tokens], dim=1)
        return self.block(tokens)[:, 0]


def test_token_layer_dissected_as_grid(small, tmp_path) -> None:
    results = score_model(loaded(TinyViT(), ["block"]), small, tmp_path / "vit", settings()).results
    assert results["layers"][0]["shape"] == [5, 4, 4]
    with pytest.raises(BrodenError, match="19 tokens do not form a square grid"):
        score_model(loaded(TinyViT(extra=3), ["block"]), small, tmp_path / "bad", settings())
    ok = score_model(loaded(TinyViT(extra=3), ["block"], extra_tokens=3), small, tmp_path / "ok", settings()).results
    assert ok["layers"][0]["shape"] == [5, 4, 4]


def test_vector_layer_rejected(small, tmp_path) -> None:
    with pytest.raises(BrodenError, match=r"layer 'pool'.*\(batch, 6\) vector"):
        score_model(loaded(nn.Sequential(OrderedDict(body=tiny(), pool=nn.Flatten())), ["pool"]), small,
                    tmp_path / "o", settings())


def test_bad_settings_and_inputs(small, tmp_path) -> None:
    with pytest.raises(BrodenError, match="layer 'haed' not found.*closest: head"):
        score_model(loaded(tiny(), ["haed"]), small, tmp_path / "o", settings())
    with pytest.raises(BrodenError, match="no layers to dissect"):
        score_model(loaded(tiny()), small, tmp_path / "o", settings())
    with pytest.raises(BrodenError, match="category 'animal' is not in the dataset"):
        score_model(loaded(tiny(), ["head"]), small, tmp_path / "o", settings(categories=["object", "animal"]))
    with pytest.raises(BrodenError, match="--quantile"):
        score_model(loaded(tiny(), ["head"]), small, tmp_path / "o", settings(quantile=1.5))
    if not torch.cuda.is_available():
        with pytest.raises(BrodenError, match="--device cuda: CUDA is not available"):
            score_model(loaded(tiny(), ["head"]), small, tmp_path / "o", settings(device="cuda"))
    assert not (tmp_path / "o").exists()


def test_selected_categories_only(small, tmp_path) -> None:
    results = score_model(loaded(tiny(), ["head"]), small, tmp_path / "o",
                          settings(categories=["color", "object"])).results
    assert results["protocol"]["categories"] == ["object", "color"]
    assert all(set(u["categories"]) == {"object", "color"} for u in results["layers"][0]["units"])
    assert json.dumps(results)  # plain JSON


def test_image_level_categories_only(small, tmp_path) -> None:
    results = score_model(loaded(tiny(), ["head"]), small, tmp_path / "o", settings(categories=["scene"])).results
    units = results["layers"][0]["units"]
    assert any(u["categories"]["scene"]["truth"] > 0 for u in units)


def test_empty_dataset(tmp_path) -> None:
    class Empty:
        path = tmp_path / "empty"

        def __len__(self) -> int:
            return 0

    with pytest.raises(BrodenError, match="the dataset has no images"):
        score_model(loaded(tiny(), ["head"]), Empty(), tmp_path / "o", settings())


def test_undecodable_image_in_a_worker_is_one_line(small, tmp_path) -> None:
    from broden.dataset import write_dataset

    rows = [{**r, "image": {"bytes": b"not a jpeg", "path": None}} if i == 3 else r
            for i, r in enumerate(small.iter_rows())]
    broken = write_dataset(tmp_path / "broken", rows, small.labels)
    with pytest.raises(BrodenError) as info:
        score_model(loaded(tiny(), ["head"]), broken, tmp_path / "o", settings(workers=2))
    message = str(info.value)
    assert message.startswith(f"{small.ids[3]}: image does not decode") and "\n" not in message

    def bad_preprocess(image):
        raise ValueError("wrong mode")

    with pytest.raises(BrodenError, match=f"image {small.ids[0]}: preprocess raised ValueError: wrong mode"):
        score_model(loaded(tiny(), ["head"], preprocess=bad_preprocess), small, tmp_path / "o", settings(workers=2))
