"""The benchmark scripts (``bench/``, run by ``make bench``): every module they import, at the top or inside a
function, resolves from the script's folder and the repository root, as when they run, and so does every name
they import from one."""

from __future__ import annotations

import ast
import importlib.util
import sys

import pytest

from tests.helpers.paths import REPO

SCRIPTS = sorted((REPO / "bench").glob("*.py"))


def imported(path) -> dict[str, set[str]]:
    """Each module the script imports, with the names it imports from it (none for ``import module``)."""
    names: dict[str, set[str]] = {}
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                names.setdefault(alias.name, set())
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and node.module != "__future__":
            names.setdefault(node.module, set()).update(alias.name for alias in node.names)
    return names


@pytest.mark.parametrize("script", SCRIPTS, ids=[p.name for p in SCRIPTS])
def test_every_import_of_a_benchmark_script_resolves(script, monkeypatch) -> None:
    monkeypatch.setattr(sys, "path", [str(script.parent), str(REPO), *sys.path])
    helpers_loaded = "_common" in sys.modules
    missing = []
    try:
        for module, names in sorted(imported(script).items()):
            if importlib.util.find_spec(module) is None:
                missing.append(module)
                continue
            loaded = importlib.import_module(module) if names else None
            missing += [f"{module}.{name}" for name in sorted(names) if not hasattr(loaded, name)
                        and importlib.util.find_spec(f"{module}.{name}") is None]
    finally:
        if not helpers_loaded:  # the scripts' own helpers stay out of the other tests' modules
            sys.modules.pop("_common", None)
    assert missing == []


def test_make_bench_runs_every_script() -> None:
    listed = ast.literal_eval(next(node.value for node in ast.walk(ast.parse((REPO / "bench" / "run.py").read_text()))
                                   if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name)
                                   and node.targets[0].id == "SCRIPTS"))
    # not in it: the shared helpers, `make bench-full` (full_scale.py) and the GPU check (gpu_timing.py)
    assert set(listed) == {p.name for p in SCRIPTS} - {"run.py", "_common.py", "full_scale.py", "gpu_timing.py"}
