"""The ``benchmark`` command: score a model's units with Network Dissection, summarise and report."""

from __future__ import annotations

from collections.abc import Sequence

from broden.utils.cli import Command, run_cli

COMMANDS = (
    Command("score", "benchmark.commands.score", "dissect a model's layers on a Broden dataset; write results JSON"),
    Command("layers", "benchmark.commands.layers", "list a model's layers with their output shapes"),
    Command("summary", "benchmark.commands.summary", "detectors and unique detectors per category (table/csv/json)"),
    Command("units", "benchmark.commands.units", "each unit's best label and IoU (table/csv)"),
    Command("import-netdissect", "benchmark.commands.import_netdissect", "convert an original NetDissect CSV to results JSON"),
    Command("explain", "benchmark.commands.explain", "explain units by formulas of concepts (AND, OR, AND NOT)"),
    Command("report", "benchmark.commands.report", "self-contained HTML dissection report per layer"),
    Command("compare", "benchmark.commands.compare", "compare results: unit by unit, across checkpoints, across models"),
    Command("baselines", "benchmark.commands.baselines", "rotated-unit and random-init baselines of a model, compared"),
)


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli("benchmark", "Network Dissection: score, summarise, report and compare models.", COMMANDS, argv)


if __name__ == "__main__":
    raise SystemExit(main())
