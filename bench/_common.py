"""What the benchmark scripts share: the ``--dataset`` option and the sample dataset written when it is not given."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_dataset_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", help="sample dataset to use (default: write one into a temporary directory)")


def sample_dataset(given: str | None, work: Path) -> Path:
    """The dataset named by ``--dataset``, else a fresh ``broden sample`` written under ``work``."""
    if given:
        return Path(given)
    from broden.sample import write_sample

    return write_sample(work / "sample").path
