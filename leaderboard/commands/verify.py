"""Re-score a measured submission's model with the submission's recorded protocol and compare, unit by unit.

MODEL is what 'benchmark score' takes (a model file with build_model(), or torchvision:NAME); the dataset must
have the fingerprint the submission records (default: the submission's recorded dataset path). The layers,
quantile, IoU threshold, categories, category gate, upsampling and batch size come from the submission. Counts
(intersection, activation, truth) must match exactly, IoUs and thresholds within 1e-6, the preprocessing must be the
recorded one. Exit status: 0 when everything matches, 1 with one line per difference otherwise.

Maintainers: --record NAME adds the match to leaderboard/verified.json (keyed by the file's sha256), which is what
puts the "verified" badge on the site; commit that file.

Example:
  leaderboard verify leaderboard/submissions/mobilenetv2-imagenet__features-18__143b2f1ae5.json \\
      --model examples/mobilenet_v2.py --dataset demo-output/broden-sample
  leaderboard verify SUBMISSION.json --model my_model.py --dataset broden1_224 --device cuda --record "A. Maintainer"
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import tempfile
from datetime import date
from pathlib import Path

from leaderboard.verified import VERIFIED, add_record
from leaderboard.verify import TOLERANCE, verify

SHOWN = 40  # differences printed; the count covers all


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("submission", type=Path, metavar="SUBMISSION.json", help="a measured results file")
    parser.add_argument("--model", required=True, metavar="MODEL", help="model file or torchvision:NAME to re-score")
    parser.add_argument("--dataset", metavar="PATH", help="Broden dataset (default: the submission's recorded path)")
    parser.add_argument("--device", default="cpu", help="torch device: cpu, cuda, cuda:1 (default: cpu)")
    parser.add_argument("--workers", type=int, default=None, help="DataLoader workers (default: min(4, CPUs))")
    parser.add_argument("--out", type=Path, metavar="DIR",
                        help="keep the re-score here (default: a temporary directory, removed); a finished identical "
                             "re-score there is reused")
    parser.add_argument("--record", metavar="NAME", help="on a match, record it in the verification file as by NAME")
    parser.add_argument("--verified", type=Path, default=VERIFIED,
                        help="verification file for --record (default: leaderboard/verified.json)")


def run(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="leaderboard-verify-") as tmp:
        result = verify(args.submission, args.model, args.out or Path(tmp) / "rescore", dataset=args.dataset,
                        device=args.device, workers=args.workers)
    layers = len(result.submitted["layers"])
    if not result.ok:
        for line in result.differences[:SHOWN]:
            print(line)
        if len(result.differences) > SHOWN:
            print(f"... and {len(result.differences) - SHOWN} more differences")
        print(f"error: {args.submission}: {len(result.differences)} differences from the re-score of {args.model} "
              f"({result.units_compared} units in {layers} layers compared); not verified", file=sys.stderr)
        return 1
    print(f"verified: {args.submission} matches the re-score of {args.model}: {result.units_compared} units in "
          f"{layers} layers, counts exact, IoUs and thresholds within {TOLERANCE}")
    if args.record:
        from broden.version import __version__

        digest = hashlib.sha256(args.submission.read_bytes()).hexdigest()
        add_record(args.verified, digest, {
            "file": args.submission.name, "name": result.submitted["name"], "date": date.today().isoformat(),
            "by": args.record, "dataset": result.submitted["dataset"]["fingerprint"], "device": args.device,
            "harness": __version__,
        })
        print(f"recorded: {args.verified} now lists sha256 {digest}; commit it")
    return 0
