"""Ordered, bounded parallel map over a process pool: CPU-heavy per-item work with a single consumer; and one call
computed in a forked child process while the caller goes on (:class:`Forked`).

Converting, exporting and validating all decode or encode images and masks per row while one main-process writer
(or checker) consumes the results in input order. Only a bounded window of items is in flight, so memory stays flat
however large the dataset; with one worker everything runs inline (no pool start-up cost for small inputs).

Workers start from a forkserver, which imports the ``__main__`` module again in each of them. A script that does its
work at the top level, without an ``if __name__ == "__main__":`` guard (a common way to call the Python API), would
run again there; for such a caller the map runs inline instead (:func:`workers_can_start`).
"""

from __future__ import annotations

import multiprocessing
import os
import re
import signal
import sys
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from types import TracebackType
from typing import Any, Generic, TypeVar

from broden.errors import BrodenError

T = TypeVar("T")
R = TypeVar("R")


def default_workers() -> int:
    """The CPU cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def choose_workers(requested: int | None, items: int, min_items: int) -> int:
    """``requested`` when given; otherwise all cores, but 1 for fewer than ``min_items`` items, where starting
    the pool (a second or two of imports per worker) would cost more than it saves."""
    if requested is not None:
        if requested < 0:
            raise BrodenError(f"--workers {requested}: give 0 or more (0 and 1 both work in this process)")
        return max(1, requested)
    return default_workers() if items >= min_items else 1


def ordered_map(fn: Callable[[T], R], items: Iterable[T], *, workers: int, window: int | None = None) -> Iterator[R]:
    """Yield ``fn(item)`` for each item, in input order, computed by ``workers`` processes.

    ``fn`` must be a picklable module-level function. At most ``window`` (default ``3 * workers``) items are
    submitted ahead of the consumer. An exception from ``fn`` is re-raised in the consumer, and the pending work is
    cancelled.
    """
    if workers <= 1 or not workers_can_start():
        for item in items:
            yield fn(item)
        return
    window = window or 3 * workers
    # forkserver: workers never inherit the parent's threads (Arrow, rich), unlike fork
    ctx = multiprocessing.get_context("forkserver")
    executor = ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_ignore_interrupts)
    pending: deque[Future[R]] = deque()
    try:
        for item in items:
            pending.append(executor.submit(fn, item))
            if len(pending) >= window:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        executor.shutdown(wait=True, cancel_futures=True)


_GUARD = re.compile(r"""__name__\s*==\s*["']__main__["']""")


def workers_can_start() -> bool:
    """Whether worker processes may start without running the caller's script again: the ``__main__`` module is
    a package's ``__main__`` (``python -m pkg``, which workers do not import), has no file (an interactive session,
    a notebook, ``python -c``), or is a file that guards its entry point (``if __name__ == "__main__":``, as the
    installed commands do)."""
    main = sys.modules.get("__main__")
    name = getattr(getattr(main, "__spec__", None), "name", None)
    if name is not None and (name == "__main__" or name.endswith(".__main__")):
        return True
    path = getattr(main, "__file__", None)
    if path is None:
        return True
    try:
        with open(path, encoding="utf-8", errors="replace") as source:
            return _GUARD.search(source.read()) is not None
    except OSError:
        return False


def _ignore_interrupts() -> None:
    """Ctrl-C goes to the main process, which cancels the pending work; workers finish their item and exit."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class Forked(Generic[R]):
    """``call()`` computed in a child process forked now, while the caller goes on; :meth:`result` waits for it and
    returns its value, or raises what it raised (a :class:`BrodenError` as itself, anything else as a
    :class:`BrodenError` naming ``what``). Leaving the ``with`` block stops a child that is still running.

    The child shares the caller's memory as it was at the fork (copy on write), so nothing is pickled on the way
    in and ``call`` may be a closure; its value must pickle on the way out. It must not start processes of its own,
    nor use threads or locks the caller held at the fork (torch's, CUDA's). ``fork`` False, or off Linux (where
    fork is not the platform's way), ``call`` runs here, at once, with the same outcome.
    """

    def __init__(self, what: str, call: Callable[[], R], *, fork: bool = True) -> None:
        self.what = what
        self._process: multiprocessing.process.BaseProcess | None = None
        self._outcome: tuple[str, Any, int] | None = None
        if not fork or not sys.platform.startswith("linux"):
            self._outcome = _outcome(what, call)
            return
        ctx = multiprocessing.get_context("fork")
        self._receive, send = ctx.Pipe(duplex=False)
        self._process = ctx.Process(target=_forked_child, args=(send, what, call), name=what)
        self._process.start()  # flushes this process's stdout and stderr first: the child does not repeat them
        send.close()

    @property
    def in_child(self) -> bool:
        """Whether ``call`` runs in a child process, which takes a CPU of its own until :meth:`result` has its
        outcome."""
        return self._process is not None

    def result(self) -> R:
        if self._outcome is None:
            try:
                self._outcome = self._receive.recv()
            except EOFError:  # the child died without a word (killed, out of memory)
                self._process.join()
                stopped = f"{self.what} stopped with exit code {self._process.exitcode}; run it again"
                self._outcome = ("error", stopped, 1)
            self.close()
        kind, value, code = self._outcome
        if kind == "error":
            raise BrodenError(value, code)
        return value

    def close(self) -> None:
        """Stop the child if it still runs, and reap it."""
        if self._process is not None:
            if self._process.is_alive():
                self._process.terminate()
            self._process.join()
            self._receive.close()
            self._process = None

    def __enter__(self) -> Forked[R]:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


def _outcome(what: str, call: Callable[[], R]) -> tuple[str, Any, int]:
    """("ok", value, 0) or ("error", message, exit code): what :meth:`Forked.result` returns or raises."""
    try:
        return "ok", call(), 0
    except BrodenError as exc:
        return "error", str(exc), exc.exit_code
    except KeyboardInterrupt:
        return "error", f"{what}: interrupted", 130
    except Exception as exc:
        return "error", f"{what} failed: {type(exc).__name__}: {exc}", 1


def _forked_child(send: Any, what: str, call: Callable[[], R]) -> None:
    send.send(_outcome(what, call))
    send.close()


def chunked(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Consecutive lists of ``size`` items (the last may be shorter)."""
    chunk: list[T] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
