"""Each unit's top-k images by peak activation, kept while streaming, with their activation maps."""

from __future__ import annotations

import numpy as np
import torch

from benchmark import compiled as compiled_loops
from benchmark.quantile import NOT_FINITE
from broden.errors import BrodenError


class TopImages:
    """Streaming top-k per unit of the per-image spatial max, with the maps of those images; mergeable.

    Order: by peak value, descending; ties go to the lower row number of the run (the earlier image). Rows arrive
    in increasing order within a stream, so :meth:`add` keeps that order with a stable sort; :meth:`merge` sorts
    by (value, row) explicitly, so the top-k of any split of the rows, merged in any order, is that of one stream.
    Unused slots hold value -inf and row -1. Memory is (units, k, h, w) float16 for the maps, independent of the
    number of images.
    """

    def __init__(self, num_units: int, k: int, map_shape: tuple[int, int], device: str | torch.device = "cpu") -> None:
        self.k = int(k)
        self.values = torch.full((num_units, self.k), float("-inf"), device=device)
        self.rows = torch.full((num_units, self.k), -1, dtype=torch.int64, device=device)
        self.maps = torch.zeros((num_units, self.k, *map_shape), dtype=torch.float16, device=device)
        #: A setting of the process, not of the state: on the CPU, float16 maps are added by a compiled loop.
        self.compiled = False

    def add(self, acts: torch.Tensor, first_row: int) -> None:
        """``acts`` (B, U, h, w) for rows ``first_row .. first_row + B - 1`` of the run's order.

        With :attr:`compiled` set, contiguous float16 maps on the CPU are added in place by
        :func:`benchmark.kernels.keep_top_images` (the same values, rows and maps as the tensor operations;
        ``tests/benchmark/test_topk.py``)."""
        if self._add_compiled(acts, first_row):
            return
        b = acts.shape[0]
        peak = acts.flatten(2).amax(dim=2).t().to(self.values.dtype)  # (U, B)
        new_rows = torch.arange(first_row, first_row + b, device=self.rows.device).expand(self.rows.shape[0], b)
        order = torch.sort(torch.cat([self.values, peak], dim=1), dim=1, descending=True, stable=True).indices
        self._keep(order[:, : self.k], peak, new_rows, acts.transpose(0, 1))

    def _add_compiled(self, acts: torch.Tensor, first_row: int) -> bool:
        """Add ``acts`` with the compiled loop where it can (see :meth:`add`); whether it did."""
        fits = (self.values.device.type == "cpu" and acts.dim() == 4 and acts.shape[1] == self.values.shape[0]
                and acts.shape[2:] == self.maps.shape[2:] and self.k > 0
                and all(t.is_contiguous() for t in (self.values, self.rows, self.maps)))
        compiled = compiled_loops.float16_maps(self.compiled and fits, acts)
        if compiled is None:
            return False
        kernels, bits = compiled
        maps = self.maps.numpy().view(np.uint16).reshape(bits.shape[1], self.k, -1)
        if kernels.keep_top_images(bits, self.values.numpy(), self.rows.numpy(), maps, first_row) < 0:
            raise BrodenError(NOT_FINITE)
        return True

    def merge(self, other: "TopImages") -> None:
        """Keep the top-k of both (``other`` holds other rows of the same run)."""
        if (other.k, other.maps.shape[0], other.maps.shape[2:]) != (self.k, self.maps.shape[0], self.maps.shape[2:]):
            raise BrodenError("cannot merge top images of different units, k or map sizes")
        dev = self.values.device
        values = torch.cat([self.values, other.values.to(dev)], dim=1)
        rows = torch.cat([self.rows, other.rows.to(dev)], dim=1)
        # (value desc, row asc): sort by row, then stably by value. Unused slots (-inf, row -1) sort last.
        by_row = torch.sort(rows, dim=1, stable=True).indices
        by_value = torch.sort(values.gather(1, by_row), dim=1, descending=True, stable=True).indices
        order = by_row.gather(1, by_value)[:, : self.k]
        self._keep(order, other.values.to(dev), other.rows.to(dev), other.maps.to(dev))

    def _keep(self, order: torch.Tensor, values: torch.Tensor, rows: torch.Tensor, maps: torch.Tensor) -> None:
        """Keep entries ``order`` (U, k) of the kept entries followed by the candidates (U, n) ``values``, ``rows``
        and ``maps`` (U, n, h, w)."""
        self.values = torch.gather(torch.cat([self.values, values], dim=1), 1, order)
        self.rows = torch.gather(torch.cat([self.rows, rows], dim=1), 1, order)
        idx = order[:, :, None, None].expand(-1, -1, *self.maps.shape[2:])
        self.maps = torch.gather(torch.cat([self.maps, maps.to(self.maps.dtype)], dim=1), 1, idx)

    def state_dict(self) -> dict:
        return {"values": self.values.cpu(), "rows": self.rows.cpu(), "maps": self.maps.cpu()}

    @classmethod
    def from_state_dict(cls, state: dict, device: str | torch.device = "cpu") -> "TopImages":
        obj = cls.__new__(cls)
        obj.values = state["values"].to(device).clone()  # copies: the state may live on
        obj.rows = state["rows"].to(device).clone()
        obj.maps = state["maps"].to(device).clone()
        obj.k = obj.values.shape[1]
        obj.compiled = False
        return obj
