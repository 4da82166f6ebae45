"""Regenerate the leaderboard's seed submissions from the authors' released results (maintainers only).

The 27 networks of ``summary.csv`` (CSAILVision/NetDissect ``plot/semantics_cvpr_release.mat``) become "reported"
entries with the published counts; the five networks whose per-unit CSVs were released are imported in full
instead ("imported", recomputable), so each network appears once. ``--measured`` copies validated results scored by
this tool in as well. Files this script generated before are replaced; other submissions are left alone.

  python -m tools.seed_leaderboard                      # reads reference/netdissect-cvpr2017
  python -m tools.seed_leaderboard --measured demo-output/results.json
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmark.netdissect_csv import CITATION, KNOWN_RELEASES, import_netdissect_csv
from benchmark.results import SUMMARY_SCHEMA_VERSION
from broden.errors import BrodenError
from leaderboard import protocol
from leaderboard.site import SUBMISSIONS
from leaderboard.submit import store
from leaderboard.validate import validate_submission

#: the authors' released results, vendored with their MIT licence (reference/netdissect-cvpr2017/README.md)
REFERENCE = Path(__file__).resolve().parents[1] / "reference" / "netdissect-cvpr2017"
SOURCE = "CSAILVision/NetDissect plot/semantics_cvpr_release.mat (summary.csv)"
#: Date of the authors' release (NetDissect commit 20ce6f8); fixed so regenerating gives identical files.
RELEASED = "2018-01-18T00:00:00+00:00"

# Network-name prefix -> (architecture, paper, Broden release the original code used for it).
ALEXNET = ("AlexNet", "https://papers.nips.cc/paper/4824-imagenet-classification-with-deep-convolutional-neural-networks")
ARCHITECTURES: tuple[tuple[str, tuple[str, str | None], str], ...] = (
    ("caffenet_", ALEXNET, "broden1_227"),
    ("caffe_reference_", ALEXNET, "broden1_227"),
    ("weakly_", ALEXNET, "broden1_227"),
    ("vgg16_", ("VGG-16", "https://arxiv.org/abs/1409.1556"), "broden1_224"),
    ("googlenet_", ("GoogLeNet", "https://arxiv.org/abs/1409.4842"), "broden1_224"),
    ("resnet-152-torch-", ("ResNet-152", "https://arxiv.org/abs/1512.03385"), "broden1_224"),
    ("ResNet-50-model_", ("ResNet-50", "https://arxiv.org/abs/1512.03385"), "broden1_224"),
)
# Network-name suffix -> (training data, architecture variant).
TRAINING = {
    "random": ("none (random weights)", ""),
    "imagenet": ("ImageNet", ""),
    "places205": ("Places205", ""),
    "places365": ("Places365", ""),
    "imagenetplaces205": ("ImageNet + Places205 (Hybrid)", ""),
    "hybrid1365": ("ImageNet + Places365 (Hybrid1365)", ""),
    "places205_batchnorm": ("Places205", " (batch norm)"),
    "places365_GAP": ("Places365", "-GAP"),
}
# Self-supervised AlexNets (weakly_<task>), by pretext task as named in the paper.
SELF_SUPERVISED = {
    "deepcontext": "context prediction",
    "audio": "ambient sound",
    "videoorder": "video frame order",
    "videotracking": "video tracking",
    "egomotion": "egomotion",
    "learningbymoving": "learning by moving",
    "objectcentric": "object-centric video",
    "solvingpuzzle": "jigsaw puzzles",
    "colorization": "colorization",
    "splitbrain": "split-brain autoencoder",
}


def describe(network: str) -> dict[str, Any]:
    """Display name, architecture, training data, paper and Broden release, parsed from an original network name."""
    for prefix, (architecture, paper), release in ARCHITECTURES:
        if network.startswith(prefix):
            rest = network[len(prefix):]
            break
    else:
        raise BrodenError(f"{network}: unknown network name; add its prefix to tools.seed_leaderboard.ARCHITECTURES")
    if prefix == "weakly_":
        if rest not in SELF_SUPERVISED:
            raise BrodenError(f"{network}: unknown self-supervised task; add it to tools.seed_leaderboard.SELF_SUPERVISED")
        training = f"self-supervised: {SELF_SUPERVISED[rest]}"
        name, paper = f"{architecture} ({training})", None
    elif rest in TRAINING:
        training, variant = TRAINING[rest]
        architecture += variant
        name = f"{architecture} {training}" if rest != "random" else f"{architecture} (random weights)"
    else:
        raise BrodenError(f"{network}: unknown training data {rest!r}; add it to tools.seed_leaderboard.TRAINING")
    return {"name": name, "architecture": architecture, "training_data": training, "paper": paper, "release": release}


def _model(network: str, source: str) -> dict[str, Any]:
    d = describe(network)
    return {"name": network, "source": source, "architecture": d["architecture"],
            "training_data": d["training_data"], "paper": d["paper"]}


def reported(row: dict[str, str]) -> dict[str, Any]:
    """A "reported" entry holding one summary.csv row exactly."""
    network = row["network"]
    units = int(row["units"])
    cats = list(protocol.CATEGORIES)

    def counts(prefix: str) -> dict[str, int]:
        return {"all": int(row[f"{prefix}_all"]), **{c: int(row[f"{prefix}_{c}"]) for c in cats}}

    detectors = counts("detectors")
    return {
        "schema": SUMMARY_SCHEMA_VERSION,
        "name": describe(network)["name"],
        "model": _model(network, "reported"),
        "dataset": {"name": describe(network)["release"], "fingerprint": None},
        "protocol": {"quantile": protocol.QUANTILE, "iou_threshold": protocol.IOU_THRESHOLD, "categories": cats,
                     "compat": protocol.COMPAT},
        "provenance": {"kind": "reported", "citation": CITATION, "source": SOURCE},
        "created": RELEASED,
        "layers": [{
            "name": row["layer"],
            "num_units": units,
            "summary": {"units": units, "detectors": detectors, "unique_per_category": counts("unique"),
                        "detector_fraction": detectors["all"] / units},
        }],
    }


def imported(csv_path: Path) -> dict[str, Any]:
    """A full per-unit entry from one of the authors' released CSVs, described like the reported ones."""
    results = import_netdissect_csv(csv_path)
    network = results["model"]["name"]
    results["name"] = describe(network)["name"]
    results["model"] = {**results["model"], **_model(network, "netdissect-csv")}
    results["dataset"] = {"name": describe(network)["release"], "fingerprint": None}
    results["created"] = RELEASED
    return results


