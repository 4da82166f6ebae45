"""Confidence intervals, the held-out protocol and the rotation baseline.

The planted fixture (as in test_planted_end_to_end): on the sample dataset, four units whose maps are exactly one
concept's mask (IoU 1), two that carry their concept's mask only in a seeded half of the images (IoU about 0.5 by
design: the share of the concept's pixels in the kept images), and four noise units that are on or off over whole
images at random (any IoU they reach is chance coincidence, which the held-out protocol must not reward).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from benchmark import bootstrap
from benchmark.cli import main as benchmark_main
from benchmark.rotation import random_rotation, rotation_power
from benchmark.tally import Tally, TallyInput
from broden.dataset import load
from tests.benchmark.test_planted_end_to_end import _pick
from tests.helpers.tally_data import CATS, NUM_LABELS, PRIMARY, random_batch, unit_thresholds

NOISE_UNITS = 4


def _score(args: list[str]) -> dict:
    out = args[args.index("--out") + 1]
    assert benchmark_main(["score", *args]) == 0
    with open(f"{out}/results.json") as f:
        return json.load(f)


@pytest.fixture(scope="module")
def planted(sample_dataset, tmp_path_factory):
    ds = load(sample_dataset)
    concepts = {c: _pick(ds, c, exclusive=c in ("object", "material")) for c in ("object", "material", "scene", "texture")}
    halves = {c: concepts[c] for c in ("object", "material")}
    rng = np.random.default_rng(7)
    kept = rng.random((len(ds), len(halves))) < 0.5
    sh, sw = ds.meta["seg_size"]
    units = len(concepts) + len(halves) + NOISE_UNITS
    acts = np.zeros((len(ds), units, sh, sw), np.float16)
    for i in range(len(ds)):
        sample = ds[i]
        layers = np.concatenate([sample.pixel[c] for c in ds.pixel_categories])
        for k, (category, label) in enumerate(concepts.items()):
            if ds.labels.category(category).kind == "image":
                acts[i, k] = float(label in sample.image_labels[category])
            else:
                acts[i, k] = (layers == label).sum(axis=0)
        for j, label in enumerate(halves.values()):
            acts[i, len(concepts) + j] = (layers == label).sum(axis=0) * kept[i, j]
    acts[:, -NOISE_UNITS:] = rng.random((len(ds), NOISE_UNITS, 1, 1)) < 0.3
    work = tmp_path_factory.mktemp("intervals")
    npz = work / "acts.npz"
    np.savez(npz, activations=acts, image=np.array(ds.ids))
    common = ["--activations", str(npz), "--dataset", str(sample_dataset), "--quantile", "0.5", "--batch-size", "64"]
    plain = _score([*common, "--out", str(work / "plain")])
    rotated0 = _score([*common, "--out", str(work / "alpha0"), "--rotate", "0", "--seed", "0"])
    return {"ds": ds, "concepts": concepts, "halves": halves, "plain": plain, "alpha0": rotated0, "common": common,
            "work": work}


def test_exact_units_have_degenerate_intervals_and_half_units_contain_their_design_iou(planted) -> None:
    units = planted["plain"]["layers"][0]["units"]
    for unit in units[:4]:
        assert unit["iou"] == 1.0 and unit["iou_interval"] == [1.0, 1.0]
    for unit in units[4:6]:
        lo, hi = unit["iou_interval"]
        print(f"half unit {unit['unit']}: IoU {unit['iou']:.3f} [{lo:.3f}, {hi:.3f}]")
        assert lo < 0.5 < hi and lo <= unit["iou"] <= hi
        assert hi - lo < 0.5


def test_count_intervals_bracket_the_counts_and_go_into_the_schema(planted) -> None:
    results = planted["plain"]
    layer = results["layers"][0]
    boot = results["protocol"]["bootstrap"]
    assert results["schema"] == "broden-results/2"
    assert (boot["folds"], boot["replicates"], boot["seed"]) == (bootstrap.FOLDS, bootstrap.REPLICATES, 0)
    assert sum(boot["fold_images"]) == len(planted["ds"]) and len(boot["fold_images"]) == bootstrap.FOLDS
    for rule in bootstrap.INTERVAL_RULES:
        for lo, hi in layer["intervals"][rule].values():
            assert lo <= hi
    # the exact units are detectors in every replicate: the top-label count never falls below them
    assert layer["intervals"]["unique_top_label"]["all"][0] >= 4
    replicates = layer["intervals"]["replicates"]["unique_per_category"]["all"]
    assert len(replicates) == bootstrap.REPLICATES


def test_held_out_iou_of_noise_units_is_below_their_same_data_iou(planted) -> None:
    results = planted["plain"]
    units = results["layers"][0]["units"]
    assert results["protocol"]["held_out"] == {"label_split": "train", "iou_split": "val"}
    noise = units[-NOISE_UNITS:]
    same = np.mean([u["iou"] for u in noise])
    held = np.mean([u["held_out"]["iou"] for u in noise])
    print(f"noise units: mean same-data IoU {same:.4f}, mean held-out IoU {held:.4f}")
    assert held < same
    for unit in units[:4]:  # a real detector keeps its label and IoU 1 on held-out images
        assert (unit["held_out"]["label"], unit["held_out"]["iou"]) == (unit["label"], 1.0)
    assert "summary" in results["layers"][0]["held_out"]


def test_alpha_zero_is_the_plain_run_and_the_rotation_is_recorded(planted) -> None:
    plain, rotated = planted["plain"], planted["alpha0"]
    assert rotated["layers"] == plain["layers"]
    assert rotated["protocol"]["rotation"]["alpha"] == 0 and rotated["protocol"]["rotation"]["seed"] == 0
    assert plain["protocol"]["rotation"] is None


def test_full_rotation_mixes_the_planted_units(planted) -> None:
    work = planted["work"]
    rotated = _score([*planted["common"], "--out", str(work / "alpha1"), "--rotate", "1", "--seed", "5"])
    assert rotated["protocol"]["rotation"]["alpha"] == 1.0
    plain_ious = [u["iou"] for u in planted["plain"]["layers"][0]["units"]]
    rotated_ious = [u["iou"] for u in rotated["layers"][0]["units"]]
    assert sum(i == 1.0 for i in plain_ious) == 4 and sum(i == 1.0 for i in rotated_ious) == 0


# --- the bootstrap on its own --------------------------------------------------------------------------------------


def _ids(n: int, offset: int = 0) -> list[str]:
    return [f"images/{offset + i:05d}.jpg" for i in range(n)]


def _tally(batches, thresholds, ids_per_batch) -> Tally:
    tally = Tally(thresholds.shape[0], NUM_LABELS, CATS, PRIMARY)
    for (acts, maps, image_labels), ids in zip(batches, ids_per_batch):
        tally.add(TallyInput(torch.from_numpy(acts), torch.from_numpy(maps), image_labels, bootstrap.fold_tensor(ids),
                             torch.tensor([bootstrap.fold_of(i) < 11 for i in ids])), torch.from_numpy(thresholds))
    return tally


def test_fold_tallies_sum_to_the_totals_and_ignore_order_and_world_size() -> None:
    from benchmark.scoring import score_units

    rng = np.random.default_rng(4)
    batches = [random_batch(rng, 8, 6) for _ in range(4)]
    ids = [_ids(8, 8 * b) for b in range(4)]
    thresholds = unit_thresholds(batches, 0.8)
    whole = _tally(batches, thresholds, ids)
    for name in ("intersection", "truth", "activation_by_category"):
        assert torch.equal(getattr(whole, f"fold_{name}").sum(dim=0), getattr(whole, name)), name
    assert int(whole.fold_images.sum()) == whole.images == 32
    # the same images, shuffled into other batches and tallied on two "processes", then merged
    order = rng.permutation(32)
    flat = [(b, j) for b in range(4) for j in range(8)]

    def regroup(part):
        picked = [flat[k] for k in part]
        acts = np.stack([batches[b][0][j] for b, j in picked])
        maps = np.stack([batches[b][1][j] for b, j in picked])
        labels = [batches[b][2][j] for b, j in picked]
        return (acts, maps, labels), [ids[b][j] for b, j in picked]

    parts = [regroup(order[:13]), regroup(order[13:20]), regroup(order[20:])]
    rank0 = _tally([parts[0][0]], thresholds, [parts[0][1]])
    rank1 = _tally([p[0] for p in parts[1:]], thresholds, [p[1] for p in parts[1:]])
    rank0.merge(rank1)
    state_a, state_b = whole.state_dict(), rank0.state_dict()
    for key, value in state_a.items():
        assert torch.equal(value, state_b[key]) if isinstance(value, torch.Tensor) else value == state_b[key], key
    names = {n: f"label{n}" for n in range(NUM_LABELS)}
    units_a, units_b = score_units(whole, names), score_units(rank0, names)
    a = bootstrap.layer_intervals(whole, units_a, 0.04, replicates=200, seed=3)
    b = bootstrap.layer_intervals(rank0, units_b, 0.04, replicates=200, seed=3)
    assert a == b and units_a == units_b  # reproducible with a seed, whatever the order and world size
    c = bootstrap.layer_intervals(whole, score_units(whole, names), 0.04, replicates=200, seed=4)
    assert c["replicates"] != a["replicates"]


def test_all_ones_weights_reproduce_the_summary() -> None:
    from benchmark.scoring import score_units
    from benchmark.summary import summarize_layer

    rng = np.random.default_rng(9)
    batches = [random_batch(rng, 10, 12) for _ in range(3)]
    tally = _tally(batches, unit_thresholds(batches, 0.7), [_ids(10, 10 * b) for b in range(3)])
    units = score_units(tally, {n: f"label{n}" for n in range(NUM_LABELS)})
    summary = summarize_layer(units, CATS, 0.1)
    labels = torch.tensor([[u["categories"][c]["label_id"] or -1 for c in CATS] for u in units])
    top = torch.tensor([CATS.index(u["category"]) if u["category"] else -1 for u in units])
    ones = torch.ones(1, tally.folds, dtype=torch.int64)
    iou = bootstrap._replicate_ious(bootstrap._labelled_counts(tally, labels), ones, labels)
    counts = bootstrap._replicate_counts(iou, labels, top, 0.1, NUM_LABELS)
    for rule, values in counts.items():
        assert values[0].tolist() == [summary[rule][c] for c in [*CATS, "all"]], rule


def test_replicate_weights_draw_the_non_empty_folds() -> None:
    w = bootstrap.replicate_weights([3, 0, 5, 1], 500, seed=1)
    assert torch.equal(w, bootstrap.replicate_weights([3, 0, 5, 1], 500, seed=1))
    assert (w[:, 1] == 0).all() and (w.sum(dim=1) == 3).all()
    assert bootstrap.paired_interval([5] * 10, [5] * 10) == (0, 0)


# --- the rotation ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [6, 7])
def test_rotation_powers_interpolate_identity_and_the_random_rotation(n: int) -> None:
    q = random_rotation(n, seed=2)
    eye = torch.eye(n, dtype=torch.float64)
    assert torch.allclose(q @ q.T, eye, atol=1e-12) and torch.linalg.det(q) > 0
    assert torch.equal(random_rotation(n, seed=2), q)
    assert torch.allclose(rotation_power(q, 0.0), eye, atol=1e-10)
    assert torch.allclose(rotation_power(q, 1.0), q, atol=1e-10)
    half = rotation_power(q, 0.5)
    assert torch.allclose(half @ half, q, atol=1e-10) and torch.allclose(half @ half.T, eye, atol=1e-10)
    # the distance from the identity grows with alpha
    dist = [float(torch.linalg.matrix_norm(rotation_power(q, a) - eye)) for a in (0.25, 0.5, 0.75, 1.0)]
    assert dist == sorted(dist)


def test_bad_rotation_alpha_is_a_one_line_error(planted, capsys) -> None:
    code = benchmark_main(["score", *planted["common"], "--out", str(planted["work"] / "bad"), "--rotate", "1.5"])
    assert code != 0
    err = capsys.readouterr().err
    assert err.startswith("error: --rotate 1.5") and "Traceback" not in err
    assert not (planted["work"] / "bad").exists()


# --- schema versions and the leaderboard ---------------------------------------------------------------------------


def test_v1_files_keep_the_v1_schema_and_v2_adds_the_intervals() -> None:
    from benchmark.results import validate_results
    from broden.errors import BrodenError
    from tests.helpers.paths import REPO

    seed = REPO / "leaderboard" / "submissions"
    doc = json.loads(next(p for p in sorted(seed.glob("*.json"))).read_text())
    assert doc["schema"] == "broden-results/1"
    validate_results(doc)
    doc["layers"][-1]["intervals"] = {"unique_per_category": {"all": [1, 2]}}
    with pytest.raises(BrodenError, match="intervals"):
        validate_results(doc)  # not a version-1 field
    validate_results({**doc, "schema": "broden-results/2"})
    with pytest.raises(BrodenError, match="broden-results/9.*upgrade"):
        validate_results({**doc, "schema": "broden-results/9"})


def test_v2_schema_keeps_every_v1_field_unchanged() -> None:
    """Version 2 only adds: every version-1 definition is in it, the same, apart from the containers of additions."""
    from benchmark.results import schema

    v1, v2 = schema("broden-results/1"), schema("broden-results/2")

    def walk(a: dict, b: dict, path: str) -> None:
        for key, value in a.items():
            assert key in b, f"{path}.{key} is missing from version 2"
            if key in ("schema", "$id", "title", "description") and path in ("", ".properties"):
                continue
            if isinstance(value, dict):
                walk(value, b[key], f"{path}.{key}")
            else:
                assert b[key] == value, f"{path}.{key} differs"

    walk(v1, v2, "")


def test_leaderboard_marks_neighbours_whose_intervals_overlap() -> None:
    from leaderboard.site import Entry, mark_overlaps

    def entry(interval):
        layer = {"summary": {}, **({"intervals": {"unique_per_category": {"all": interval}}} if interval else {})}
        return Entry("x.json", "x", {"layers": [layer]}, [])

    entries = [entry([40, 50]), entry([45, 48]), entry([20, 30]), None, entry([10, 12])]
    entries[3] = entry(None)
    mark_overlaps(entries)
    assert [e.overlaps for e in entries] == [True, True, False, False, False]


def test_report_and_summary_show_the_intervals_and_the_held_out_protocol(planted, sample_dataset, capsys) -> None:
    from benchmark.html.report import build_report

    results = planted["work"] / "plain" / "results.json"
    out, _ = build_report(results, out=planted["work"] / "report", dataset=sample_dataset)
    page = next(out.glob("layer-*.html")).read_text()
    layer = planted["plain"]["layers"][0]
    lo, hi = layer["intervals"]["unique_per_category"]["all"]
    assert f'{layer["summary"]["unique_per_category"]["all"]} <span class="ci">[{lo}, {hi}]</span>' in page
    assert 'IoU 1.000 <span class="ci">[1.000, 1.000]</span>' in page and 'id="held-out"' in page
    assert benchmark_main(["summary", str(results)]) == 0
    printed = capsys.readouterr().out
    assert f'{layer["summary"]["unique_per_category"]["all"]} [{lo}, {hi}]' in printed
    assert "unique-per-category (held-out)" in printed
