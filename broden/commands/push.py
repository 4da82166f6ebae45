"""Upload a Broden dataset folder to a Hugging Face Hub dataset repository.

The folder is already a Hub repository (README.md card with configs and features, data/*.parquet, labels/,
broden.json), so it is uploaded as it is, in one commit, with huggingface_hub's upload_folder (chunked, resumable,
deduplicated by the library). The repo is created if missing (--private to make it private). The token comes from
the usual places: the HF_TOKEN environment variable or 'hf auth login'. Afterwards anyone can run
load_dataset("ORG/NAME"), broden.load("hf://ORG/NAME") or 'broden download --hub ORG/NAME'.

example:
  broden push broden1_224-hf my-org/broden1_224 --private
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dataset", type=Path, metavar="DATASET", help="a Broden dataset folder")
    parser.add_argument("repo_id", metavar="REPO_ID", help="Hub dataset repo, ORG/NAME")
    parser.add_argument("--private", action="store_true", help="create the repo as private (if it is new)")
    parser.add_argument("--revision", metavar="BRANCH", help="branch to commit to (default: main)")


def run(args: argparse.Namespace) -> int:
    from broden.hub import push

    url = push(args.dataset, args.repo_id, private=args.private, revision=args.revision)
    print(f"pushed {args.dataset} to {args.repo_id}: {url}")
    return 0
