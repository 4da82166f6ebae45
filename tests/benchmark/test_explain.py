"""Compositional explanations (`benchmark explain`): the fast search against the dense brute force in
naive_explain, planted `A AND NOT B` / `A OR B` units, the CLI, the summary, resume and bad inputs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from benchmark.cli import main as benchmark_main
from benchmark.explain import BeamSearch, ExplainSettings, explain, parse_units
from benchmark.results import load_explanations
from broden.dataset import load
from broden.errors import BrodenError
from tests.helpers.naive_explain import concept_masks, naive_explain, unit_mask


def _score(npz, dataset, out, *extra) -> dict:
    code = benchmark_main(["score", "--activations", str(npz), "--dataset", str(dataset), "--out", str(out),
                           "--workers", "0", *extra])
    assert code == 0
    return json.loads((out / "results.json").read_text())


def _as_tuple(formula: dict | None) -> tuple:
    if formula is None:
        return ()
    labels = [c["label_id"] for c in formula["concepts"]]
    return (labels[0], *zip(formula["operators"], labels[1:]))


@pytest.fixture(scope="module")
def random_run(sample_dataset, tmp_path_factory):
    """Random 7x7 float16 maps of 10 units on 40 random sample images, scored at the paper's quantile."""
    ds = load(sample_dataset)
    rng = np.random.default_rng(16)
    rows = np.sort(rng.choice(len(ds), 40, replace=False))
    acts = rng.standard_normal((len(rows), 10, 7, 7)).astype(np.float16)
    work = tmp_path_factory.mktemp("explain-random")
    np.savez(work / "acts.npz", activations=acts, image=np.array([ds.ids[r] for r in rows]))
    results = _score(work / "acts.npz", sample_dataset, work / "out")
    return ds, rows, acts, results, work


def _reference(ds, rows, acts, results, units, categories, beam, max_length, penalty=0.0):
    masks = concept_masks(ds, rows, categories)
    size = tuple(ds.meta["seg_size"])
    layer = results["layers"][0]
    return {u: naive_explain(unit_mask(acts[:, u], layer["units"][u]["threshold"], size), masks, beam, max_length,
                             penalty) for u in units}


def test_fast_search_equals_the_brute_force_for_lengths_one_to_three(random_run) -> None:
    ds, rows, acts, results, work = random_run
    units = [0, 2, 3, 5, 7, 9]
    outcome = explain(work / "out" / "results.json", ExplainSettings(units=units, workers=0), out=work / "x1")
    categories = results["protocol"]["categories"]
    expected = _reference(ds, rows, acts, results, units, categories, beam=5, max_length=3)
    got = outcome.explanations["layers"][0]["units"]
    assert [u["unit"] for u in got] == units
    for unit in got:
        ref = expected[unit["unit"]]
        assert len(ref) == 3, "every random unit overlaps some concept"
        for step, (formula, iou, score) in zip(unit["steps"], ref):
            assert (_as_tuple(step), step["iou"], step["score"]) == (formula, iou, score)
        assert unit["single"] == unit["steps"][0] and unit["formula"] == unit["steps"][-1]
        assert unit["steps"][2]["iou"] >= unit["steps"][1]["iou"] >= unit["steps"][0]["iou"] > 0
    assert load_explanations(outcome.path) == outcome.explanations


def test_complexity_penalty_and_beam_width_match_the_brute_force(random_run) -> None:
    ds, rows, acts, results, work = random_run
    units = [1, 4, 6, 8]
    settings = ExplainSettings(units=units, beam=3, complexity_penalty=0.05, categories=["object", "color", "scene"],
                               workers=0)
    got = explain(work / "out" / "results.json", settings, out=work / "x2").explanations["layers"][0]["units"]
    expected = _reference(ds, rows, acts, results, units, ["object", "color", "scene"], beam=3, max_length=3,
                          penalty=0.05)
    for unit in got:
        steps = [(_as_tuple(s), s["iou"], s["score"]) for s in unit["steps"]]
        assert steps == expected[unit["unit"]]
        assert all(c["category"] in ("object", "color", "scene") for s in unit["steps"] for c in s["concepts"])


