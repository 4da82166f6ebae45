"""Build the static leaderboard site (index.html, one page per model, SVG charts) from the submission files.

Every submission is validated first. Invalid ones are reported on stderr and in the site's "rejected submissions"
section, and skipped; the rest of the site is still built. Exit status: 0 when at least one entry was built (even
if some were rejected), 1 when none is valid (nothing is written). The output directory is replaced only when the
new site is complete, and only if it is empty or a previous build (or with --force). The pages load nothing from the network and work
from file://.

Example:
  leaderboard build --out site/
  leaderboard build my-submissions/ --out /tmp/site && xdg-open /tmp/site/index.html
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from broden.utils.outputs import claim
from broden.utils.text import clean
from leaderboard.site import SUBMISSIONS, build


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("submissions", nargs="?", type=Path, default=SUBMISSIONS, metavar="SUBMISSIONS_DIR",
                        help="directory of results JSON files (default: leaderboard/submissions)")
    parser.add_argument("--out", type=Path, default=Path("site"), help="output directory (default: site/)")
    parser.add_argument("--force", action="store_true",
                        help="replace --out even when it holds files another command wrote")


def run(args: argparse.Namespace) -> int:
    with claim(args.out, "leaderboard build", force=args.force, inputs=[args.submissions]) as output:
        site = build(args.submissions, output.path)
        output.mark()
    for rejected in site.rejected:
        print(clean(f"rejected: {rejected.file}: {'; '.join(rejected.errors)}"), file=sys.stderr)
    ranked = sum(e.ranked for e in site.entries)
    print(f"{args.out / 'index.html'}: {len(site.entries)} entries ({ranked} ranked, "
          f"{len(site.entries) - ranked} other protocol), {len(site.rejected)} rejected")
    return 0
