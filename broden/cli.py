"""The ``broden`` command: obtain, assemble, validate and inspect Broden datasets."""

from __future__ import annotations

from collections.abc import Sequence

from broden.utils.cli import Command, run_cli

COMMANDS = (
    Command("download", "broden.commands.download", "fetch the prebuilt Broden release, verify, convert, validate"),
    Command("convert", "broden.commands.convert", "convert a legacy Broden directory (index.csv, PNGs) to a dataset"),
    Command("export-legacy", "broden.commands.export_legacy", "write a dataset back in the legacy Broden layout"),
    Command("build", "broden.commands.build", "assemble Broden from its original sources (ADE20K, Pascal, ...)"),
    Command("sample", "broden.commands.sample", "write the small embedded sample dataset (real photos, exact masks)"),
    Command("validate", "broden.commands.validate", "check every invariant of a dataset; exit 1 on any violation"),
    Command("info", "broden.commands.info", "counts per category, source and split; most frequent labels"),
    Command("show", "broden.commands.show", "draw one image with its labels colour-coded and named (PNG)"),
    Command("concepts", "broden.commands.concepts", "write concept image folders for TCAV/captum, with a manifest"),
    Command("push", "broden.commands.push", "upload a dataset folder to a Hugging Face Hub dataset repo"),
    Command("migrate", "broden.commands.migrate", "convert an old save_to_disk dataset folder to the Hub layout"),
)


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli("broden", "Broden for Network Dissection: download, convert, build, validate.", COMMANDS, argv)


if __name__ == "__main__":
    raise SystemExit(main())
