"""The benchmark scripts (``bench/``, run by ``make bench``): every module they import, at the top or inside a
function, resolves from the script's folder and the repository root, as when they run."""

from __future__ import annotations

import ast
import importlib.util
import sys

import pytest

from tests.helpers.paths import REPO

SCRIPTS = sorted((REPO / "bench").glob("*.py"))


def imported_modules(path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("script", SCRIPTS, ids=[p.name for p in SCRIPTS])
def test_every_import_of_a_benchmark_script_resolves(script, monkeypatch) -> None:
    monkeypatch.setattr(sys, "path", [str(script.parent), str(REPO), *sys.path])
    missing = [name for name in sorted(imported_modules(script)) if importlib.util.find_spec(name) is None]
    assert missing == []


def test_make_bench_runs_every_script() -> None:
    listed = ast.literal_eval(next(node.value for node in ast.walk(ast.parse((REPO / "bench" / "run.py").read_text()))
                                   if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name)
                                   and node.targets[0].id == "SCRIPTS"))
    # not in it: the shared helpers, `make bench-full` (full_scale.py) and the GPU check (gpu_timing.py)
    assert set(listed) == {p.name for p in SCRIPTS} - {"run.py", "_common.py", "full_scale.py", "gpu_timing.py"}
