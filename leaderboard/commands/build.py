"""Build the static leaderboard site from the submission files.

The site: index.html (the table, with a filter box, category toggles and a row anchor per model), leaderboard.csv
(the table, one row per model and layer), models/<name>/index.html (each model's permalink, its latest version;
earlier versions at models/<name>/<version>/), and submissions/ (every submission file, byte for byte).

Every submission is validated first. Invalid ones are reported on stderr and in the site's "rejected submissions"
section, and skipped; the rest of the site is still built. Exit status: 0 when at least one entry was built (even
if some were rejected), 1 when none is valid (nothing is written). The output directory is replaced only when the
new site is complete, and only if it is empty or a previous build (or with --force). The pages load nothing from the
network and work from file://.

--release vN writes a citable snapshot instead: OUT/vN/ (OUT default: releases/) holds the site and release.json
(every entry with its sha256, the harness version that scored it and its dataset fingerprint, and the harness
version that built the release); its files are read-only, and an existing release is never overwritten (exit 1).

Example:
  leaderboard build --out site/
  leaderboard build --release v1          # releases/v1/
  leaderboard build my-submissions/ --out /tmp/site && xdg-open /tmp/site/index.html
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from broden.utils.outputs import claim
from broden.utils.text import clean
from leaderboard.site import RELEASE_FILE, SUBMISSIONS, build, build_release
from leaderboard.verified import VERIFIED, load_verified


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("submissions", nargs="?", type=Path, default=SUBMISSIONS, metavar="SUBMISSIONS_DIR",
                        help="directory of results JSON files (default: leaderboard/submissions)")
    parser.add_argument("--out", type=Path, default=None,
                        help="output directory (default: site/; with --release, the releases directory: releases/)")
    parser.add_argument("--release", metavar="vN", help="write the immutable release snapshot OUT/vN/ instead")
    parser.add_argument("--force", action="store_true",
                        help="replace --out even when it holds files another command wrote")
    parser.add_argument("--verified", type=Path, default=VERIFIED,
                        help="maintainers' verification record, the only source of 'verified' badges "
                             "(default: leaderboard/verified.json)")


def run(args: argparse.Namespace) -> int:
    verified = load_verified(args.verified)
    if args.release:
        site, dest = build_release(args.submissions, args.out or Path("releases"), args.release, verified)
        index = dest / "index.html"
        print(f"release {args.release}: {dest / RELEASE_FILE} lists {len(site.entries) + len(site.older)} files")
    else:
        out = args.out or Path("site")
        with claim(out, "leaderboard build", force=args.force, inputs=[args.submissions]) as output:
            site = build(args.submissions, output.path, verified)
            output.mark()
        index = out / "index.html"
    for rejected in site.rejected:
        print(clean(f"rejected: {rejected.file}: {'; '.join(rejected.errors)}"), file=sys.stderr)
    ranked = sum(e.ranked for e in site.entries)
    print(f"{index}: {len(site.entries)} entries ({ranked} ranked, "
          f"{len(site.entries) - ranked} other protocol), {len(site.rejected)} rejected")
    return 0
