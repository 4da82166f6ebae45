"""The producers of a run's activations: a model's forward pass, or an ``.npz`` of activations computed elsewhere.

Both yield, per batch of rows in the run's order, the decoded :class:`~benchmark.activations.Batch` and each layer's
activations as float16 (checked finite), and both describe themselves for the results file and the run key.
``then`` is :class:`~benchmark.activations.RowBatches`'s: work on each batch where it is decoded.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch

from benchmark.activations import Batch, RowBatches, SuppliedActivations, batch_loader, check_finite
from benchmark.checkpoint import module_digest
from benchmark.models.layers import LayerTaps
from benchmark.models.loader import LoadedModel, resolve_preprocess
from broden.dataset import Broden
from broden.errors import BrodenError
from broden.utils.hashing import file_digests

Acts = dict[str, torch.Tensor]


class ModelProducer:
    """Activations from one forward pass of a model for all its tapped layers."""

    kind = "model"

    def __init__(self, model: LoadedModel, dataset: Broden, layers: list[str], device: str, amp: bool = False) -> None:
        self.model = model
        self.dataset = dataset
        self.layers = layers
        self.device = torch.device(device)
        self.indices = range(len(dataset))
        size = dataset.meta.get("image_size")
        self.preprocess = resolve_preprocess(model, (int(size[0]), int(size[1])) if size else None)
        model.module.eval().to(self.device)
        self.taps = LayerTaps(model.module, layers, model.extra_tokens, amp=amp)
        self.shapes = self._probe_shapes()

    def _probe_shapes(self) -> dict[str, tuple[int, int, int]]:
        first = next(batch_loader(RowBatches(self.dataset, self.indices[:1], 1, preprocess=self.preprocess), 0))
        acts = self._forward(first)
        return {name: tuple(int(d) for d in a.shape[1:]) for name, a in acts.items()}  # type: ignore[misc]

    def _forward(self, batch: Batch) -> Acts:
        """The tapped layers' outputs for one batch; a failing model is one line naming the images it failed on."""
        try:
            return self.taps.run(batch.images.to(self.device, non_blocking=True))
        except (BrodenError, KeyboardInterrupt):
            raise
        except Exception as exc:  # the model's own code: whatever it raises is reported, not a traceback
            detail = " ".join(str(exc).split())[:300] or "(no message)"
            raise BrodenError(f"{self.model.name}: forward pass failed on images {batch.start}..{batch.end - 1} "
                              f"({batch.ids[0]} ...): {type(exc).__name__}: {detail}") from exc

    def batches(self, batch_size: int, workers: int, first_row: int, categories: list[str] | None,
                need_acts: bool = True, stop_row: int | None = None, then: Callable[[Batch], None] | None = None,
                compiled: bool = False) -> Iterator[tuple[Batch, Acts | None]]:
        """Rows ``first_row .. stop_row - 1`` (default: to the end); ``categories`` given: with label maps (decoded
        ``compiled`` or not, as :class:`RowBatches`); ``need_acts`` False: no forward."""
        rb = RowBatches(self.dataset, self.indices, batch_size, first_row=first_row, stop_row=stop_row,
                        preprocess=self.preprocess if need_acts else None, categories=categories, then=then,
                        compiled=compiled)
        for batch in batch_loader(rb, workers):
            if not need_acts:
                yield batch, None
                continue
            outs = self._forward(batch)
            yield batch, {name: check_finite(name, a, batch.ids) for name, a in outs.items()}

    def describe_preprocess(self) -> dict[str, Any]:
        return self.preprocess.describe()

    def identity(self) -> dict[str, Any]:
        record = {k: v for k, v in self.model.record().items() if k != "file"}  # content counts, not the path
        return {"model": record, "parameters": module_digest(self.model.module), "extra_tokens": self.model.extra_tokens}


class SuppliedProducer:
    """Activations read from ``--activations acts.npz`` (one layer); the npz itself serves as the cache."""

    kind = "supplied"

    def __init__(self, supplied: SuppliedActivations, dataset: Broden) -> None:
        self.supplied = supplied
        self.dataset = dataset
        self.layers = [supplied.layer]
        self.indices = supplied.indices
        self.shapes = {supplied.layer: supplied.shape}

    def batches(self, batch_size: int, workers: int, first_row: int, categories: list[str] | None,
                need_acts: bool = True, stop_row: int | None = None, then: Callable[[Batch], None] | None = None,
                compiled: bool = False) -> Iterator[tuple[Batch, Acts | None]]:
        """As :meth:`ModelProducer.batches`; ``need_acts`` False: the activations are not read."""
        rb = RowBatches(self.dataset, self.indices, batch_size, first_row=first_row, stop_row=stop_row,
                        categories=categories, then=then, compiled=compiled)
        for batch in batch_loader(rb, workers if categories else 0):
            yield batch, self.read(batch.start, batch.end, batch.ids) if need_acts else None

    def read(self, start: int, end: int, ids: Sequence[str]) -> Acts:
        """The activations of rows ``start:end`` (dataset ids ``ids``), from any process."""
        return {self.supplied.layer: check_finite(self.supplied.layer, self.supplied.read(start, end), ids)}

    def describe_preprocess(self) -> dict[str, Any]:
        return {"kind": "supplied", "file": str(self.supplied.path)}

    def identity(self) -> dict[str, Any]:
        return {"activations": file_digests(self.supplied.path)[0]}
