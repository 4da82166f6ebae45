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
from benchmark.results import write_results


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("csv", type=Path, help="NetDissect result CSV")
    parser.add_argument("--out", type=Path, required=True, help="results JSON to write")
    parser.add_argument("--network", help="network name (default: known release name or the file name)")
    parser.add_argument("--layer", help="layer name (required unless the file is one of the authors' releases)")
    parser.add_argument("--iou-threshold", type=float, default=protocol.IOU_THRESHOLD,
                        help=f"detector threshold (default {protocol.IOU_THRESHOLD})")


def run(args: argparse.Namespace) -> int:
    results = import_netdissect_csv(args.csv, network=args.network, layer=args.layer, iou_threshold=args.iou_threshold)
    write_results(args.out, results, check_every_unit=False)  # import_netdissect_csv validated every unit
    s = results["layers"][0]["summary"]
    print(
        f"{args.out}: {results['name']} {results['layers'][0]['name']}: {s['detectors']['all']}/{s['units']} "
        f"detectors, {s['unique_per_category']['all']} unique (per-category), "
        f"{s['unique_top_label']['all']} unique (top-label)"
    )
    return 0
