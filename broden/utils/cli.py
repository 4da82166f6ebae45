"""Shared command-line runner for the ``broden``, ``benchmark`` and ``leaderboard`` commands.

Each subcommand lives in its own module exposing ``add_arguments(parser)`` and ``run(args) -> int``. Modules are
imported only when their subcommand runs, so ``broden info`` never pays for importing torch, and ``--help`` answers
instantly.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import importlib
import math
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from broden.errors import BrodenError
from broden.utils.text import clean
from broden.version import __version__


def check_number(option: str, value: float | None, *, minimum: float | None = None, above: float | None = None,
                 allow_inf: bool = False) -> None:
    """Refuse a numeric option that is NaN, infinite (unless ``allow_inf``), below ``minimum`` or not above
    ``above``, with one line naming the option: argparse's ``type=float`` accepts ``nan`` and ``inf``."""
    if value is None:
        return
    bounds = [f">= {minimum:g}" if minimum is not None else "", f"> {above:g}" if above is not None else ""]
    wanted = " and ".join(b for b in bounds if b)
    if math.isnan(value) or (math.isinf(value) and not allow_inf) or (minimum is not None and value < minimum) or (
            above is not None and value <= above):
        raise BrodenError(f"{option} {value}: give a {'' if allow_inf else 'finite '}number{' ' + wanted if wanted else ''}")


@dataclass(frozen=True)
class Command:
    name: str
    module: str
    help: str


def split_list(value: str | None) -> list[str] | None:
    """A comma-separated option as its non-empty items (None when not given or empty)."""
    if value is None:
        return None
    items = [v.strip() for v in value.split(",") if v.strip()]
    return items or None


def _version() -> str:
    return __version__


def run_cli(prog: str, description: str, commands: Sequence[Command], argv: Sequence[str] | None = None) -> int:
    """Parse ``argv``, run the chosen subcommand and turn a :class:`BrodenError` into a one-line error."""
    argv = list(sys.argv[1:] if argv is None else argv)
    by_name = {c.name: c for c in commands}
    listing = "\n".join(f"  {c.name:<18} {c.help}" for c in commands)
    parser = argparse.ArgumentParser(
        prog=prog,
        description=description,
        epilog=f"commands:\n{listing}\n\nRun '{prog} COMMAND --help' for the options of one command.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    parser.add_argument("command", choices=sorted(by_name), metavar="COMMAND", help="one of the commands below")
    if not argv or argv[0] not in by_name:
        parser.parse_args(argv or ["--help"])
        return 2  # parse_args exits; kept for type checkers
    command = by_name[argv[0]]
    module = importlib.import_module(command.module)
    sub = argparse.ArgumentParser(
        prog=f"{prog} {command.name}",
        description=(module.__doc__ or command.help).strip(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    module.add_arguments(sub)
    args = sub.parse_args(argv[1:])
    args.raw_args = argv[1:]  # the command's arguments as given (for a command that relaunches itself)
    return _guarded(module.run, args, prog=f"{prog} {command.name}")


#: OSError numbers that describe the user's environment (a full or read-only disk, permissions, a missing path):
#: reported as one line naming the path, never as a traceback
_ENVIRONMENT_ERRNOS = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.ENOENT: "no such file or directory",
    errno.ENOTDIR: "a part of the path is not a directory",
    errno.EISDIR: "is a directory",
    errno.ENAMETOOLONG: "file name too long",
}


def _os_error_line(exc: OSError) -> str:
    what = _ENVIRONMENT_ERRNOS[exc.errno]
    path = exc.filename if exc.filename is not None else None
    where = f"{path}: " if path is not None else ""
    advice = {errno.ENOSPC: "free some space or choose another output", errno.EDQUOT: "free some space or choose "
              "another output", errno.EROFS: "choose a writable output", errno.EACCES: "check the permissions or "
              "choose another path", errno.EPERM: "check the permissions or choose another path"}.get(
        exc.errno, "check the path")
    if exc.errno in (errno.ENOSPC, errno.EDQUOT) and path is not None:
        from broden.utils.disk import free_bytes, human_bytes

        with contextlib.suppress(OSError):
            what += f" ({human_bytes(free_bytes(Path(path).parent))} free)"
    return f"{where}{what}; {advice}"


def _quiet_stdout() -> None:
    """After the reader of stdout went away: send what is still buffered nowhere, so exiting prints nothing."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


def _guarded(run: Callable[[argparse.Namespace], int | None], args: argparse.Namespace, *, prog: str) -> int:
    """The error boundary of one command: every failure the user can cause becomes one line and an exit status.

    :class:`BrodenError` -> ``error: <message>`` (its exit code); an environment OSError (full or read-only disk,
    permissions, a missing path) -> ``error: <path>: <what>; <what to do>`` (exit 1); a closed stdout (``| head``)
    -> silence, exit 141 as a process killed by SIGPIPE; Ctrl-C -> one line, exit 130.
    """
    try:
        code = int(run(args) or 0)
        sys.stdout.flush()  # a closed pipe shows here, inside the boundary, rather than at interpreter exit
        return code
    except BrodenError as exc:
        print(f"error: {clean(str(exc))}", file=sys.stderr)  # one line, whatever text the message quotes
        return exc.exit_code
    except BrokenPipeError:
        _quiet_stdout()
        return 141
    except OSError as exc:
        if exc.errno not in _ENVIRONMENT_ERRNOS:
            raise
        print(f"error: {clean(_os_error_line(exc))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"interrupted: {prog} stopped; finished work is kept; run the same command again to resume",
              file=sys.stderr)
        return 130