def seed_entries(reference: Path) -> list[dict[str, Any]]:
    """One entry per network of summary.csv: imported where the per-unit CSV was released, reported otherwise."""
    full = {KNOWN_RELEASES[stem]["network"]: reference / f"{stem}.csv" for stem in KNOWN_RELEASES}
    with open(reference / "summary.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return [imported(full[row["network"]]) if row["network"] in full else reported(row) for row in rows]


def _generated_by_seed(path: Path) -> bool:
    try:
        provenance = json.loads(path.read_text(encoding="utf-8"))["provenance"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return provenance.get("kind") in ("reported", "imported") and provenance.get("citation") == CITATION


def _measured(path: Path) -> dict[str, Any]:
    """A valid results file scored by this tool, checked before anything is written."""
    verdict = validate_submission(path)
    if not verdict.ok or verdict.results is None:
        raise BrodenError(f"{path}: {verdict.errors[0]}")
    kind = verdict.results["provenance"]["kind"]
    if kind != "measured":
        raise BrodenError(f"{path}: provenance kind is {kind!r}; --measured takes results scored by 'benchmark score'")
    return verdict.results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.seed_leaderboard", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reference", type=Path, default=REFERENCE, help="folder with summary.csv and the CSVs")
    parser.add_argument("--dir", type=Path, default=SUBMISSIONS, help="submissions directory to (re)write")
    parser.add_argument("--measured", type=Path, nargs="*", default=[], metavar="PATH",
                        help="results files scored by this tool to copy in (validated)")
    args = parser.parse_args(argv)
    try:
        measured = [_measured(path) for path in args.measured]
        entries = seed_entries(args.reference)
        old = {p for p in args.dir.glob("*.json") if _generated_by_seed(p)}
        written = {store(entry, args.dir, force=True)[0] for entry in entries}
        for path in sorted(old - written):
            path.unlink()
        written |= {store(results, args.dir, force=True)[0] for results in measured}
    except (BrodenError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return getattr(exc, "exit_code", 1)
    print(f"{args.dir}: {len(written)} seed submissions ({len(entries)} from the 2017 release, "
          f"{len(args.measured)} measured)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
