"""Convert a dataset folder of the first broden format (save_to_disk Arrow files + labels.json, format broden-hf/1)
to the Hugging Face Hub repository layout that every broden command now reads (parquet shards per split, a card
declaring configs and typed features, the label table as the 'labels' config).

Rows keep their order, so the fingerprint recorded in existing results stays valid. OLD is left as it is; NEW
appears only when complete.

example:
  broden migrate broden1_224-hf broden1_224-hub
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("old", type=Path, metavar="OLD", help="a dataset folder in the old save_to_disk format")
    parser.add_argument("new", type=Path, metavar="NEW", help="output folder (replaced when complete)")


def run(args: argparse.Namespace) -> int:
    from broden.migrate import migrate

    ds, recorded = migrate(args.old, args.new)
    print(f"wrote {ds.path}: {len(ds)} images, {len(ds.labels)} labels, fingerprint {ds.fingerprint}")
    if recorded != ds.fingerprint:
        print(f"note: {args.old}/broden.json recorded {recorded}; the content hashes to {ds.fingerprint} (the old "
              "folder was changed after it was written)")
    return 0
