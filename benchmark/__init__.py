"""benchmark: Network Dissection of any model's units on a Broden dataset.

The Python API (imported on first use, so ``import benchmark`` stays fast):

``score(model_or_spec, dataset, layers=None, preprocess=None, out=None, **settings) -> Results``
``load_results(path) -> Results``
``Results``        ``.summary()``, ``.units()``, ``.save(out)``, ``.report(out)``
``load_model(spec) -> LoadedModel`` and ``Preprocessing`` (whole-image resize, mean/std, with their sources)
"""

from __future__ import annotations

from typing import Any

from broden.version import __version__

_LAZY = {
    "score": "benchmark.api",
    "load_results": "benchmark.api",
    "Results": "benchmark.api",
    "load_model": "benchmark.models.loader",
    "LoadedModel": "benchmark.models.loader",
    "Preprocessing": "benchmark.models.loader",
    "Settings": "benchmark.scorer",
}

__all__ = ["LoadedModel", "Preprocessing", "Results", "Settings", "__version__", "load_model", "load_results", "score"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'benchmark' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
