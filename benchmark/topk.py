"""Each unit's top-k images by peak activation, kept while streaming, with their activation maps."""

from __future__ import annotations

import torch


class TopImages:
    """Streaming top-k per unit of the per-image spatial max; ties keep the earlier image (stable, resumable).

    Memory is (units, k, h, w) float16 for the maps, independent of the number of images.
    """

    def __init__(self, num_units: int, k: int, map_shape: tuple[int, int], device: str | torch.device = "cpu") -> None:
        self.k = int(k)
        self.values = torch.full((num_units, self.k), float("-inf"), device=device)
        self.rows = torch.full((num_units, self.k), -1, dtype=torch.int64, device=device)
        self.maps = torch.zeros((num_units, self.k, *map_shape), dtype=torch.float16, device=device)

    def add(self, acts: torch.Tensor, first_row: int) -> None:
        """``acts`` (B, U, h, w) for rows ``first_row .. first_row + B - 1`` of the run's order."""
        b = acts.shape[0]
        peak = acts.flatten(2).amax(dim=2).t().to(self.values.dtype)  # (U, B)
        values = torch.cat([self.values, peak], dim=1)
        new_rows = torch.arange(first_row, first_row + b, device=self.rows.device).expand(self.rows.shape[0], b)
        rows = torch.cat([self.rows, new_rows], dim=1)
        order = torch.sort(values, dim=1, descending=True, stable=True).indices[:, : self.k]
        maps = torch.cat([self.maps, acts.transpose(0, 1).to(self.maps.dtype)], dim=1)
        self.values = torch.gather(values, 1, order)
        self.rows = torch.gather(rows, 1, order)
        idx = order[:, :, None, None].expand(-1, -1, *self.maps.shape[2:])
        self.maps = torch.gather(maps, 1, idx)

    def state_dict(self) -> dict:
        return {"values": self.values.cpu(), "rows": self.rows.cpu(), "maps": self.maps.cpu()}

    @classmethod
    def from_state_dict(cls, state: dict, device: str | torch.device = "cpu") -> "TopImages":
        obj = cls.__new__(cls)
        obj.values = state["values"].to(device)
        obj.rows = state["rows"].to(device)
        obj.maps = state["maps"].to(device)
        obj.k = obj.values.shape[1]
        return obj
