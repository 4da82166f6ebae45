"""Capture the outputs of any dotted layers in one forward pass, as (B, C, H, W) activation grids.

Outputs are taken as the layer returns them: a (B, C, H, W) tensor as is; transformer tokens (B, N, C) are folded
into a (B, C, s, s) grid after dropping the leading class/register tokens; for a tuple or list output the first
tensor is used. A (B, C) vector has no spatial extent and cannot be dissected.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Sequence
from typing import Any

import torch

from broden.errors import BrodenError


def resolve_layers(model: torch.nn.Module, names: Sequence[str]) -> dict[str, torch.nn.Module]:
    """Map each dotted name to its module; an unknown name is an error listing the closest existing names."""
    modules = dict(model.named_modules())
    out: dict[str, torch.nn.Module] = {}
    for name in names:
        if not name or name not in modules:
            candidates = [n for n in modules if n]
            close = difflib.get_close_matches(name, candidates, n=5, cutoff=0.5)
            hint = f"closest: {', '.join(close)}" if close else "run 'benchmark layers MODEL' to list them"
            raise BrodenError(f"layer {name!r} not found in the model; {hint}")
        out[name] = modules[name]
    return out


def first_tensor(output: Any, layer: str) -> torch.Tensor:
    """The layer's output tensor; for a tuple/list output, its first tensor."""
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, (tuple, list)):
        for item in output:
            if isinstance(item, torch.Tensor):
                return item
    raise BrodenError(f"layer {layer!r}: output is {type(output).__name__}, not a tensor; pick another layer")


def token_grid_size(num_tokens: int, extra_tokens: int | None, layer: str) -> tuple[int, int]:
    """``(extra, side)`` with ``num_tokens = extra + side**2``; ``extra=None`` tries 1 (class token), then 0."""
    tries = [extra_tokens] if extra_tokens is not None else [1, 0]
    for extra in tries:
        side = math.isqrt(max(num_tokens - extra, 0))
        if side > 0 and side * side == num_tokens - extra:
            return extra, side
    wanted = f"{extra_tokens} extra token(s)" if extra_tokens is not None else "1 class token or none"
    raise BrodenError(
        f"layer {layer!r}: {num_tokens} tokens do not form a square grid with {wanted}; "
        "set EXTRA_TOKENS in the model file to the number of class/register tokens"
    )


def to_grid(output: Any, layer: str, extra_tokens: int | None = None) -> torch.Tensor:
    """A layer output as (B, C, H, W)."""
    x = first_tensor(output, layer)
    if x.dim() == 4:
        return x
    if x.dim() == 3:
        b, n, c = x.shape
        extra, side = token_grid_size(n, extra_tokens, layer)
        return x[:, extra:, :].transpose(1, 2).reshape(b, c, side, side)
    if x.dim() == 2:
        raise BrodenError(
            f"layer {layer!r}: output is a (batch, {x.shape[1]}) vector with no spatial extent; "
            "dissect a convolutional or token layer before pooling"
        )
    raise BrodenError(f"layer {layer!r}: output has shape {tuple(x.shape)}; expected (B, C, H, W) or tokens (B, N, C)")


class _Done(Exception):
    """Raised by the last hook to skip the rest of the forward pass."""


class LayerTaps:
    """Forward hooks on several layers; ``run(x)`` returns ``{layer: (B, C, H, W)}`` from one pass.

    The forward pass stops as soon as every tapped layer has produced its output, so the layers after the deepest
    one (pooling, classifier) cost nothing. ``amp`` runs the pass under ``torch.autocast`` (bfloat16 on CPU,
    float16 on CUDA); off by default, as it changes the activations.
    """

    def __init__(self, model: torch.nn.Module, layers: Sequence[str], extra_tokens: int | None = None,
                 amp: bool = False) -> None:
        self.model = model
        self.layers = list(dict.fromkeys(layers))
        self.extra_tokens = extra_tokens
        self.amp = amp
        self._modules = resolve_layers(model, self.layers)
        self._out: dict[str, torch.Tensor] = {}

    def _hook(self, name: str):
        def hook(_module, _inputs, output):
            if name not in self._out:
                self._out[name] = to_grid(output, name, self.extra_tokens)
                if len(self._out) == len(self.layers):
                    raise _Done

        return hook

    @torch.inference_mode()
    def run(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        self._out = {}
        handles = [m.register_forward_hook(self._hook(n)) for n, m in self._modules.items()]
        try:
            if self.amp:
                dtype = torch.float16 if x.device.type == "cuda" else torch.bfloat16
                with torch.autocast(x.device.type, dtype=dtype):
                    self.model(x)
            else:
                self.model(x)
        except _Done:
            pass
        finally:
            for h in handles:
                h.remove()
        missing = [n for n in self.layers if n not in self._out]
        if missing:
            raise BrodenError(f"layer {missing[0]!r} was not called in the forward pass; pick a layer the model uses")
        out, self._out = self._out, {}
        return {n: out[n] for n in self.layers}


def describe_output(output: Any) -> str:
    """Shape of a layer output as text, for the layer listing."""
    if isinstance(output, torch.Tensor):
        return "x".join(str(d) for d in output.shape)
    if isinstance(output, (tuple, list)):
        return "(" + ", ".join(describe_output(o) for o in output) + ")"
    return type(output).__name__


def list_layers(model: torch.nn.Module, input_size: tuple[int, int] = (224, 224),
                extra_tokens: int | None = None) -> list[dict[str, Any]]:
    """Every named module, in call order, with its output shape and the (C, H, W) grid it would be dissected as.

    One dummy forward pass with a hook on every module; modules not called are listed last with no shape.
    """
    records: dict[str, dict[str, Any]] = {}
    named = [(n, m) for n, m in model.named_modules() if n]

    def hook_for(name: str, module: torch.nn.Module):
        def hook(_m, _i, output):
            if name in records:
                return
            try:
                grid = to_grid(output, name, extra_tokens)
                dissect = "x".join(str(d) for d in grid.shape[1:])
            except BrodenError:
                dissect = None
            records[name] = {"name": name, "type": type(module).__name__, "output": describe_output(output), "grid": dissect}

        return hook

    handles = [m.register_forward_hook(hook_for(n, m)) for n, m in named]
    try:
        with torch.inference_mode():
            model(torch.zeros(1, 3, *input_size))
    except Exception as exc:
        raise BrodenError(f"the model's forward pass fails on a 1x3x{input_size[0]}x{input_size[1]} input ({type(exc).__name__}: {exc}); try --input-size") from exc
    finally:
        for h in handles:
            h.remove()
    rest = [{"name": n, "type": type(m).__name__, "output": None, "grid": None} for n, m in named if n not in records]
    return list(records.values()) + rest
