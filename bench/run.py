"""Run every benchmark script in this folder; each prints `name: value` lines (ratios measured side by side)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPTS = ("convert_bench.py", "masks_bench.py", "tally_bench.py", "score_bench.py", "report_bench.py",
           "explain_bench.py", "bootstrap_bench.py", "dist_bench.py", "build_bench.py")


def main() -> int:
    here = Path(__file__).resolve().parent
    failed = []
    for name in SCRIPTS:
        print(f"# {name}", flush=True)
        if subprocess.call([sys.executable, str(here / name)]) != 0:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
