"""Validate a results file and store it in the submissions directory under its canonical name.

Run it from the root of your clone of the repository. The file is named <model>__<layers>__<hash>.json (the hash covers model, dataset, protocol and numbers). An
identical file already there is left alone; a different file of the same name is replaced only with --force. The
command then prints the git commands and what to include in the pull request. Invalid files are refused (exit 1)
and nothing is written.

Example:
  leaderboard submit results.json
  leaderboard submit results.json --dir leaderboard/submissions --force
"""

from __future__ import annotations

import argparse
from pathlib import Path

from broden.utils.outputs import claim
from broden.utils.text import clean
from leaderboard.submit import earlier_versions, pull_request_help, submit


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", type=Path, metavar="RESULTS.json", help="results file from 'benchmark score'")
    parser.add_argument("--dir", type=Path, default=Path("leaderboard/submissions"),
                        help="submissions directory of your clone (default: leaderboard/submissions)")
    parser.add_argument("--force", action="store_true", help="replace a different file of the same name")


def run(args: argparse.Namespace) -> int:
    # the submissions directory is a container (the command writes one named file in it): any existing directory
    # is accepted; the lock keeps two submits from racing on one name
    with claim(args.dir, "leaderboard submit", own=lambda _dir: True, clean_inside=True) as output:
        verdict, dest, changed = submit(args.file, output.path, force=args.force)
    print(f"{'stored' if changed else 'already stored, unchanged'}: {dest} (protocol: {verdict.protocol})")
    for warning in verdict.warnings:
        print(clean(f"  not on the leaderboard protocol: {warning}"))
    for older in earlier_versions(dest):
        print(f"  note: {older.name} is an earlier scoring of the same model and layers; "
              "delete it in the same pull request if this one replaces it")
    print(clean(pull_request_help(dest, verdict.results["name"]), keep_newlines=True))
    return 0
