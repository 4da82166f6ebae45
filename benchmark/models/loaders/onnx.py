"""``FILE.onnx``: an ONNX model, converted to a torch ``GraphModule`` with onnx2torch.

Layers are the converted graph's module names (``benchmark layers FILE.onnx`` lists them; ONNX node names with
``/`` and ``.`` are kept as onnx2torch writes them). A static input size in the graph becomes the input size
(recorded as ``model file``); statistics are ImageNet's (ONNX declares none). Needs ``pip install onnx onnx2torch``.
"""

from __future__ import annotations

from pathlib import Path

from benchmark.models.loader import LoadedModel, Preprocessing, Request
from broden.errors import BrodenError
from broden.utils.hashing import file_digests

PREFIX = None
SUFFIXES = (".onnx",)
USAGE = "FILE.onnx (an ONNX model, converted with onnx2torch)"


def load(target: str, request: Request) -> LoadedModel:
    path = Path(target)
    if not path.is_file():
        raise BrodenError(f"{path}: ONNX file not found")
    try:
        import onnx
        from onnx2torch import convert
    except ImportError as exc:
        raise BrodenError(f"{path}: reading ONNX needs the onnx and onnx2torch packages; pip install onnx onnx2torch") from exc
    try:
        proto = onnx.load(str(path))
        onnx.checker.check_model(proto)
    except Exception as exc:
        raise BrodenError(f"{path}: not a valid ONNX model ({type(exc).__name__}: {str(exc).splitlines()[0][:200]}); "
                          "re-export it with torch.onnx.export") from exc
    initializers = {i.name for i in proto.graph.initializer}
    inputs = [i for i in proto.graph.input if i.name not in initializers]
    if len(inputs) != 1:
        raise BrodenError(f"{path}: the model takes {len(inputs)} inputs; export a model taking one image batch")
    dims = [d.dim_value if d.HasField("dim_value") else None for d in inputs[0].type.tensor_type.shape.dim]
    if len(dims) != 4 or dims[1] not in (3, None):
        raise BrodenError(f"{path}: the model's input has shape {dims}; export it on a (B, 3, H, W) batch")
    if dims[0] is not None:
        raise BrodenError(f"{path}: the model was exported for batches of exactly {dims[0]}; re-export it with "
                          "torch.onnx.export(..., dynamic_axes={'input': {0: 'batch'}}) (or dynamo=True, dynamic_shapes)")
    try:
        module = convert(proto)
    except Exception as exc:
        raise BrodenError(f"{path}: onnx2torch cannot convert it ({type(exc).__name__}: {str(exc).splitlines()[0][:200]}); "
                          "compute the activations yourself and use --activations") from exc
    pre = (Preprocessing((dims[2], dims[3]), sources={"size": "model file"}, declared_by=f"the input of {path.name}")
           if dims[2] and dims[3] else None)
    sha = file_digests(path)[0]
    return LoadedModel(name=path.stem, source="onnx", module=module, preprocess=pre, file=str(path),
                       file_sha256=sha, weights_sha256=sha, weights={"kind": "onnx", "sha256": sha},
                       metadata={"architecture": None, "training_data": None, "paper": None,
                                 "opset": [int(o.version) for o in proto.opset_import]})
