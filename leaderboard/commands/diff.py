"""Report what a set of submissions changes on the leaderboard compared with another (e.g. a pull request vs main).

Both directories are validated and ranked as 'leaderboard build' would. The report (GitHub Markdown, on stdout)
lists every leaderboard line the head adds, changes or removes with its unique detectors, detectors and rank
before and after, then the other entries whose rank moved, then the head's rejected files. The pull-request
workflow appends it to the job summary. Exit status: 0 (the report is informational; 'leaderboard validate' is
the check that fails).

Example:
  leaderboard diff /tmp/main/leaderboard/submissions leaderboard/submissions >> "$GITHUB_STEP_SUMMARY"
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from leaderboard.diff import compare, markdown
from leaderboard.site import load


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("base", type=Path, metavar="BASE_DIR", help="submissions directory before (e.g. main's)")
    parser.add_argument("head", type=Path, metavar="HEAD_DIR", help="submissions directory after (the pull request's)")


def run(args: argparse.Namespace) -> int:
    sys.stdout.write(markdown(compare(load(args.base), load(args.head))))
    return 0
