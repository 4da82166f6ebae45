"""Export a model with ``torch.export`` and dissect the exported program (``FILE.pt2``).

TorchScript files cannot be dissected: ScriptModules take no forward hooks (and ``torch.jit`` is deprecated), so
``benchmark score model.ts`` stops with a one-line error pointing here. A ``torch.export`` program keeps the
module hierarchy (``torch.export.unflatten``), so its layers are the original dotted names. Export it with a
dynamic batch dimension:

    python examples/export_model.py --out resnet18.pt2                       # random weights, offline
    python examples/export_model.py --out resnet18.pt2 --enum IMAGENET1K_V1   # torchvision's weights
    benchmark layers resnet18.pt2 --dissectable
    benchmark score resnet18.pt2 --layers layer4 --dataset demo-output/broden-sample

The exported input size (224 here) becomes the preprocessing size (recorded as ``model file``).
"""

import argparse

import torch

from benchmark.models.loader import load_model


def export(spec: str, out: str, size: int = 224) -> None:
    model = load_model(spec).module.eval()
    x = torch.zeros(2, 3, size, size)
    program = torch.export.export(model, (x,), dynamic_shapes=({0: torch.export.Dim("batch")},))
    torch.export.save(program, out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="the .pt2 file to write")
    parser.add_argument("--arch", default="resnet18", help="torchvision architecture (default: resnet18)")
    parser.add_argument("--enum", default="none", help="torchvision weights enum name, or none (default)")
    parser.add_argument("--size", type=int, default=224, help="input size of the export (default: 224)")
    args = parser.parse_args()
    export(f"torchvision:{args.arch}:{args.enum}", args.out, args.size)
    print(f"wrote {args.out}; dissect it with: benchmark score {args.out} --layers layer4")


if __name__ == "__main__":
    main()
