"""The ``leaderboard`` command: validate and submit results, build the static site."""

from __future__ import annotations

from collections.abc import Sequence

from broden.utils.cli import Command, run_cli

COMMANDS = (
    Command("validate", "leaderboard.commands.validate", "check a results JSON against the schema and the protocol"),
    Command("submit", "leaderboard.commands.submit", "validate and store a results JSON for a pull request"),
    Command("build", "leaderboard.commands.build", "generate the static leaderboard site from submissions"),
    Command("verify", "leaderboard.commands.verify", "re-score a measured submission's model and compare unit by unit"),
    Command("diff", "leaderboard.commands.diff", "report what one submissions directory changes against another"),
)


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli("leaderboard", "The Network Dissection leaderboard: validate, submit, verify, build, diff.", COMMANDS, argv)


if __name__ == "__main__":
    raise SystemExit(main())
