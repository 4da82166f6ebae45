"""TopQuantile: exact numpy agreement, streaming/merge invariance, the sketch's stated bound, persistence."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from benchmark.quantile import FLUSH_UNITS, SKETCH_ALPHA, SKETCH_MAX_BINS, ShardQuantile, TopQuantile
from broden.errors import BrodenError


def stream(values: np.ndarray, quantile: float, chunks: int, **kwargs) -> TopQuantile:
    """Feed ``(N, U)`` values in ``chunks`` pieces."""
    tq = TopQuantile(values.shape[1], quantile, **kwargs)
    for part in np.array_split(values, chunks):
        tq.add(torch.from_numpy(part))
    return tq


def reference(values: np.ndarray, quantile: float) -> np.ndarray:
    return np.quantile(values.astype(np.float64), 1 - quantile, axis=0)


def relu_lognormal(rng: np.random.Generator, n: int, units: int) -> np.ndarray:
    """Post-ReLU-like data: many exact zeros, heavy right tail, ties."""
    x = rng.lognormal(0.0, 1.5, (n, units)) * (rng.random((n, units)) < 0.4)
    x[rng.random((n, units)) < 0.05] = 1.0
    return x.astype(np.float32)


@pytest.mark.parametrize("quantile", [0.005, 0.1, 0.5])
@pytest.mark.parametrize("n", [1, 2, 7, 199, 1000])
def test_exact_matches_numpy(n: int, quantile: float) -> None:
    rng = np.random.default_rng(n)
    values = relu_lognormal(rng, n, 4)
    tq = stream(values, quantile, chunks=min(n, 5))
    assert tq.method.startswith("exact")
    np.testing.assert_allclose(tq.thresholds().numpy(), reference(values, quantile), rtol=1e-6)


@pytest.mark.parametrize("order", ["random", "ascending", "descending"])
def test_exact_top_k_filter_with_small_limit(order: str) -> None:
    """exact_limit = n: the top-k is full early and filters candidates; any stream order stays exact."""
    rng = np.random.default_rng(1)
    values = rng.standard_normal((20000, 3)).astype(np.float32)
    if order != "random":
        values = np.sort(values, axis=0)[:: 1 if order == "ascending" else -1].copy()
    tq = stream(values, 0.005, chunks=97, exact_limit=20000)
    assert tq.method.startswith("exact") and tq._top.shape[1] == 202  # ceil(2 * 0.005 * 20000) + 2
    np.testing.assert_allclose(tq.thresholds().numpy(), reference(values, 0.005), rtol=1e-6)


def test_exact_top_across_flush_chunks() -> None:
    """More units than one merge chunk (FLUSH_UNITS), the last one partial: the top grows, then is rewritten in
    place, and every unit stays exact."""
    rng = np.random.default_rng(3)
    values = relu_lognormal(rng, 6000, 2 * FLUSH_UNITS + 5)
    tq = stream(values, 0.005, chunks=41, exact_limit=6000, stream_total=6000)
    assert tq._top.shape[1] == 32  # ceil(0.005 * 6000) + 2
    np.testing.assert_allclose(tq.thresholds().numpy(), reference(values, 0.005), rtol=1e-6)


def test_exact_buffers_are_reused_once_full() -> None:
    """Once the top is full, every merge rewrites the same store in place and the pending values stay within
    their bounded buffer: no fresh tensors per merge (they left the allocator's heap full of holes)."""
    rng = np.random.default_rng(5)
    values = relu_lognormal(rng, 20000, 3)
    tq = stream(values[:10000], 0.005, chunks=50, exact_limit=20000, stream_total=20000)
    assert tq._top.shape[1] == tq._capacity == 102  # ceil(0.005 * 20000) + 2
    store = tq._store
    for part in np.array_split(values[10000:], 50):
        tq.add(torch.from_numpy(part))
        tq.thresholds()  # merges whatever is pending
        assert tq._store is store and tq._top.data_ptr() == store.data_ptr()
    assert tq._pending.shape[1] <= max(tq._capacity // 2, 1024)
    np.testing.assert_allclose(tq.thresholds().numpy(), reference(values, 0.005), rtol=1e-6)


def test_release_pending_merges_then_frees_the_buffer() -> None:
    """What the scorer does once pass 1 is over: the pending values are merged (not dropped), their buffer is
    freed, and the thresholds are those of the same stream kept whole; adding again works. A single process's
    result is the stream itself, not a copy."""
    rng = np.random.default_rng(6)
    values = relu_lognormal(rng, 6000, 3)
    expected = stream(values[:5000], 0.01, chunks=37, exact_limit=6000, stream_total=6000).thresholds()
    part = stream(values[:5000], 0.01, chunks=37, exact_limit=6000, stream_total=6000)
    assert part._pending_size > 0  # something to merge
    whole = ShardQuantile(3, 0.01, exact_limit=6000, switch_row=None, stream_total=6000)
    whole.before = part
    whole.release_pending()
    assert part._pending is None and part._pending_size == 0 and whole.result() is part
    assert torch.equal(whole.result().thresholds(), expected)
    whole.add(torch.from_numpy(values[5000:]), 5000)  # a later add allocates the buffer again
    np.testing.assert_allclose(whole.result().thresholds().numpy(), reference(values, 0.01), rtol=1e-6)


def test_float16_values_are_kept_as_float16_until_a_float32_one() -> None:
    """float16 activations (the scorer's) are kept as such: half the memory, the thresholds of the same values
    in float32; a float32 value later (or merged in) promotes the top, still exact."""
    rng = np.random.default_rng(4)
    values = relu_lognormal(rng, 3000, 5).astype(np.float16)
    half = stream(values, 0.005, chunks=13, exact_limit=6000, stream_total=6000)
    full = stream(values.astype(np.float32), 0.005, chunks=13, exact_limit=6000, stream_total=6000)
    assert half._top.dtype == torch.float16 and full._top.dtype == torch.float32
    assert torch.equal(half.thresholds(), full.thresholds())
    more = relu_lognormal(rng, 3000, 5)
    everything = np.concatenate([values.astype(np.float32), more])
    half.add(torch.from_numpy(more))
    assert half._top.dtype == torch.float32
    np.testing.assert_allclose(half.thresholds().numpy(), reference(everything, 0.005), rtol=1e-6)
    first = stream(values, 0.005, chunks=3, exact_limit=6000, stream_total=6000)
    first.merge(stream(more, 0.005, chunks=3, exact_limit=6000, stream_total=6000))
    np.testing.assert_allclose(first.thresholds().numpy(), reference(everything, 0.005), rtol=1e-6)


@pytest.mark.parametrize("n", [1, 2, 199, 20000])
@pytest.mark.parametrize("quantile", [0.005, 0.5])
def test_known_stream_total_keeps_half_and_stays_exact(n: int, quantile: float) -> None:
    """stream_total announced: no margin for a sketch (K = ceil(q * n) + 2), the same exact thresholds, merged
    parts included; a value beyond the announced total is refused."""
    rng = np.random.default_rng(n)
    values = relu_lognormal(rng, n, 3)
    tq = stream(values, quantile, chunks=min(n, 97), exact_limit=n, stream_total=n)
    assert tq._capacity == int(np.ceil(quantile * n)) + 2
    np.testing.assert_allclose(tq.thresholds().numpy(), reference(values, quantile), rtol=1e-6)
    if n > 1:  # two parts of the same stream, merged
        first = stream(values[: n // 2], quantile, chunks=1, exact_limit=n, stream_total=n)
        first.merge(stream(values[n // 2 :], quantile, chunks=1, exact_limit=n, stream_total=n))
        np.testing.assert_allclose(first.thresholds().numpy(), reference(values, quantile), rtol=1e-6)
    with pytest.raises(BrodenError, match="announced"):
        tq.add(torch.ones(1, 3))
    with pytest.raises(BrodenError, match="stream_total"):
        TopQuantile(3, quantile, exact_limit=10, stream_total=11)


def test_maps_batches_and_merge_equal_one_pass() -> None:
    rng = np.random.default_rng(2)
    maps = rng.standard_normal((30, 5, 4, 4)).astype(np.float32)
    whole = TopQuantile(5, 0.01)
    whole.add(torch.from_numpy(maps))
    first, second = TopQuantile(5, 0.01), TopQuantile(5, 0.01)
    for i in range(0, 15, 4):
        first.add(torch.from_numpy(maps[i : min(i + 4, 15)]))
    second.add(torch.from_numpy(maps[15:]))
    first.merge(second)
    assert torch.equal(first.thresholds(), whole.thresholds())
    rows = maps.transpose(0, 2, 3, 1).reshape(-1, 5)
    np.testing.assert_allclose(whole.thresholds().numpy(), reference(rows, 0.01), rtol=1e-6)


def check_sketch_bound(tq: TopQuantile, values: np.ndarray, quantile: float) -> None:
    """|t - exact| <= alpha * max(|x_j|, |x_j+1|) for the two order statistics the level interpolates."""
    n = values.shape[0]
    p = (n - 1) * (1 - quantile)
    j = int(np.floor(p))
    ordered = np.sort(values.astype(np.float64), axis=0)
    scale = np.maximum(np.abs(ordered[j]), np.abs(ordered[min(j + 1, n - 1)]))
    error = np.abs(tq.thresholds().numpy().astype(np.float64) - reference(values, quantile))
    assert np.all(error <= SKETCH_ALPHA * scale * (1 + 1e-5) + 1e-6), (error, scale)


def test_sketch_within_stated_bound_for_large_n() -> None:
    rng = np.random.default_rng(3)
    values = np.concatenate([relu_lognormal(rng, 60_000, 3), rng.standard_normal((60_000, 3)).astype(np.float32)],
                            axis=1)
    values[:, 5] -= 3.0  # a unit whose threshold is negative (under a positive maximum)
    tq = stream(values, 0.005, chunks=23, exact_limit=5_000)
    assert tq.method.startswith("sketch") and "approximate" not in tq.method and tq._top is None
    check_sketch_bound(tq, values, 0.005)
    # Mergeable: two sketched halves, and a sketch with an exact part, stay within the bound.
    half = stream(values[:30_000], 0.005, chunks=7, exact_limit=5_000)
    half.merge(stream(values[30_000:], 0.005, chunks=5, exact_limit=5_000))
    check_sketch_bound(half, values, 0.005)
    mixed = stream(values[:50_000], 0.005, chunks=7, exact_limit=5_000)
    mixed.merge(stream(values[50_000:], 0.005, chunks=2, exact_limit=20_000))
    check_sketch_bound(mixed, values, 0.005)


def test_sketch_reports_drift_below_its_seed() -> None:
    """A stream that only falls after the switch leaves the level in the unbucketed mass: flagged, upper bound."""
    values = np.linspace(1000.0, 1.0, 100_000, dtype=np.float32)[:, None]  # descending
    tq = stream(values, 0.005, chunks=100, exact_limit=1_000)  # the first chunk is exact, then sketched
    assert "1 units approximate" in tq.method
    assert tq.thresholds().item() >= reference(values, 0.005)[0]


def test_sketch_bound_holds_when_lowest_buckets_are_merged() -> None:
    rng = np.random.default_rng(4)
    values = (10.0 ** rng.uniform(-4, 13, (40_000, 2))).astype(np.float32)  # spans more than SKETCH_MAX_BINS buckets
    tq = stream(values, 0.005, chunks=4, exact_limit=1000)
    assert tq._bins.shape[1] == SKETCH_MAX_BINS and (tq._below > 1000).all()  # the low end left the window
    check_sketch_bound(tq, values, 0.005)


@pytest.mark.parametrize("limit", [10**6, 500])
def test_state_dict_round_trip(limit: int) -> None:
    rng = np.random.default_rng(5)
    values = rng.standard_normal((3000, 4)).astype(np.float32)
    tq = stream(values[:2000], 0.005, chunks=3, exact_limit=limit)
    buf = io.BytesIO()
    torch.save(tq.state_dict(), buf)
    buf.seek(0)
    resumed = TopQuantile.from_state_dict(torch.load(buf))
    resumed.add(torch.from_numpy(values[2000:]))
    direct = stream(values, 0.005, chunks=1, exact_limit=limit)
    assert resumed.method == direct.method
    assert torch.equal(resumed.thresholds(), direct.thresholds())


def test_errors() -> None:
    tq = TopQuantile(2)
    with pytest.raises(BrodenError, match="no activations"):
        tq.thresholds()
    with pytest.raises(BrodenError, match="NaN"):
        tq.add(torch.tensor([[0.0, float("nan")]]))
    with pytest.raises(BrodenError, match="2 units"):
        tq.add(torch.zeros(4, 3))
    with pytest.raises(BrodenError, match="quantile"):
        TopQuantile(2, 1.5)


def relu_maps(rng: np.random.Generator, batch: int, units: int, h: int = 3, w: int = 4) -> torch.Tensor:
    """float16 ``(B, U, h, w)`` maps as the scorer streams them: ReLU-like with ties, a dead unit (all +0), a unit
    with negatives and -0, some exactly equal values across batches."""
    x = relu_lognormal(rng, batch * h * w, units).reshape(batch, h, w, units).transpose(0, 3, 1, 2).copy()
    x[:, 0] = 0.0
    x[:, 1] = -x[:, 1]
    x[:, 1, 0, 0] = -0.0
    return torch.from_numpy(x.astype(np.float16))


@pytest.mark.parametrize("total", [False, True])
def test_compiled_compaction_builds_the_tensor_state(total: bool, monkeypatch) -> None:
    """With ``compiled`` set, float16 maps are compacted by the compiled loop into exactly the tensor operations'
    pending values and top, batch after batch, filling and full, with the numpy thresholds; a non-contiguous batch
    takes the tensor operations."""
    import benchmark.compiled as compiled

    loops = compiled.kernels()
    calls = []
    keep = loops.keep_above
    monkeypatch.setattr(loops, "keep_above", lambda *args: calls.append(1) or keep(*args))
    rng = np.random.default_rng(7)
    batches = [relu_maps(rng, int(rng.integers(1, 40)), 5) for _ in range(60)]
    n = sum(b.shape[0] * 12 for b in batches)
    kwargs = {"exact_limit": n, "stream_total": n} if total else {"exact_limit": 10 * n}
    tensor, fast = TopQuantile(5, 0.01, **kwargs), TopQuantile(5, 0.01, **kwargs)
    fast.compiled = True
    for i, batch in enumerate(batches):
        tensor.add(batch)
        fast.add(batch if i % 7 else batch.transpose(2, 3).contiguous().transpose(2, 3))  # non-contiguous
        assert fast.count == tensor.count and fast._pending_size == tensor._pending_size
        assert torch.equal(fast._top, tensor._top), i
        size = tensor._pending_size
        assert torch.equal(fast._pending[:, :size], tensor._pending[:, :size]), i
    assert len(calls) == len(batches) - len(range(0, len(batches), 7))
    assert torch.equal(fast.thresholds(), tensor.thresholds())
    everything = torch.cat([b.transpose(0, 1).reshape(5, -1) for b in batches], dim=1).t().float().numpy()
    np.testing.assert_allclose(fast.thresholds().numpy(), reference(everything, 0.01), rtol=1e-6)


def test_compiled_compaction_refuses_nan_and_infinity_unchanged() -> None:
    rng = np.random.default_rng(8)
    for bad in (float("nan"), float("inf"), -float("inf")):
        tq = TopQuantile(5, 0.01, exact_limit=10**6)
        tq.compiled = True
        tq.add(relu_maps(rng, 30, 5))
        top, count = tq._top.clone(), tq.count
        batch = relu_maps(rng, 30, 5)
        batch[29, 4, 2, 3] = bad
        with pytest.raises(BrodenError, match="NaN or infinity"):
            tq.add(batch)
        assert tq.count == count and torch.equal(tq._top, top)
