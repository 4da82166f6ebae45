"""The Python API: score a model (a spec or a ``torch.nn.Module`` in memory) and work with its results.

    import benchmark
    results = benchmark.score("timm:resnet18", "broden-sample", layers=["layer4"])
    results.summary()            # per layer: units, detectors, unique detectors per category
    results.units()              # one row per unit (a pandas DataFrame when pandas is installed)
    results.save("results/resnet18")
    results.report("results/resnet18/report")
    benchmark.load_results("results/resnet18/results.json")

``benchmark score`` is a thin layer over :func:`score`.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from broden.errors import BrodenError

RESULTS_FILE = "results.json"


class Results:
    """One dissection's results (schema ``broden-results/1``) and the directory holding them.

    ``data`` is the parsed results JSON. ``path`` is its ``results.json``; results scored without ``out`` live in a
    temporary directory removed with this object, so :meth:`save` them to keep them. ``skipped``: the run was
    already finished in ``out`` with the same model, layers, settings and dataset, and was not redone.
    """

    def __init__(self, data: dict[str, Any], path: Path, *, skipped: bool = False,
                 tmp: tempfile.TemporaryDirectory | None = None) -> None:
        self.data, self.path, self.skipped = data, Path(path), skipped
        self._tmp = tmp  # keeps the temporary directory alive as long as the results

    def __repr__(self) -> str:
        layers = ", ".join(layer["name"] for layer in self.data["layers"])
        return f"<Results {self.data['name']!r}: {layers} ({self.path})>"

    @property
    def name(self) -> str:
        return str(self.data["name"])

    def summary(self) -> dict[str, dict[str, Any]]:
        """Per layer: ``units``, ``detectors`` (``all`` and per category), ``unique_per_category`` and
        ``unique_top_label`` counts, as in the results file's layer summaries."""
        return {layer["name"]: layer["summary"] for layer in self.data["layers"]}

    def units(self):
        """One row per unit: layer, unit, category, label, iou, threshold, and each category's best label and IoU
        (``<category>_label``, ``<category>_iou``). A pandas DataFrame when pandas is importable, else a list of dicts."""
        categories = self.data["protocol"]["categories"]
        rows = []
        for layer in self.data["layers"]:
            for u in layer.get("units", []):
                row = {"layer": layer["name"], "unit": u["unit"], "category": u["category"], "label": u["label"],
                       "iou": u["iou"], "threshold": u.get("threshold")}
                for c in categories:
                    best = u["categories"].get(c, {})
                    row[f"{c}_label"], row[f"{c}_iou"] = best.get("label", ""), best.get("iou", 0.0)
                rows.append(row)
        try:
            import pandas as pd
        except ImportError:
            return rows
        return pd.DataFrame(rows)

    def save(self, out: str | os.PathLike[str]) -> Path:
        """Copy ``results.json`` and the files it names (``top_maps.npz``) into directory ``out``; returns the new
        ``results.json``. Existing files of the same names there are replaced atomically."""
        from broden.utils import atomic

        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        names = [*(self.data.get("artifacts") or {}).values(), RESULTS_FILE]  # results.json last: complete when there
        for name in names:
            src = self.path.parent / name
            if src.resolve() == (out / name).resolve():
                continue
            if not src.is_file():
                raise BrodenError(f"{src}: missing; the results directory is incomplete, score again")
            with atomic.atomic_path(out / name) as tmp:
                shutil.copyfile(src, tmp)
        self.path, self._tmp = out / RESULTS_FILE, None
        return self.path

    def report(self, out: str | os.PathLike[str] | None = None, *, dataset: str | os.PathLike[str] | None = None,
               top_images: int | None = None) -> Path:
        """Write the self-contained HTML report (``benchmark report``) to ``out`` (default: ``report/`` beside the
        results, which must then have been saved or scored with ``out``); returns its ``index.html``."""
        from benchmark.html.report import DEFAULT_TOP_IMAGES, build_report

        if out is None and self._tmp is not None:
            raise BrodenError("these results live in a temporary directory; pass report(out=DIR) or save() them first")
        root, _ = build_report(self.path, dataset=dataset, out=out,
                               top_images=DEFAULT_TOP_IMAGES if top_images is None else top_images)
        return root / "index.html"


