"""The paper's baselines for one model (Bau et al. 2017, section 3.2): rotated units and random weights.

``benchmark baselines MODEL --layers L`` scores the model with its units rotated by ``Q^alpha`` for each alpha of
``ALPHAS`` (alpha 0 is the plain run; :mod:`benchmark.rotation`), then a random-init copy of the model (every
module's ``reset_parameters()`` after ``torch.manual_seed(seed)``: the architecture's own initialisation, no
training), and writes one comparison (:mod:`benchmark.html.compare`, checkpoints mode) whose curves show unique
detectors per category against alpha, with random-init as the last point. Each run is a full ``benchmark score``
run into its own folder (so ``len(ALPHAS) + 1`` forward passes); finished runs are reused when run again.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

from benchmark.html.compare import build_compare
from benchmark.models.loader import LoadedModel, seeded
from benchmark.scorer import Settings, score_model
from broden.dataset import Broden

ALPHAS = (0.0, 0.25, 0.5, 0.75, 1.0)
RANDOM_INIT = "reset_parameters() of every module after torch.manual_seed(seed)"


def random_init_copy(model: LoadedModel, seed: int) -> LoadedModel:
    """``model`` with random weights: its modules re-initialised in place from ``seed`` (the trained weights are lost).

    For a spec with its own random form (``torchvision:NAME:none --seed S``, ``timm:NAME:none``), scoring that spec
    gives the library's initialisation instead; this works for every model, model files included.
    """
    with seeded(int(seed)):
        for module in model.module.modules():
            reset = getattr(module, "reset_parameters", None)
            if callable(reset):
                reset()
    metadata = {**model.metadata, "training_data": None, "weights_url": None, "weights_sha256": None,
                "random_init": {"seed": int(seed), "method": RANDOM_INIT}}
    return replace(model, name=f"{model.name} (random init, seed {seed})", weights_sha256=None, weights_url=None,
                   weights={"kind": "random", "seed": int(seed), "method": RANDOM_INIT}, metadata=metadata)


def run_baselines(model: LoadedModel, dataset: Broden, out: str | os.PathLike[str], settings: Settings,
                  alphas: tuple[float, ...] = ALPHAS) -> tuple[Path, list[Path]]:
    """Score the rotations and the random-init copy into ``out``; return the comparison folder and results files."""
    out = Path(out)
    paths, names = [], []
    for alpha in alphas:
        outcome = score_model(model, dataset, out / f"alpha-{alpha:g}", replace(settings, rotate=alpha))
        paths.append(outcome.path)
        names.append(f"alpha {alpha:g}")
    random = random_init_copy(model, settings.seed)
    paths.append(score_model(random, dataset, out / "random-init", replace(settings, rotate=None)).path)
    names.append("random init")
    report = build_compare(paths, out=out / "comparison", names=names, mode="checkpoints").path
    return report, paths
