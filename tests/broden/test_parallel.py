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


# -- Forked: one call in a forked child --------------------------------------------------------------------------
forks = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="fork is Linux's way only")


@forks
def test_a_forked_call_runs_in_a_child_and_returns_its_value() -> None:
    import os

    seen: list[int] = []

    def call() -> dict:
        seen.append(os.getpid())  # in the child's copy of the list
        return {"pid": os.getpid(), "seen": list(seen)}

    with parallel.Forked("the count", call) as job:
        assert job.in_child
        value = job.result()
    assert not job.in_child and not parallel.Forked("the nothing", lambda: None, fork=False).in_child
    assert value["pid"] != os.getpid() and value["seen"] == [value["pid"]]
    assert seen == []  # the caller's memory is untouched
    assert job.result() == value  # asked again: the same value, the child long gone


@pytest.mark.parametrize("fork", [pytest.param(True, marks=forks), False])
def test_a_forked_call_raises_what_it_raised(fork: bool) -> None:
    from broden.errors import BrodenError

    def refused() -> None:
        raise BrodenError("ds: [layer] mask 0 is bad; run 'broden validate ds'", 3)

    def crashed() -> None:
        raise ValueError("boom")

    with pytest.raises(BrodenError, match=r"^ds: \[layer\] mask 0 is bad") as err:
        parallel.Forked("the check of ds", refused, fork=fork).result()
    assert err.value.exit_code == 3
    with pytest.raises(BrodenError, match=r"^the check of ds failed: ValueError: boom$") as err:
        parallel.Forked("the check of ds", crashed, fork=fork).result()
    assert err.value.exit_code == 1


@forks
def test_a_forked_child_that_dies_is_reported() -> None:
    import os
    import signal

    from broden.errors import BrodenError

    with pytest.raises(BrodenError, match=r"^the check of ds stopped with exit code -9; run it again$"):
        parallel.Forked("the check of ds", lambda: os.kill(os.getpid(), signal.SIGKILL)).result()


@forks
def test_leaving_the_block_stops_a_forked_child_still_running() -> None:
    import os
    import time

    start = time.monotonic()
    with parallel.Forked("the nap", lambda: time.sleep(120)) as job:
        pid = job._process.pid
    assert time.monotonic() - start < 30
    with pytest.raises(ChildProcessError):  # stopped and reaped: no zombie left behind
        os.waitpid(pid, os.WNOHANG)
