"""List a model's layers (dotted names) with their output shapes, from one forward pass on a dummy image.

The 'dissect as' column is the (units, h, w) grid 'benchmark score --layers NAME' would dissect; '-' marks
layers that cannot be dissected (vectors after pooling, non-tensor outputs) or that the forward pass never calls.

examples:
  benchmark layers examples/mobilenet_v2.py
  benchmark layers torchvision:resnet18 --input-size 224
  benchmark layers timm:convnext_tiny:none --dissectable
  benchmark layers hf:/path/to/saved/vit --dissectable
  benchmark layers model.onnx
"""

from __future__ import annotations

import argparse

from broden.errors import BrodenError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", metavar="MODEL",
                        help="model spec: FILE.py, torchvision:NAME[:WEIGHTS], timm:NAME, hf:ORG/NAME, hf:/dir, "
                             "FILE.pt2, FILE.onnx")
    parser.add_argument("--input-size", type=int, nargs="+", default=None, metavar="N",
                        help="dummy input size: N or H W (default: the model's input size, else 224)")
    parser.add_argument("--dissectable", action="store_true", help="only list layers that can be dissected")


def run(args: argparse.Namespace) -> int:
    from benchmark.models.layers import list_layers
    from benchmark.models.loader import (
        Preprocessing,
        declared_preprocessing,
        load_model,
    )

    sizes = args.input_size
    if sizes is not None and (len(sizes) not in (1, 2) or min(sizes) < 1):
        raise BrodenError("--input-size takes one size N or two sizes H W, all >= 1")
    model = load_model(args.model, weights=False)  # shapes do not depend on the weights
    pre = model.preprocess if model.preprocess is not None else declared_preprocessing(model.module)
    own = pre.size if isinstance(pre, Preprocessing) else None
    size = (sizes[0], sizes[-1]) if sizes is not None else own or (224, 224)
    model.module.eval()
    rows = list_layers(model.module, size, model.extra_tokens)
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
