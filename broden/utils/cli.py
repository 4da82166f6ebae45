"""Shared command-line runner for the ``broden``, ``benchmark`` and ``leaderboard`` commands.

Each subcommand lives in its own module exposing ``add_arguments(parser)`` and ``run(args) -> int``. Modules are
imported only when their subcommand runs, so ``broden info`` never pays for importing torch, and ``--help`` answers
instantly.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from broden.errors import BrodenError
from broden.version import __version__


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
    try:
        return int(module.run(args) or 0)
    except BrodenError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted: finished work is kept; run the same command again to resume", file=sys.stderr)
        return 130
