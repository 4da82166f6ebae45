"""The ordered process map: inline when worker processes would run the caller's script again."""

from __future__ import annotations

import sys
import types

import pytest

from broden.utils import parallel


def _main(monkeypatch, tmp_path, source: str | None, spec_name: str | None = None) -> None:
    main = types.ModuleType("__main__")
    if source is not None:
        path = tmp_path / "script.py"
        path.write_text(source)
        main.__file__ = str(path)
    main.__spec__ = types.SimpleNamespace(name=spec_name) if spec_name else None
    monkeypatch.setitem(sys.modules, "__main__", main)


@pytest.mark.parametrize(("source", "spec_name", "can"), [
    ("import broden\nbroden.validate_dataset('x')\n", None, False),  # top-level work: would run again
    ("def main():\n    ...\n\nif __name__ == '__main__':\n    main()\n", None, True),
    ('if __name__ == "__main__":\n    raise SystemExit(main())\n', None, True),  # an installed command's script
    ("raise SystemExit(main())\n", "benchmark.__main__", True),  # python -m benchmark: not imported again
    ("do_work()\n", "mytool.run", False),  # python -m mytool.run: imported again as __mp_main__
    (None, None, True),  # interactive, notebook, python -c
])
def test_workers_start_only_where_the_caller_is_not_run_again(monkeypatch, tmp_path, source, spec_name, can) -> None:
    _main(monkeypatch, tmp_path, source, spec_name)
    assert parallel.workers_can_start() is can


def test_an_unguarded_caller_gets_the_map_inline(monkeypatch, tmp_path) -> None:
    _main(monkeypatch, tmp_path, "work()\n")
    monkeypatch.setattr(parallel, "ProcessPoolExecutor", None)  # would fail if a pool were started
    assert list(parallel.ordered_map(abs, [-1, 2, -3], workers=4)) == [1, 2, 3]