def _pick_pair(ds, kind: str) -> tuple[int, int, np.ndarray, np.ndarray]:
    """Two object/material labels A, B on the sample with both masks, chosen so that the planted formula is the
    only IoU-1 formula: for AND NOT, B covers part of A; for OR, the two overlap little."""
    primary = ds.labels.primary_categories()
    pixel = [lab.number for lab in ds.labels.labels if primary.get(lab.number) in ("object", "material")]
    sh, sw = ds.meta["seg_size"]
    dense = {lab: np.zeros((len(ds), sh, sw), bool) for lab in pixel}
    for i in range(len(ds)):
        layers = np.concatenate([ds[i].pixel[c] for c in ds.pixel_categories])
        for lab in pixel:
            dense[lab][i] = (layers == lab).any(axis=0)
    sizes = {lab: int(m.sum()) for lab, m in dense.items()}
    best = None
    for a in pixel:
        for b in pixel:
            if a == b or not sizes[a] or not sizes[b]:
                continue
            both = int((dense[a] & dense[b]).sum())
            if kind == "and not":
                fit = both / sizes[a] if 0.1 < both / sizes[a] < 0.5 else 0
            else:
                fit = min(sizes[a], sizes[b]) / max(sizes[a], sizes[b]) if both == 0 else 0
            if fit > (best[0] if best else 0):
                best = (fit, a, b)
    assert best, f"the sample has no label pair for {kind}"
    _, a, b = best
    return a, b, dense[a], dense[b]


@pytest.fixture(scope="module")
def planted(sample_dataset, tmp_path_factory):
    ds = load(sample_dataset)
    a1, b1, ma1, mb1 = _pick_pair(ds, "and not")
    a2, b2, ma2, mb2 = _pick_pair(ds, "or")
    acts = np.stack([ma1 & ~mb1, ma2 | mb2], axis=1).astype(np.float16)  # at the segmentation size
    work = tmp_path_factory.mktemp("explain-planted")
    np.savez(work / "acts.npz", activations=acts, image=np.array(ds.ids))
    _score(work / "acts.npz", sample_dataset, work / "out", "--quantile", "0.5")
    return ds, (a1, b1), (a2, b2), work


@pytest.fixture(scope="module")
def planted_explained(planted) -> dict:
    """The planted units explained with the defaults, into explained/explanations.json."""
    work = planted[3]
    return explain(work / "out" / "results.json", ExplainSettings(workers=0), out=work / "explained").explanations


def test_planted_and_not_and_or_units_are_recovered_exactly(planted, planted_explained) -> None:
    ds, (a1, b1), (a2, b2), _ = planted
    first, second = planted_explained["layers"][0]["units"]
    assert _as_tuple(first["formula"]) == (a1, ("AND NOT", b1))
    assert first["formula"]["formula"] == f"{ds.labels.name(a1)} AND NOT {ds.labels.name(b1)}"
    assert first["formula"]["iou"] == 1.0 and first["single"]["iou"] < 1.0
    assert first["formula"]["intersection"] == first["formula"]["formula_pixels"] == first["active_pixels"]
    labels = [c["label_id"] for c in second["formula"]["concepts"]]
    assert second["formula"]["operators"] == ["OR"] and sorted(labels) == sorted([a2, b2])
    assert second["formula"]["iou"] == 1.0 and second["single"]["iou"] < 1.0
    # IoU 1 is reached at length 2; longer formulas only tie, and the beam keeps the older, shorter one
    assert [s["length"] for s in first["steps"]] == [1, 2, 2]


def test_the_complexity_penalty_counts_not_as_a_term(planted, planted_explained) -> None:
    """With (1 - p)^2 < IoU(A) < 1 - p, `A AND NOT B` (3 terms) loses to A alone; were NOT free it would win."""
    _, (a1, _), _, work = planted
    single = planted_explained["layers"][0]["units"][0]["single"]
    assert single["concepts"][0]["label_id"] == a1
    keep = (single["iou"] + single["iou"] ** 0.5) / 2  # strictly between IoU(A) and sqrt(IoU(A))
    settings = ExplainSettings(units=[0], max_length=2, complexity_penalty=1 - keep, workers=0)
    unit = explain(work / "out" / "results.json", settings, out=work / "p2").explanations["layers"][0]["units"][0]
    assert _as_tuple(unit["formula"]) == (a1,)
    assert unit["steps"][1] == unit["single"]