def load_results(path: str | os.PathLike[str]) -> Results:
    """Read and validate a results file (or the ``results.json`` in a directory) into :class:`Results`."""
    from benchmark.results import load_results as read

    path = Path(path)
    if path.is_dir():
        path = path / RESULTS_FILE
    return Results(read(path), path)


def score(model: Any, dataset: Any, layers: list[str] | str | None = None, preprocess: Any = None,
          out: str | os.PathLike[str] | None = None, *, name: str | None = None,
          weights: str | os.PathLike[str] | None = None, seed: int = 0, **settings: Any) -> Results:
    """Dissect ``layers`` of ``model`` on ``dataset`` with Network Dissection; returns the :class:`Results`.

    ``model``: a model spec (``"torchvision:resnet18:IMAGENET1K_V1"``, ``"timm:convnext_tiny"``, ``"hf:/dir"``, a
    ``.py``/``.pt2``/``.onnx`` file; see :mod:`benchmark.models.loader`), a ``torch.nn.Module`` in memory, or a
    :class:`~benchmark.models.loader.LoadedModel`. ``dataset``: a Broden dataset directory or an opened
    :class:`broden.Broden`. ``layers``: dotted module names (a comma-separated string works too); default: the
    model's default layer. ``preprocess``: a :class:`~benchmark.models.loader.Preprocessing` or any callable
    PIL RGB image -> (3, H, W) float tensor (recorded as given by the caller); default: the model's own (whole image
    resized, never cropped, the model's mean/std), with a warning when the one given disagrees with the model's.
    ``out``: the results directory (default: a temporary one; :meth:`Results.save` keeps it). ``name``: display
    name. ``weights``: a state dict file loaded into the model (sha256 recorded). ``seed``: for random
    initialisations (``:none`` specs). ``settings``: any field of :class:`benchmark.scorer.Settings` (``device``
    (default ``auto``), ``batch_size``, ``quantile``, ``iou_threshold``, ``categories``, ``compat``, ``top_k``,
    ``workers``, ``amp``, ``quiet``, ``force``, ...). Every failure is a :class:`broden.errors.BrodenError` with a
    one-line message.
    """
    from dataclasses import fields

    from benchmark.models.loader import (
        LoadedModel,
        Preprocessing,
        from_module,
        load_model,
    )
    from benchmark.scorer import Settings, score_model

    known = {f.name for f in fields(Settings)} - {"layers"}
    unknown = sorted(set(settings) - known)
    if unknown:
        raise BrodenError(f"score(): unknown setting {unknown[0]!r}; use one of {', '.join(sorted(known))}")
    if isinstance(model, str):
        loaded = load_model(model, weights_file=weights, seed=seed)
    elif isinstance(model, LoadedModel):
        loaded = model
    else:
        loaded = from_module(model, name=name)
        if weights is not None:
            from benchmark.models.loader import load_weights_file

            load_weights_file(loaded, Path(weights), loaded.name)
    if name:
        loaded.name = name
    if isinstance(preprocess, Preprocessing) and set(preprocess.sources.values()) == {"default"}:
        preprocess.sources = dict.fromkeys(preprocess.sources, "caller")  # built by the caller, sources unnamed
    if preprocess is not None:
        loaded.preprocess = preprocess  # a callable is wrapped (and its statistics probed) by resolve_preprocess
    config = Settings(layers=[s.strip() for s in layers.split(",") if s.strip()] if isinstance(layers, str) else
                      (list(layers) if layers else None), **settings)
    data = _open_dataset(dataset)
    tmp = tempfile.TemporaryDirectory(prefix="broden-score-") if out is None else None
    outcome = score_model(loaded, data, Path(out) if out is not None else Path(tmp.name), config)
    return Results(outcome.results, outcome.path, skipped=outcome.skipped, tmp=tmp)


def _open_dataset(dataset: Any):
    from broden.dataset import Broden, load

    if isinstance(dataset, Broden):
        return dataset
    path = Path(dataset)
    if not path.exists():
        raise BrodenError(f"{path}: dataset not found; make one with 'broden sample' or 'broden download'")
    return load(path)
