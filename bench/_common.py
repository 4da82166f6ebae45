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


def peak_rss_mb() -> float:
    """This process's peak resident memory in MB: ``VmHWM``, the high-water mark of its own address space.

    Not ``getrusage().ru_maxrss``: Linux carries that across ``execve`` from the address space being replaced, so
    a child started by a large parent (``subprocess`` forks or vforks it first) reports the parent's peak.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
