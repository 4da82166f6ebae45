"""The paper's axis-alignment baseline: a layer's activations rotated along the unit axis (Bau et al. 2017, 3.2).

``Q`` is a random rotation of ``R^n`` (n = the layer's units): the Q factor of an n x n standard normal matrix
(``torch.Generator().manual_seed(seed)``, float64), its columns' signs fixed by the signs of R's diagonal so that
``Q`` is Haar-distributed over the orthogonal group, and its first column negated if ``det Q < 0`` (a rotation, not
a reflection). Its power ``Q^alpha`` interpolates the identity (alpha 0) and ``Q`` (alpha 1) along the shortest
path: with the real Schur form ``Q = W T W^T`` (``T`` block diagonal up to rounding: 2 x 2 blocks of rotations by
``theta_k``, 1 x 1 blocks of +-1), ``Q^alpha = W B(alpha) W^T`` where ``B(alpha)`` rotates each block's plane by
``alpha theta_k`` (``theta_k = atan2`` of the block, in (-pi, pi]), keeps +1 and turns each pair of -1 entries into
a rotation by ``alpha pi``. Every ``Q^alpha`` is a rotation, ``Q^0 = I`` and ``Q^1 = Q``. The facts follow
NetDissect's ``randomRotationPowers`` (``src/rotate.py``), which reads the angles off the Schur form the same way.

Activations ``a (B, U, h, w)`` become ``a'[:, i] = sum_j Q^alpha[i, j] a[:, j]`` at every position. Alpha 0 is the
plain run: no rotation is applied at all, so its results are the plain run's exactly.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from benchmark.activations import check_finite
from broden.errors import BrodenError

METHOD = "Q^alpha of a Haar-random rotation Q (QR of a seeded normal matrix), by real Schur decomposition"


def random_rotation(n: int, seed: int) -> torch.Tensor:
    """A Haar-random ``n x n`` rotation (float64, determinant +1) from ``seed``."""
    gen = torch.Generator().manual_seed(int(seed))
    q, r = torch.linalg.qr(torch.randn(n, n, generator=gen, dtype=torch.float64))
    q = q * torch.sign(torch.diagonal(r))[None, :]
    if torch.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


def rotation_power(q: torch.Tensor, alpha: float) -> torch.Tensor:
    """``q ** alpha`` for a rotation ``q`` (float64), along the shortest path from the identity."""
    import scipy.linalg

    t, w = scipy.linalg.schur(q.numpy(), output="real")
    n = t.shape[0]
    block = np.zeros((n, n))
    minus_one: list[int] = []
    i = 0
    while i < n:
        if i + 1 < n and abs(t[i + 1, i]) > 1e-9:  # a 2 x 2 rotation block
            theta = math.atan2((t[i + 1, i] - t[i, i + 1]) / 2, (t[i, i] + t[i + 1, i + 1]) / 2)
            c, s = math.cos(alpha * theta), math.sin(alpha * theta)
            block[i : i + 2, i : i + 2] = [[c, -s], [s, c]]
            i += 2
            continue
        if t[i, i] > 0:
            block[i, i] = 1.0
        else:
            minus_one.append(i)
        i += 1
    if len(minus_one) % 2:
        raise BrodenError("rotation power: the matrix is not a rotation (odd number of -1 eigenvalues)")
    for a, b in zip(minus_one[::2], minus_one[1::2]):  # two -1 entries: a rotation by pi in their plane
        c, s = math.cos(alpha * math.pi), math.sin(alpha * math.pi)
        block[[a, a, b, b], [a, b, a, b]] = [c, -s, s, c]
    return torch.from_numpy(w @ block @ w.T)


class Rotation:
    """``Q^alpha`` per layer size (one seed for every layer, as NetDissect does), applied to activations."""

    def __init__(self, alpha: float, seed: int) -> None:
        if not 0 <= alpha <= 1:
            raise BrodenError(f"--rotate {alpha}: alpha must lie in [0, 1] (0: no rotation, 1: a full random rotation)")
        self.alpha, self.seed = float(alpha), int(seed)
        self._matrices: dict[int, torch.Tensor] = {}

    def matrix(self, n: int) -> torch.Tensor:
        if n not in self._matrices:
            self._matrices[n] = rotation_power(random_rotation(n, self.seed), self.alpha).to(torch.float32)
        return self._matrices[n]

    def apply(self, layer: str, acts: torch.Tensor, ids: list[str]) -> torch.Tensor:
        """Rotated activations ``(B, U, h, w)`` of ``layer``, rounded to float16 like every activation."""
        m = self.matrix(acts.shape[1]).to(acts.device)
        return check_finite(layer, torch.einsum("ij,bjhw->bihw", m, acts.float()), ids)

    def record(self) -> dict[str, Any]:
        return {"alpha": self.alpha, "seed": self.seed, "method": METHOD}


class RotatedProducer:
    """A producer whose layers' activations are rotated by ``rotation`` (alpha > 0) on their way to the run."""

    def __init__(self, producer: Any, rotation: Rotation) -> None:
        self.producer, self.rotation = producer, rotation
        self.kind, self.layers, self.shapes = producer.kind, producer.layers, producer.shapes
        self.indices = producer.indices
        for name in self.layers:  # build the matrices up front: a bad one fails before any pass
            rotation.matrix(self.shapes[name][0])

    def batches(self, *args: Any, **kwargs: Any) -> Iterator[tuple[Any, dict[str, torch.Tensor] | None]]:
        for batch, acts in self.producer.batches(*args, **kwargs):
            yield batch, None if acts is None else self._rotated(acts, batch.ids)

    def read(self, start: int, end: int, ids: list[str]) -> dict[str, torch.Tensor]:
        """The wrapped producer's stored activations of rows ``start:end``, rotated (supplied activations only)."""
        return self._rotated(self.producer.read(start, end, ids), ids)

    def _rotated(self, acts: dict[str, torch.Tensor], ids: list[str]) -> dict[str, torch.Tensor]:
        return {name: self.rotation.apply(name, a, ids) for name, a in acts.items()}

    def describe_preprocess(self) -> dict[str, Any]:
        return self.producer.describe_preprocess()

    def identity(self) -> dict[str, Any]:
        return {**self.producer.identity(), "rotation": {"alpha": self.rotation.alpha, "seed": self.rotation.seed}}
