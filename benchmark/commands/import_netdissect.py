"""Convert an original NetDissect / NetDissect-Lite per-unit CSV into a results JSON.

Reads `<layer>-result.csv` (NetDissect), `tally.csv` (NetDissect-Lite) or the authors' released `plot/*.csv`, so old
results can be summarised under both conventions, compared, reported on and submitted to the leaderboard. The
authors' five released files are recognised by name (network and layer filled in).

Example:
  benchmark import-netdissect caffe_reference_places365.csv --out alexnet_places365.json
  benchmark import-netdissect tally.csv --network resnet18_places365 --layer layer4 --out r18.json
"""

from __future__ import annotations

import argparse
from pathlib import Path

from benchmark import protocol
from benchmark.netdissect_csv import import_netdissect_csv
from benchmark.results import parse_json_strict, write_results
from broden.errors import BrodenError
from broden.utils.outputs import claim
from broden.utils.text import clean


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("csv", type=Path, help="NetDissect result CSV")
    parser.add_argument("--out", type=Path, required=True, help="results JSON to write")
    parser.add_argument("--network", help="network name (default: known release name or the file name)")
    parser.add_argument("--layer", help="layer name (required unless the file is one of the authors' releases)")
    parser.add_argument("--iou-threshold", type=float, default=protocol.IOU_THRESHOLD,
                        help=f"detector threshold (default {protocol.IOU_THRESHOLD})")
    parser.add_argument("--force", action="store_true", help="replace OUT even when it is not an imported results file")


def _imported(path: Path) -> bool:
    """Whether ``path`` is a results file this command wrote (provenance "imported"): safe to replace."""
    try:
        results = parse_json_strict(path.read_bytes(), str(path))
    except (OSError, BrodenError):
        return False
    return isinstance(results, dict) and (results.get("provenance") or {}).get("kind") == "imported"


def run(args: argparse.Namespace) -> int:
    with claim(args.out, "benchmark import-netdissect", force=args.force, inputs=[args.csv], is_dir=False,
               own=_imported) as output:
        results = import_netdissect_csv(args.csv, network=args.network, layer=args.layer,
                                        iou_threshold=args.iou_threshold)
        write_results(output.path, results, check_every_unit=False)  # import_netdissect_csv validated every unit
    s = results["layers"][0]["summary"]
    print(clean(
        f"{args.out}: {results['name']} {results['layers'][0]['name']}: {s['detectors']['all']}/{s['units']} "
        f"detectors, {s['unique_per_category']['all']} unique (per-category), "
        f"{s['unique_top_label']['all']} unique (top-label)"
    ))
    return 0
