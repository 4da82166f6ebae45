"""TopImages: each unit's top-k images by peak, against a sort of every row; the compiled loop and the tensor
operations alike."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from benchmark.topk import TopImages
from broden.errors import BrodenError


def maps(rng: np.random.Generator, n: int, units: int) -> torch.Tensor:
    """float16 ``(n, units, 3, 4)``: small integers (many tied peaks), negatives, zeros of both signs."""
    x = rng.integers(-3, 5, (n, units, 3, 4)).astype(np.float16) * np.float16(0.5)
    x[:, 0] = -np.abs(x[:, 0])  # a unit whose peaks are mostly 0 or negative
    x[::5, 0] = -0.0
    return torch.from_numpy(x)


def reference(acts: torch.Tensor, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per unit, the ``k`` rows of largest peak, ties to the earlier row; unused slots -inf, row -1, zero maps."""
    a = acts.float().numpy()
    n, units = a.shape[:2]
    peaks = a.reshape(n, units, -1).max(axis=2)
    values = np.full((units, k), -np.inf, np.float32)
    rows = np.full((units, k), -1, np.int64)
    kept = np.zeros((units, k, *a.shape[2:]), np.float32)
    for u in range(units):
        order = np.lexsort((np.arange(n), -peaks[:, u]))[:k]
        values[u, : len(order)], rows[u, : len(order)] = peaks[order, u], order
        kept[u, : len(order)] = a[order, u]
    return values, rows, kept


@pytest.mark.parametrize("compiled", [False, True], ids=["tensor", "compiled"])
@pytest.mark.parametrize("n", [3, 200])
def test_top_images_are_the_top_k_of_every_row(compiled: bool, n: int, monkeypatch) -> None:
    import benchmark.compiled as loops

    calls = []
    keep = loops.kernels().keep_top_images
    monkeypatch.setattr(loops.kernels(), "keep_top_images", lambda *args: calls.append(1) or keep(*args))
    rng = np.random.default_rng(n)
    acts = maps(rng, n, 6)
    top = TopImages(6, 5, (3, 4))
    top.compiled = compiled
    start = 0
    while start < n:
        stop = min(n, start + int(rng.integers(1, 9)))
        top.add(acts[start:stop], start)
        start = stop
    values, rows, kept = reference(acts, 5)
    assert np.array_equal(top.values.numpy(), values) and np.array_equal(top.rows.numpy(), rows)
    assert np.array_equal(top.maps.float().numpy(), kept)
    assert bool(calls) == compiled


def test_compiled_top_images_refuse_nan_and_infinity_unchanged() -> None:
    rng = np.random.default_rng(3)
    top = TopImages(6, 5, (3, 4))
    top.compiled = True
    top.add(maps(rng, 20, 6), 0)
    before = {name: getattr(top, name).clone() for name in ("values", "rows", "maps")}
    for bad in (float("nan"), float("inf")):
        batch = maps(rng, 8, 6)
        batch[0, 5, 0, 0] = 99.0  # would enter the top of unit 5
        batch[7, 2, 1, 1] = bad
        with pytest.raises(BrodenError, match="NaN or infinity"):
            top.add(batch, 20)
        for name, value in before.items():
            assert torch.equal(getattr(top, name), value), name