def test_cli_writes_validated_explanations_and_the_summary_prints_gains(planted, capsys) -> None:
    _, _, _, work = planted
    out = work / "cli"
    code = benchmark_main(["explain", str(work / "out" / "results.json"), "--units", "0-1", "--max-length", "2",
                           "--beam", "4", "--out", str(out), "--workers", "0"])
    assert code == 0
    doc = load_explanations(out / "explanations.json")
    assert doc["settings"]["max_length"] == 2 and doc["settings"]["beam"] == 4 and doc["settings"]["units"] == [0, 1]
    assert doc["settings"]["activations"] == "activations"
    assert not (out / "explain-cache").exists()
    capsys.readouterr()
    assert benchmark_main(["summary", str(out / "explanations.json"), "--explanations", "--format", "csv"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == "layer,length,units,mean_iou,mean_gain"
    length2 = lines[2].split(",")
    assert length2[1:3] == ["2", "2"] and float(length2[3]) == 1.0 and float(length2[4]) > 0


RESUMED = ExplainSettings(units=[0, 1, 2], workers=0, batch_size=8, checkpoint_every_s=0)


@pytest.fixture(scope="module")
def uninterrupted(random_run) -> dict:
    return explain(random_run[4] / "out" / "results.json", RESUMED, out=random_run[4] / "whole").explanations


@pytest.mark.parametrize("interrupted_pass", [0, 1])
def test_resume_in_the_middle_of_a_pass_gives_the_same_explanations(random_run, uninterrupted, monkeypatch,
                                                                    interrupted_pass) -> None:
    _, _, _, _, work = random_run
    settings, whole = RESUMED, uninterrupted
    real_add = BeamSearch.add
    calls = []

    def add_then_fail(self, *args):
        if self.passes_done == interrupted_pass:
            calls.append(1)
            if len(calls) == 3:  # the third of five batches
                raise KeyboardInterrupt
        real_add(self, *args)

    monkeypatch.setattr(BeamSearch, "add", add_then_fail)
    out = work / f"mid{interrupted_pass}"
    with pytest.raises(KeyboardInterrupt):
        explain(work / "out" / "results.json", settings, out=out)
    monkeypatch.setattr(BeamSearch, "add", real_add)
    seen = []
    monkeypatch.setattr(BeamSearch, "add", lambda self, *a: (seen.append(self.passes_done), real_add(self, *a)))
    again = explain(work / "out" / "results.json", settings, out=out)
    assert again.resumed_passes == interrupted_pass
    assert seen.count(interrupted_pass) == 3  # batches 3-5 of the interrupted pass, not the first two again
    assert again.explanations["layers"] == whole["layers"]


def test_bad_inputs_are_one_line_errors(random_run, tmp_path) -> None:
    ds, rows, acts, _results, work = random_run
    res = work / "out" / "results.json"
    with pytest.raises(BrodenError, match="--units"):
        explain(res, ExplainSettings(units=[10], workers=0), out=tmp_path)
    with pytest.raises(BrodenError, match="--units"):
        parse_units("5-2")
    assert parse_units("0-2,7,1") == [0, 1, 2, 7]
    with pytest.raises(BrodenError, match="no layer 'nope'"):
        explain(res, ExplainSettings(layers=["nope"], workers=0), out=tmp_path)
    with pytest.raises(BrodenError, match="--beam"):
        explain(res, ExplainSettings(beam=0), out=tmp_path)
    with pytest.raises(BrodenError, match="fix --categories"):
        explain(res, ExplainSettings(categories=["smell"], workers=0), out=tmp_path)
    other = acts.copy()
    other[:, 3] = other[:, 3] * 2  # not the scored activations: unit 3's top images peak elsewhere
    np.savez(tmp_path / "other.npz", activations=other, image=np.array([ds.ids[r] for r in rows]))
    with pytest.raises(BrodenError, match="unit 3: the activations differ"):
        explain(res, ExplainSettings(workers=0), out=tmp_path, activations=tmp_path / "other.npz")
    from broden.sample import write_sample

    other_ds = write_sample(tmp_path / "other-ds", num_images=8, size=64).path
    with pytest.raises(BrodenError, match="not the dataset the results were scored on"):
        explain(res, ExplainSettings(workers=0), out=tmp_path, dataset=other_ds)
    assert not (tmp_path / "explanations.json").exists()
    assert benchmark_main(["explain", str(res), "--units", "x", "--workers", "0"]) == 2


def test_label_sets_count_each_pixel_label_once() -> None:
    from benchmark.activations import PixelLabels
    from benchmark.explain import label_sets

    maps = torch.tensor([[[[3, 0], [3, 5]], [[3, 4], [0, 5]]]])  # (1, 2 layers, 2, 2): 3 twice at one pixel
    sets = label_sets(PixelLabels.of(maps), [[7, 3]], 8)  # image-level 7, and 3 also image-level
    per_pixel = [sorted(set(sets.labels[sets.of_pixel[p]].tolist()) - {0}) for p in range(4)]
    assert per_pixel == [[3, 7], [3, 4, 7], [3, 7], [3, 5, 7]]
    assert int(sets.counts.sum()) == 4


def test_report_shows_each_units_formula_beside_its_label(planted, planted_explained, tmp_path) -> None:
    import shutil

    from benchmark.html.report import build_report

    ds, (a1, b1), _, work = planted
    run = tmp_path / "run"
    shutil.copytree(work / "out", run)
    plain, _ = build_report(run / "results.json", out=tmp_path / "plain")
    assert "formula:" not in (plain / "layer-activations.html").read_text()
    shutil.copy(work / "explained" / "explanations.json", run / "explanations.json")
    report, _ = build_report(run / "results.json", out=tmp_path / "report")
    page = (report / "layer-activations.html").read_text()
    assert f"formula: <b>{ds.labels.name(a1)} AND NOT {ds.labels.name(b1)}</b> (IoU 1.000" in page
    assert page.count('class="others formula"') == 2
    results = json.loads((run / "results.json").read_text())
    results["created"] = "2000-01-01T00:00:00Z"
    (run / "results.json").write_text(json.dumps(results))
    with pytest.raises(BrodenError, match="explains another run"):
        build_report(run / "results.json", out=tmp_path / "stale")


MODEL_FILE = '''
from collections import OrderedDict

import torch
from torch import nn

LAYERS = ["conv"]


def build_model():
    torch.manual_seed(0)
    return nn.Sequential(OrderedDict(conv=nn.Conv2d(3, 6, 5, stride=4), pool=nn.AdaptiveAvgPool2d(1)))
'''


def test_model_scorer_cache_and_recomputed_passes_give_the_same_explanations(tmp_path) -> None:
    """The three ways to the activations (the model's forward pass, the scorer's kept cache) and the two ways to
    the later passes (the first pass's record, or recomputing when it is over budget) agree exactly."""
    from broden.sample import write_sample

    ds = write_sample(tmp_path / "ds", num_images=24, size=64).path
    model = tmp_path / "tiny.py"
    model.write_text(MODEL_FILE)
    for out, extra in (("plain", []), ("kept", ["--keep-cache"])):
        assert benchmark_main(["score", str(model), "--dataset", str(ds), "--out", str(tmp_path / out),
                               "--workers", "0", *extra]) == 0
    settings = ExplainSettings(workers=0)
    from_model = explain(tmp_path / "plain" / "results.json", settings).explanations
    from_cache = explain(tmp_path / "kept" / "results.json", settings).explanations
    recomputed = explain(tmp_path / "plain" / "results.json", ExplainSettings(workers=0, cache_budget_bytes=0),
                         out=tmp_path / "recomputed").explanations
    assert (from_model["settings"]["activations"], from_cache["settings"]["activations"]) == ("model", "scorer-cache")
    assert from_model["layers"] == from_cache["layers"] == recomputed["layers"]
    assert any(u["formula"] is not None and u["formula"]["length"] == 3 for u in from_model["layers"][0]["units"])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_gives_the_same_explanations_as_the_cpu(random_run) -> None:
    _, _, _, _, work = random_run
    cpu = explain(work / "out" / "results.json", ExplainSettings(workers=0), out=work / "on-cpu").explanations
    cuda = explain(work / "out" / "results.json", ExplainSettings(workers=0, device="cuda"),
                   out=work / "on-cuda").explanations
    assert cuda["layers"] == cpu["layers"]
