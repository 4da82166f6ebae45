"""``FILE.pt2``: a program saved with ``torch.export.save``.

It is loaded with ``torch.export.load`` and unflattened (``torch.export.unflatten``), which restores the original
module hierarchy, so layers are the dotted names of the exported model and take forward hooks. The batch dimension
must have been exported as dynamic (``dynamic_shapes``); the exported image size becomes the input size (recorded
as ``model file``), with ImageNet statistics unless the model file route is used.
"""

from __future__ import annotations

from pathlib import Path

from benchmark.models.loader import LoadedModel, Preprocessing, Request
from broden.errors import BrodenError
from broden.utils.hashing import file_digests

PREFIX = None
SUFFIXES = (".pt2",)
USAGE = "FILE.pt2 (a torch.export program with a dynamic batch dimension)"
REEXPORT = ("re-export with torch.export.export(model, (x,), dynamic_shapes=({0: torch.export.Dim('batch')},)) "
            "and torch.export.save")


def load(target: str, request: Request) -> LoadedModel:
    import torch

    path = Path(target)
    if not path.is_file():
        raise BrodenError(f"{path}: exported program not found")
    try:
        program = torch.export.load(path)
    except Exception as exc:
        raise BrodenError(f"{path}: not a readable torch.export program ({type(exc).__name__}); {REEXPORT}") from exc
    inputs = [n for n in program.graph.nodes if n.op == "placeholder" and n.name in program.graph_signature.user_inputs]
    if len(inputs) != 1:
        raise BrodenError(f"{path}: the program takes {len(inputs)} inputs; export a model taking one image batch")
    shape = inputs[0].meta["val"].shape
    if len(shape) != 4 or shape[1] != 3:
        raise BrodenError(f"{path}: the program's input has shape {tuple(shape)}; export it on a (B, 3, H, W) batch")
    if isinstance(shape[0], int):
        raise BrodenError(f"{path}: the program was exported for batches of exactly {shape[0]}; {REEXPORT}")
    static = all(isinstance(d, int) for d in shape[2:])
    module = torch.export.unflatten(program)
    sha = file_digests(path)[0]
    pre = Preprocessing((int(shape[2]), int(shape[3])), sources={"size": "model file"},
                        declared_by=f"the input shape of {path.name}") if static else None
    return LoadedModel(name=path.stem, source="export", module=module, preprocess=pre, file=str(path),
                       file_sha256=sha, weights_sha256=sha, weights={"kind": "export", "sha256": sha},
                       metadata={"architecture": None, "training_data": None, "paper": None})
