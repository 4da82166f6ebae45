"""List a model's layers (dotted names) with their output shapes, from one forward pass on a dummy image.

The 'dissect as' column is the (units, h, w) grid 'benchmark score --layers NAME' would dissect; '-' marks
layers that cannot be dissected (vectors after pooling, non-tensor outputs) or that the forward pass never calls.

examples:
  benchmark layers examples/mobilenet_v2.py
  benchmark layers torchvision:resnet18 --input-size 224
  benchmark layers examples/vit_b_16.py --dissectable
"""

from __future__ import annotations

import argparse

from broden.errors import BrodenError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", metavar="MODEL", help="model file (.py with build_model()) or torchvision:NAME")
    parser.add_argument("--input-size", type=int, nargs="+", default=[224], metavar="N",
                        help="dummy input size: N or H W (default: 224)")
    parser.add_argument("--dissectable", action="store_true", help="only list layers that can be dissected")


def run(args: argparse.Namespace) -> int:
    from benchmark.models.layers import list_layers
    from benchmark.models.loader import load_model

    sizes = args.input_size
    if len(sizes) not in (1, 2) or min(sizes) < 1:
        raise BrodenError("--input-size takes one size N or two sizes H W, all >= 1")
    size = (sizes[0], sizes[-1])
    model = load_model(args.model, weights=False)  # shapes do not depend on torchvision weights
    model.module.eval()
    rows = list_layers(model.module, size)
    if args.dissectable:
        rows = [r for r in rows if r["grid"]]
    default = set(model.layers or [])
    width = max((len(r["name"]) for r in rows), default=4)
    type_width = max((len(r["type"]) for r in rows), default=4)
    print(f"{'layer':<{width}}  {'type':<{type_width}}  {'output':<22}  dissect as")
    for r in rows:
        mark = "  (default)" if r["name"] in default else ""
        print(f"{r['name']:<{width}}  {r['type']:<{type_width}}  {(r['output'] or '-'):<22}  {r['grid'] or '-'}{mark}")
    return 0
