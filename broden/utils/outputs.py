"""The one output policy of every command that writes: nothing the user made is replaced or deleted by surprise.

Before a command writes its output it *claims* it (:func:`claim`):

- the output must not lie inside one of the command's inputs, nor an input inside the output (``report RES --out
  RES_DIR``, ``convert L L``, ``export-legacy DS DS`` are refused, ``--force`` or not);
- a directory output must not be a file and a file output must not be a directory;
- an existing, non-empty output is used only when it is this command's own finished output (its
  :data:`MARKER` file names the command), what the command recognises as its own finished output or resumable
  state (its ``own`` test), or when the user passes ``--force``; anything else (a user's ``thesis.tex``) is
  refused with one line saying so;
- an exclusive lock (``filelock``) on ``.<name>.lock`` beside the output: a second run into the same output fails
  at once, naming the process (pid, host, command) that holds it;
- temporaries that earlier, killed runs left for this output (pid-tagged names from :mod:`broden.utils.atomic`)
  are removed, and only those: a name whose process is still alive is left alone.

After the output is complete, :meth:`Claim.mark` writes the marker, so the next run of the same command may
replace it without ``--force``.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import filelock

from broden.errors import BrodenError
from broden.utils import atomic

#: Marker file inside a finished directory output: JSON ``{"command": "benchmark report", ...}``.
MARKER = ".broden-output"


@dataclass
class Claim:
    """A claimed output: ``path`` (absolute) is locked for ``command`` until the ``claim`` block ends."""

    path: Path
    command: str
    is_dir: bool

    def mark(self) -> None:
        """Record the finished directory output as this command's own (no-op for file outputs)."""
        if self.is_dir and self.path.is_dir():
            atomic.write_json(self.path / MARKER, {"command": self.command, "pid": os.getpid(),
                                                   "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})


def marked_by(path: Path) -> str | None:
    """The command named by ``path``'s marker file, or None when there is no readable marker."""
    try:
        data = json.loads((Path(path) / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data.get("command") if isinstance(data, dict) and isinstance(data.get("command"), str) else None


def lock_path(path: Path) -> Path:
    """The lock file of output ``path``: a hidden sibling, so it survives the output's atomic replacement."""
    return path.parent / f".{path.name}.lock"


def _inside(inner: Path, outer: Path) -> bool:
    return inner == outer or outer in inner.parents


def _check_nesting(out: Path, inputs: Sequence[Path]) -> None:
    for given in inputs:
        inp = Path(given).resolve()
        if _inside(out, inp):
            raise BrodenError(f"{out}: the output would be written inside the input {inp}; choose an output "
                              "outside it")
        if _inside(inp, out):
            raise BrodenError(f"{out}: the output would replace a directory holding the input {inp}; choose "
                              "another output")


def _check_existing(out: Path, command: str, *, is_dir: bool, force: bool,
                    own: Callable[[Path], bool] | None) -> None:
    if not out.exists() and not out.is_symlink():
        return
    if is_dir and not out.is_dir():
        raise BrodenError(f"{out}: exists and is not a directory; give a directory path for the output")
    if not is_dir and out.is_dir():
        raise BrodenError(f"{out}: is a directory; give a file path for the output")
    if force or (own is not None and own(out)):
        return
    if is_dir:
        entries = sorted(p.name for p in out.iterdir())
        if not entries or marked_by(out) == command:
            return
        shown = ", ".join(entries[:3]) + (", ..." if len(entries) > 3 else "")
        raise BrodenError(f"{out}: exists and holds files not written by '{command}' ({shown}); pass --force to "
                          "replace it, or choose another output")
    raise BrodenError(f"{out}: exists and was not written by '{command}'; pass --force to replace it, or choose "
                      "another output")


def _holder(lock: Path) -> str:
    try:
        info = json.loads(lock.read_text(encoding="utf-8"))
        return f"pid {info['pid']} on {info['host']}, '{info['command']}' since {info['since']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "another process"


@contextlib.contextmanager
def claim(
    path: str | os.PathLike[str],
    command: str,
    *,
    force: bool = False,
    inputs: Sequence[str | os.PathLike[str]] = (),
    is_dir: bool = True,
    own: Callable[[Path], bool] | None = None,
    clean_inside: bool = False,
) -> Iterator[Claim]:
    """Check, lock and clean output ``path`` for ``command`` (see the module docstring); yield the :class:`Claim`.

    ``own(path)`` says whether an existing output without a marker is the command's own (finished or resumable
    state). ``clean_inside`` also removes stale temporaries inside the output directory (for outputs updated in
    place, like a score run's).
    Raises :class:`BrodenError` when the policy refuses the output or another process holds its lock.
    """
    out = Path(path).resolve()
    if out == out.parent:
        raise BrodenError(f"{out}: a file system root cannot be an output; choose a directory below it")
    _check_nesting(out, [Path(p) for p in inputs])
    if out.exists() and is_dir != out.is_dir():
        _check_existing(out, command, is_dir=is_dir, force=False, own=None)
    out.parent.mkdir(parents=True, exist_ok=True)
    lock_file = lock_path(out)
    owner = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "command": command,
                        "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}).encode()

    def write_owner(fd: int) -> None:
        os.ftruncate(fd, 0)
        os.pwrite(fd, owner, 0)

    lock = filelock.FileLock(lock_file, timeout=0, on_acquired=write_owner)
    try:
        lock.acquire()
    except filelock.Timeout:
        raise BrodenError(f"{out}: in use by {_holder(lock_file)}; wait for it to finish or choose another "
                          "output") from None
    try:
        atomic.remove_stale(out.parent, out.name)
        if clean_inside and out.is_dir():
            atomic.remove_stale_inside(out)
        _check_existing(out, command, is_dir=is_dir, force=force, own=own)
        yield Claim(out, command, is_dir)
    except OSError as exc:
        if exc.filename is None:  # a failed write(): the error names the output it was writing
            exc.filename = str(out)
        raise
    finally:
        # unlinked while still held, so no run ever sees a free lock file left behind; filelock retries a lock
        # taken on an inode that was unlinked meanwhile
        with contextlib.suppress(FileNotFoundError):
            lock_file.unlink()
        lock.release()
