"""Scoring: IoU from counts, winners per category and overall, tie rules, and the schema's unit object."""

from __future__ import annotations

import json

import jsonschema
import numpy as np
import pytest
import torch

from benchmark.scoring import iou_matrix, score_units
from benchmark.tally import Tally
from tests.helpers.naive_tally import naive_scores, naive_tally
from tests.helpers.paths import REPO
from tests.helpers.tally_data import CATS, NUM_LABELS, PRIMARY, random_batch, run_tally, unit_thresholds

NAMES = {n: f"label{n}" for n in range(1, NUM_LABELS)}


def tally_with(inter, truth, act_cat, categories, primary, compat="netdissect") -> Tally:
    tally = Tally(len(inter), len(truth), categories, primary, compat=compat)
    tally.intersection = torch.tensor(inter, dtype=torch.int64)
    tally.truth = torch.tensor(truth, dtype=torch.int64)
    tally.activation_by_category = torch.tensor(act_cat, dtype=torch.int64)
    return tally


def test_iou_and_tie_rules() -> None:
    # labels 1, 2 object; 3 part. unit 0: labels 1 and 2 tie (IoU 1/4) -> label 1. unit 1: object and part tie at
    # 1/3 -> the earlier category (object). unit 2: nothing -> "" everywhere. unit 3: part wins outright.
    tally = tally_with(
        inter=[[0, 2, 2, 0], [0, 2, 0, 1], [0, 0, 0, 0], [0, 0, 0, 3]],
        truth=[0, 4, 4, 3],
        act_cat=[[6, 6], [4, 1], [5, 0], [3, 4]],
        categories=["object", "part"], primary={1: "object", 2: "object", 3: "part"},
    )
    assert iou_matrix(tally)[0].tolist() == [-1.0, 0.25, 0.25, 0.0]
    units = score_units(tally, NAMES)
    assert [(u["label"], u["category"], u["iou"]) for u in units] == [
        ("label1", "object", 0.25), ("label1", "object", pytest.approx(1 / 3)), ("", "", 0.0),
        ("label3", "part", pytest.approx(3 / 4)),
    ]
    assert units[1]["categories"]["part"] == {
        "label": "label3", "label_id": 3, "iou": pytest.approx(1 / 3), "intersection": 1, "activation": 1, "truth": 3,
    }
    assert units[2]["categories"]["part"] == {
        "label": "", "label_id": None, "iou": 0.0, "intersection": 0, "activation": 0, "truth": 0,
    }


def test_lite_scores_label_zero_in_the_last_category() -> None:
    tally = tally_with(inter=[[2, 0]], truth=[4, 0], act_cat=[[0, 2]], categories=["object", "scene"],
                       primary={1: "object"}, compat="netdissect-lite")
    unit = score_units(tally, NAMES)[0]
    assert (unit["label"], unit["category"], unit["iou"]) == ("", "scene", 0.5)
    assert unit["categories"]["scene"]["label_id"] == 0


@pytest.mark.parametrize("compat", ["netdissect", "netdissect-lite"])
def test_scores_match_naive_and_schema(compat: str) -> None:
    rng = np.random.default_rng(11)
    batches = [random_batch(rng, 6, 8) for _ in range(2)]
    thresholds = unit_thresholds(batches, 0.9)
    counts = naive_tally(batches, thresholds, NUM_LABELS, CATS, PRIMARY, compat)
    units = score_units(run_tally(batches, thresholds, compat), NAMES)
    expected = naive_scores(counts, CATS, PRIMARY, compat)
    got = [(u["category"], u["categories"][u["category"]]["label_id"] if u["category"] else None, u["iou"])
           for u in units]
    assert [(c, lab) for c, lab, _ in got] == [(c, lab) for c, lab, _ in expected]
    np.testing.assert_allclose([i for *_, i in got], [i for *_, i in expected], rtol=1e-12)
    schema = json.loads((REPO / "benchmark" / "schema" / "results-v1.json").read_text())
    unit_schema = {"$defs": schema["$defs"], **schema["$defs"]["unit"]}
    for unit in units:
        jsonschema.validate(unit, unit_schema)
