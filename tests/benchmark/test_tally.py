"""The vectorised tally against planted detectors, hand-computed counts, and the plain reference in naive_tally."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from benchmark.tally import Tally, TallyInput
from broden.errors import BrodenError
from tests.helpers.naive_tally import naive_tally
from tests.helpers.tally_data import (
    CATS,
    NUM_LABELS,
    PRIMARY,
    assert_same_counts,
    counts_of,
    random_batch,
    run_tally,
    unit_thresholds,
)


@pytest.fixture(params=["compiled", "tensor"])
def engine(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """How the tally counts active pixels on the CPU: numba's compiled loop (the default) or tensor operations (as on
    other devices)."""
    import benchmark.compiled as compiled

    if request.param == "compiled":
        assert compiled.kernels() is not None, "numba is a dependency: the compiled loops must load"
    else:
        monkeypatch.setattr(compiled, "kernels", lambda: None)
    return request.param


@pytest.mark.parametrize("compat", ["netdissect", "netdissect-lite"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_vectorised_matches_naive(seed: int, compat: str, engine: str) -> None:
    rng = np.random.default_rng(seed)
    batches = [random_batch(rng, images, 6) for images in (5, 1, 4)]
    thresholds = unit_thresholds(batches, 0.8)
    thresholds[0] = batches[0][0][0, 0].max()  # a map whose max equals the threshold: never active
    tally = run_tally(batches, thresholds, compat, chunk_elements=3 * 49)  # several chunks per batch
    expected = naive_tally(batches, thresholds, NUM_LABELS, CATS, PRIMARY, compat)
    assert_same_counts(counts_of(tally), expected)
    assert tally.active.sum() > 0 and tally.intersection[:, 8].sum() > 0


def test_merge_of_halves_equals_one_pass_and_state_round_trip() -> None:
    rng = np.random.default_rng(5)
    batches = [random_batch(rng, 4, 5) for _ in range(4)]
    thresholds = unit_thresholds(batches, 0.7)
    whole = run_tally(batches, thresholds)
    first, second = run_tally(batches[:2], thresholds), run_tally(batches[2:], thresholds)
    buf = io.BytesIO()
    torch.save(first.state_dict(), buf)
    buf.seek(0)
    restored = Tally.from_state_dict(torch.load(buf))
    restored.merge(second)
    assert_same_counts(counts_of(restored), counts_of(whole))
    assert torch.equal(restored.label_cat, whole.label_cat)
    with pytest.raises(BrodenError):
        restored.merge(run_tally(batches[:1], thresholds, compat="netdissect-lite"))


def test_planted_detectors_reach_iou_one() -> None:
    """Unit k fires exactly on concept k (pixel labels at mask resolution, then a scene label): IoU 1."""
    from benchmark.scoring import score_units

    rng = np.random.default_rng(3)
    images, seg = 6, 8
    maps = np.zeros((images, 2, seg, seg), dtype=np.int64)
    maps[:, 0] = rng.integers(1, 5, (images, seg, seg))  # color everywhere
    maps[:, 1, :4, :] = 5  # object 5 in the top half of every image
    maps[:3, 1, 4:, :4] = 6  # object 6 in three images
    scenes = [[13] if i % 2 else [14] for i in range(images)]
    planted = [(0, 1), (1, 5), (1, 6), (3, 13)]  # (layer or scene, label) per unit
    acts = np.zeros((images, len(planted), seg, seg), dtype=np.float32)
    for u, (layer, label) in enumerate(planted):
        if layer == 3:
            acts[:, u] = np.array([[lab == label for lab in s] for s in scenes], dtype=np.float32)[:, :, None]
        else:
            acts[:, u] = maps[:, layer] == label
    thresholds = np.full(len(planted), 0.5, dtype=np.float32)
    tally = run_tally([(acts, maps, scenes)], thresholds)
    units = score_units(tally, {n: f"label{n}" for n in range(NUM_LABELS)})
    got = [(u["category"], u["label"], u["iou"]) for u in units]
    assert got == [("color", "label1", 1.0), ("object", "label5", 1.0), ("object", "label6", 1.0),
                   ("scene", "label13", 1.0)]
    assert units[3]["categories"]["scene"] == {
        "label": "label13", "label_id": 13, "iou": 1.0, "intersection": 3 * 64, "activation": 3 * 64, "truth": 3 * 64,
    }


def gate_case():
    """Three 2x2 images: object 5 everywhere; part 9 at (0,0) of image 0 and at (1,1) of image 2; image 1 has none.

    Unit 0 fires at (0,0) in images 0 and 2 and everywhere in image 1.
    """
    maps = np.zeros((3, 2, 2, 2), dtype=np.int64)
    maps[:, 0] = 5
    maps[0, 1, 0, 0] = 9
    maps[2, 1, 1, 1] = 9
    acts = np.zeros((3, 1, 2, 2), dtype=np.float32)
    acts[0, 0, 0, 0] = acts[2, 0, 0, 0] = 1
    acts[1, 0] = 1
    return [(acts, maps, [[], [], []])], np.array([0.5], dtype=np.float32)


def test_category_conditional_denominator() -> None:
    """Orig: activation counts in images with any part label (images 0 and 2): A=2, T=2, I=1 -> IoU 1/3.

    The whole-dataset denominator would use all 6 active pixels (IoU 1/7); Lite's narrow gate only image 0 (1/2).
    """
    from benchmark.scoring import iou_matrix

    batches, thresholds = gate_case()
    orig = run_tally(batches, thresholds, categories=["object", "part"], primary={5: "object", 9: "part"})
    assert orig.active.tolist() == [6]
    assert orig.intersection[0, 9] == 1 and orig.truth[9] == 2
    assert orig.activation_by_category.tolist() == [[6, 2]]
    assert iou_matrix(orig)[0, 9].item() == pytest.approx(1 / 3)
    assert iou_matrix(orig)[0, 5].item() == pytest.approx(6 / 12)
    lite = run_tally(batches, thresholds, "netdissect-lite", categories=["object", "part"],
                     primary={5: "object", 9: "part"})
    assert lite.activation_by_category.tolist() == [[6, 1]]
    assert iou_matrix(lite)[0, 9].item() == pytest.approx(1 / 2)


def test_lite_image_level_label_zero_and_fallback_category() -> None:
    """Lite: a scene '0' adds to truth[0] and intersection[:,0] and gates the last category; label 18 (unselected)
    is scored in the last category. The original ignores both."""
    maps = np.zeros((1, 1, 2, 2), dtype=np.int64)
    maps[0, 0] = [[5, 18], [5, 5]]
    acts = np.array([[[[0, 1], [0, 0]]]], dtype=np.float32)
    batches, thresholds = [(acts, maps, [[0]])], np.array([0.5], dtype=np.float32)
    orig = run_tally(batches, thresholds, categories=CATS)
    lite = run_tally(batches, thresholds, "netdissect-lite", categories=CATS)
    assert orig.truth[0] == 0 and orig.intersection[0, 0] == 0
    assert orig.activation_by_category.tolist() == [[0, 1, 0, 0, 0]]  # the image has object 5
    assert orig.label_cat[0] == -1 and orig.label_cat[18] == -1
    assert lite.truth[0] == 4 and lite.intersection[0, 0] == 1
    assert lite.label_cat[0] == lite.label_cat[18] == len(CATS) - 1
    assert lite.activation_by_category.tolist() == [[0, 0, 0, 0, 1]]  # only texture (last) via label 0 and 18
    assert lite.intersection[0, 18] == 1 and orig.intersection[0, 18] == 1  # counted in both, scored only in lite


def test_lite_gate_counts_only_overlapping_categories() -> None:
    """The active pixel overlaps only object 5; the image also has part 9 elsewhere: Orig gates part, Lite does not."""
    maps = np.zeros((1, 2, 2, 2), dtype=np.int64)
    maps[0, 0] = 5
    maps[0, 1, 1, 1] = 9
    acts = np.array([[[[1, 0], [0, 0]]]], dtype=np.float32)
    batches, thresholds = [(acts, maps, [[13]])], np.array([0.5], dtype=np.float32)
    orig = run_tally(batches, thresholds, categories=CATS)
    lite = run_tally(batches, thresholds, "netdissect-lite", categories=CATS)
    assert orig.activation_by_category.tolist() == [[0, 1, 1, 1, 0]]
    assert lite.activation_by_category.tolist() == [[0, 1, 0, 1, 0]]


def test_bilinear_upsampling_and_double_counted_layers() -> None:
    """A 2x2 map upsampled to 4x4 (align_corners=False) and a pixel labeled 8 in two layers counting twice."""
    acts = torch.tensor([[[[0.0, 1.0], [0.0, 0.0]]]]).numpy()
    maps = np.zeros((1, 2, 4, 4), dtype=np.int64)
    maps[0, 0, :, 2:] = 8
    maps[0, 1, 0, 3] = 8
    tally = run_tally([(acts, maps, [[]])], np.array([0.7], dtype=np.float32))
    # Upsampled top row: 0, 0.25, 0.75, 1; second row: 0, 0.1875, 0.5625, 0.75 -> active (0,2), (0,3), (1,3),
    # all labeled 8 in layer 0, and (0,3) also in layer 1.
    assert tally.active.tolist() == [3]
    assert tally.intersection[0, 8] == 4 and tally.truth[8] == 9


def test_bad_inputs_raise_one_line_errors() -> None:
    tally = Tally(2, NUM_LABELS, CATS, PRIMARY)
    acts, maps = torch.zeros(1, 2, 3, 3), torch.zeros(1, 3, 7, 7, dtype=torch.int64)
    with pytest.raises(BrodenError, match="outside"):
        tally.add(TallyInput(acts, maps + NUM_LABELS, [[]]), torch.zeros(2))
    two, negative = torch.zeros(2, 3, 7, 7, dtype=torch.int64), torch.zeros(2, 3, 7, 7, dtype=torch.int64)
    negative[1, 0, 0, 0] = -1  # would land in image 0's row of the per-image counts
    with pytest.raises(BrodenError, match="outside"):
        tally.add(TallyInput(torch.zeros(2, 2, 3, 3), two + negative, [[], []]), torch.zeros(2))
    assert tally.images == 0 and int(tally.truth.sum()) == 0
    with pytest.raises(BrodenError, match="fallback category"):
        Tally(2, NUM_LABELS, CATS, PRIMARY, compat="netdissect-lite", fallback_category="animal")
    with pytest.raises(BrodenError, match="units"):
        tally.add(TallyInput(torch.zeros(1, 3, 3, 3), maps, [[]]), torch.zeros(3))
    with pytest.raises(BrodenError, match="compat"):
        Tally(2, NUM_LABELS, CATS, PRIMARY, compat="lite")
    with pytest.raises(BrodenError, match="upsampling"):
        Tally(2, NUM_LABELS, CATS, PRIMARY, upsample="bicubic")


@pytest.mark.parametrize("shape", [(7, 7, 112, 112), (7, 7, 113, 113), (4, 6, 9, 11), (1, 1, 5, 5), (14, 14, 7, 7)])
def test_active_pixels_equal_dense_upsampling(shape: tuple[int, int, int, int]) -> None:
    """The cell-wise active set is the dense bilinear upsampling thresholded (align_corners=False, edge clamped)."""
    from benchmark.upsample import upsample_maps

    h, w, sh, sw = shape
    gen = torch.Generator().manual_seed(sum(shape))
    maps = torch.relu(torch.randn(40, h, w, generator=gen)) * torch.rand(40, 1, 1, generator=gen) * 3
    thresholds = torch.rand(40, generator=gen) * 2
    dense = upsample_maps(maps, (sh, sw)) > thresholds[:, None, None]
    assert 0 < dense.sum() < dense.numel()
    sparse = torch.zeros(40, sh * sw, dtype=torch.bool)
    pair, pixel = _active_pixels(maps, thresholds, (sh, sw))
    sparse[pair, pixel] = True
    assert pair.numel() == int(sparse.sum())  # no pixel reported twice
    assert torch.equal(sparse, dense.flatten(1))


def _active_pixels(maps: torch.Tensor, thresholds: torch.Tensor, size: tuple[int, int]) -> tuple[torch.Tensor, ...]:
    """``(map, pixel y * sw + x)`` of every active pixel: :func:`benchmark.upsample.active_columns` compacted."""
    from benchmark.upsample import active_columns, segment_pixels

    columns = active_columns(maps, thresholds, size)
    k, j = columns.above.nonzero(as_tuple=True)
    return columns.maps[k], segment_pixels(maps.shape[1], size)[columns.segments[k], j]


def _same_arithmetic_dense(maps: torch.Tensor, size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Every upsampled pixel in float32 with the tally's arithmetic, from torch's align_corners=False source index
    (interpolate along x, then along y), and whether its cell's corner maximum (the 2x2 values) bounds it."""

    def axis(n_in: int, n_out: int):
        src = (torch.tensor(n_in, dtype=torch.float32) / n_out * (torch.arange(n_out, dtype=torch.float32) + 0.5)
               - 0.5).clamp(min=0)
        first = src.long().clamp(max=n_in - 1)
        return first, (first + 1).clamp(max=n_in - 1), src - first

    (y0, y1, ly), (x0, x1, lx) = axis(maps.shape[1], size[0]), axis(maps.shape[2], size[1])
    across = maps[:, :, x0] * (1 - lx) + maps[:, :, x1] * lx  # (P, h, sw)
    values = across[:, y0] * (1 - ly)[:, None] + across[:, y1] * ly[:, None]  # (P, sh, sw)
    corners = torch.stack([maps[:, y0][:, :, x0], maps[:, y0][:, :, x1], maps[:, y1][:, :, x0], maps[:, y1][:, :, x1]])
    return values, corners.amax(dim=0)


@pytest.mark.parametrize("signed", [False, True])
@pytest.mark.parametrize("shape", [(7, 7, 112, 112), (7, 7, 113, 100), (4, 6, 9, 11), (14, 14, 7, 7)])
def test_active_pixels_bit_for_bit_at_exact_ties(shape: tuple[int, int, int, int], signed: bool) -> None:
    """Thresholds equal to upsampled pixel values (ties, where rounding decides): the pruned evaluation gives the
    same set as evaluating every pixel with the same float32 arithmetic, for ReLU maps and for signed ones."""
    h, w, sh, sw = shape
    gen = torch.Generator().manual_seed(sum(shape) + signed)
    maps = torch.randn(60, h, w, generator=gen) * torch.rand(60, 1, 1, generator=gen) * 3
    maps = maps if signed else torch.relu(maps)
    values, corner_max = _same_arithmetic_dense(maps, (sh, sw))
    pick = torch.randint(0, sh * sw, (60,), generator=gen)
    thresholds = values.flatten(1)[torch.arange(60), pick]  # a tie in every map
    if not signed:
        thresholds = thresholds.clamp(min=0)
    expected = ((values > thresholds[:, None, None]) & (corner_max > thresholds[:, None, None])).flatten(1)
    assert 0 < expected.sum() < expected.numel()
    got = torch.zeros_like(expected)
    pair, pixel = _active_pixels(maps, thresholds, (sh, sw))
    got[pair, pixel] = True
    assert pair.numel() == int(got.sum())
    assert torch.equal(got, expected)


@pytest.mark.parametrize("signed", [False, True])
@pytest.mark.parametrize("shape", [(7, 7, 112, 112), (7, 7, 113, 100), (4, 6, 9, 11), (14, 14, 7, 7), (1, 2, 5, 5)])
def test_active_keys_count_every_active_pixel_bit_for_bit(shape: tuple[int, int, int, int], signed: bool,
                                                          engine: str) -> None:
    """:class:`benchmark.upsample.ActiveKeys` with one key per pixel counts each map's active set itself: at exact
    ties, for ReLU and signed maps, both the compiled loop and the tensor operations give the set that evaluating
    every pixel with the same float32 arithmetic gives."""
    from benchmark.upsample import ActiveKeys

    h, w, sh, sw = shape
    gen = torch.Generator().manual_seed(sum(shape) + 7 * signed)
    maps = torch.randn(50, h, w, generator=gen) * torch.rand(50, 1, 1, generator=gen) * 3
    maps = maps if signed else torch.relu(maps)
    values, corner_max = _same_arithmetic_dense(maps, (sh, sw))
    thresholds = values.flatten(1)[torch.arange(50), torch.randint(0, sh * sw, (50,), generator=gen)]
    thresholds[::7] = torch.rand(8, generator=gen)[: len(thresholds[::7])]  # and some that are not ties
    if not signed:
        thresholds = thresholds.clamp(min=0)
    expected = ((values > thresholds[:, None, None]) & (corner_max > thresholds[:, None, None])).flatten(1)
    assert 0 < expected.sum() < expected.numel()
    # three images' keys (each pixel its own key, in a different order per image), maps spread over them
    keys = torch.stack([torch.randperm(sh * sw, generator=gen) for _ in range(3)]).to(torch.int32)
    images = torch.randint(0, 3, (50,), generator=gen)
    counter = ActiveKeys(keys, sh * sw, (h, w), (sh, sw))
    assert (counter.kernel is not None) == (engine == "compiled")
    counts = counter.count(maps, thresholds, images)
    assert counts.dtype == torch.int64 and counts.shape == (50, sh * sw)
    assert torch.equal(counts, expected.gather(1, keys[images].argsort(dim=1)).long())


def test_active_keys_count_pixels_per_key_and_refuse_bad_keys(engine: str) -> None:
    """Keys shared by many pixels add up; keys outside ``0 .. width - 1`` or of the wrong shape are refused."""
    from benchmark.upsample import ActiveKeys

    maps = torch.tensor([[[0.0, 1.0], [2.0, 3.0]]] * 2)
    keys = torch.tensor([[0] * 8 + [1] * 8, [1] * 15 + [2]], dtype=torch.int32)  # 2 images of 4 x 4 pixels
    counts = ActiveKeys(keys, 3, (2, 2), (4, 4)).count(maps, torch.tensor([-1.0, 2.9]), torch.tensor([0, 1]))
    assert counts.tolist() == [[8, 8, 0], [0, 0, 1]]  # every pixel; the one above 2.9 (the corner at 3, key 2)
    with pytest.raises(BrodenError, match=r"pixel keys must lie in 0\.\.2"):
        ActiveKeys(keys + 1, 3, (2, 2), (4, 4))
    with pytest.raises(BrodenError, match="int32"):
        ActiveKeys(keys.long(), 3, (2, 2), (4, 4))
    counter = ActiveKeys(keys, 3, (2, 2), (4, 4))
    with pytest.raises(BrodenError, match=r"image indices must lie in 0\.\.1"):
        counter.count(maps, torch.tensor([0.0, 0.0]), torch.tensor([0, 2]))
    with pytest.raises(BrodenError, match=r"maps must be \(P, 2, 2\)"):
        counter.count(torch.zeros(2, 3, 3), torch.tensor([0.0, 0.0]), torch.tensor([0, 1]))
    with pytest.raises(BrodenError, match="one threshold"):
        counter.count(maps, torch.tensor([0.0]), torch.tensor([0, 1]))


def test_counts_of_another_tally_are_refused_not_written_outside_this_one(engine: str) -> None:
    """A batch's counts from a tally with more units (or folds) than this one: the compiled adding, which writes
    unchecked, refuses them whole (nothing added); tensor operations raise on the index."""
    from dataclasses import replace

    rng = np.random.default_rng(17)
    acts, maps, image_labels = random_batch(rng, 4, 6)
    thresholds = torch.from_numpy(unit_thresholds([(acts, maps, image_labels)], 0.5))
    wide = Tally(6, NUM_LABELS, CATS, PRIMARY, folds=3)
    counts = wide.counter.count(TallyInput(torch.from_numpy(acts), torch.from_numpy(maps), image_labels), thresholds)
    assert counts.cell.numel() and int(counts.cell.max()) >= 2 * NUM_LABELS
    narrow = Tally(2, NUM_LABELS, CATS, PRIMARY, folds=3)
    for bad in (replace(counts, active=counts.active[:, :2]), replace(counts, active=counts.active[:, :2],
                                                                        cell=counts.cell % (2 * NUM_LABELS),
                                                                        fold=counts.fold + 3)):
        with pytest.raises(BrodenError if engine == "compiled" else (IndexError, RuntimeError)):
            narrow.add_counts(bad)
        if engine == "compiled":
            assert all(int(t.sum()) == 0 for t in narrow.counts().values())


@pytest.mark.parametrize("how", ["numba missing", "NUMBA_DISABLE_JIT"])
def test_without_the_compiled_loop_the_tally_counts_with_tensor_operations(how: str, monkeypatch) -> None:
    """Where numba cannot load the loop (warned: a dependency is broken) or runs it uncompiled (``NUMBA_DISABLE_JIT``,
    Python pixel by pixel), the tensor operations count, with the same counts."""
    import sys

    import numba

    import benchmark.compiled as compiled
    import benchmark.upsample as upsample

    rng = np.random.default_rng(4)
    batches = [random_batch(rng, 3, 5)]
    thresholds = unit_thresholds(batches, 0.8)
    expected = counts_of(run_tally(batches, thresholds, "netdissect"))
    compiled.kernels.cache_clear()
    try:
        if how == "numba missing":
            monkeypatch.setitem(sys.modules, "benchmark.kernels", None)  # its import fails
            with pytest.warns(UserWarning, match="could not load.*tensor operations"):
                assert compiled.kernels() is None
        else:
            monkeypatch.setattr(numba.config, "DISABLE_JIT", True)
            assert compiled.kernels() is None
        assert upsample.ActiveKeys(torch.zeros(1, 4, dtype=torch.int32), 1, (1, 1), (2, 2)).kernel is None
        assert_same_counts(counts_of(run_tally(batches, thresholds, "netdissect")), expected)
    finally:
        compiled.kernels.cache_clear()
    monkeypatch.undo()
    assert compiled.kernels() is not None


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("compat", ["netdissect", "netdissect-lite"])
def test_cuda_tally_equals_cpu(compat: str) -> None:
    rng = np.random.default_rng(7)
    batches = [random_batch(rng, 8, 16, size=7, seg=112) for _ in range(2)]
    thresholds = unit_thresholds(batches, 0.99)
    cpu = run_tally(batches, thresholds, compat)
    cuda = run_tally(batches, thresholds, compat, device="cuda")
    assert_same_counts(counts_of(cpu), counts_of(cuda))


def test_image_level_categories_only() -> None:
    """No pixel layers at all (only scene selected): scene labels still tally and score."""
    acts = np.zeros((2, 1, 2, 2), dtype=np.float32)
    acts[0, 0, 0, 0] = 1
    maps = np.zeros((2, 0, 4, 4), dtype=np.int64)
    batches = [(acts, maps, [[13], [14]])]
    thresholds = np.array([0.5], dtype=np.float32)
    tally = run_tally(batches, thresholds, categories=["scene"], primary={13: "scene", 14: "scene"})
    assert tally.truth[13] == tally.truth[14] == 16
    assert tally.intersection[0, 13] == tally.active[0] == tally.activation_by_category[0, 0] > 0
    assert tally.intersection[0, 14] == 0


@pytest.mark.parametrize("compiled", [False, True])
def test_pixel_labels_group_every_pixel_by_its_label_tuple(compiled: bool) -> None:
    """Each pixel's tuple holds its labels layer by layer; counts and padding are exact, also when the packed key
    would overflow int64 (7 layers of labels up to 5000: renumbered on the way), with tensor operations or the
    compiled loop."""
    from benchmark.activations import PixelLabels

    gen = torch.Generator().manual_seed(3)
    maps = torch.randint(0, 3, (3, 7, 9, 11), generator=gen) * torch.randint(1, 5000, (3, 7, 1, 1), generator=gen)
    maps[1] = 0  # an image with one tuple (all zero)
    grouped = PixelLabels.of(maps.to(torch.int32), compiled=compiled)
    flat = maps.flatten(2)  # (B, L, S)
    of_pixel = grouped.of_pixel.long().view(3, -1)
    for b in range(3):
        assert torch.equal(grouped.table[b][of_pixel[b]].t(), flat[b])  # every pixel's labels, layer by layer
        used = int(of_pixel[b].max()) + 1
        assert torch.equal(grouped.counts[b, :used], torch.bincount(of_pixel[b], minlength=used))
        assert int(grouped.counts[b, used:].sum()) == 0 and int(grouped.table[b, used:].abs().sum()) == 0
        assert torch.unique(grouped.table[b, :used], dim=0).shape[0] == used  # distinct within the image
    assert int((grouped.counts[1] > 0).sum()) == 1
    with pytest.raises(BrodenError, match="outside"):
        PixelLabels.of(-maps.to(torch.int32), compiled=compiled)


@pytest.mark.parametrize("shape", [(3, 7, 9, 11), (6, 3, 16, 16), (4, 0, 3, 3), (0, 2, 4, 4), (2, 3, 0, 0),
                                   (1, 1, 1, 1)])
def test_the_compiled_grouping_is_the_tensor_grouping(shape: tuple[int, ...]) -> None:
    """benchmark.kernels.group_pixels gives :meth:`PixelLabels.of`'s tensors exactly (tuples in the same order),
    on maps of blobs (runs of equal tuples, as masks make them) and of noise (a tuple per pixel, hash collisions),
    with no layers, no images or no pixels."""
    from benchmark.activations import PixelLabels
    from benchmark.compiled import kernels

    assert kernels() is not None, "numba is a dependency: the compiled loops must load"
    gen = torch.Generator().manual_seed(sum(shape))
    nb, layers, h, w = shape
    blobs = torch.randint(0, 4, (nb, layers, -(-h // 4), -(-w // 4)), generator=gen)
    blobs = blobs.repeat_interleave(4, 2).repeat_interleave(4, 3)[:, :, :h, :w] * 300
    noise = torch.randint(0, 2**31 - 1, shape, generator=gen)
    for maps in (blobs, noise, blobs + noise % 3):
        maps = maps.to(torch.int32)
        tensor, compiled = PixelLabels.of(maps), PixelLabels.of(maps, compiled=True)
        for name in ("table", "counts", "of_pixel"):
            mine, theirs = getattr(compiled, name), getattr(tensor, name)
            assert mine.dtype == theirs.dtype and torch.equal(mine, theirs), (shape, name)


@pytest.mark.parametrize("compat", ["netdissect", "netdissect-lite"])
def test_fold_and_train_counts_are_the_tallies_of_those_images_alone(compat: str, engine: str) -> None:
    """Per-fold and train-split counts equal separate tallies of the fold's (train split's) images; label tuples
    grouped beforehand (as the DataLoader workers do) give the same counts as grouped in the tally."""
    from benchmark.activations import PixelLabels

    rng = np.random.default_rng(11)
    acts, maps, image_labels = random_batch(rng, 12, 6)
    thresholds = torch.from_numpy(unit_thresholds([(acts, maps, image_labels)], 0.8))
    fold = torch.tensor([0, 1, 2, 1, 0, 2, 2, 1, 0, 0, 1, 2])
    train = torch.tensor([True, False] * 6)
    tally = Tally(6, NUM_LABELS, CATS, PRIMARY, compat=compat, folds=3, chunk_elements=3 * 49)
    a, m = torch.from_numpy(acts), torch.from_numpy(maps)
    tally.add(TallyInput(a, m, image_labels, fold, train, PixelLabels.of(m)), thresholds)
    assert tally.intersection.sum() > 0
    for g, chosen in [(g, fold == g) for g in range(3)] + [(None, train)]:
        alone = Tally(6, NUM_LABELS, CATS, PRIMARY, compat=compat, folds=3)
        keep = chosen.nonzero().flatten().tolist()
        alone.add(TallyInput(a[keep], m[keep], [image_labels[i] for i in keep]), thresholds)
        prefix, index = ("fold_", g) if g is not None else ("train_", ...)
        for name in ("intersection", "truth", "activation_by_category"):
            assert torch.equal(getattr(tally, prefix + name)[index], getattr(alone, name)), (g, name)


@pytest.mark.parametrize("compat", ["netdissect", "netdissect-lite"])
def test_threads_give_the_same_counts(compat: str, engine: str) -> None:
    """Chunks counted by several threads side by side (one torch thread each) add up to the one-thread counts."""
    rng = np.random.default_rng(13)
    batches = [random_batch(rng, 7, 9) for _ in range(3)]
    thresholds = torch.from_numpy(unit_thresholds(batches, 0.7))
    tallies = []
    for threads in (1, 3):
        tally = Tally(9, NUM_LABELS, CATS, PRIMARY, compat=compat, chunk_elements=2 * 49)  # many chunks
        for acts, maps, image_labels in batches:
            tally.add(TallyInput(torch.from_numpy(acts), torch.from_numpy(maps), image_labels), thresholds, threads)
        tallies.append(tally)
    assert tallies[0].intersection.sum() > 0
    for name, value in tallies[0].counts().items():
        assert torch.equal(value, tallies[1].counts()[name]), name


def test_pair_chunks_bound_their_size_and_split_for_threads() -> None:
    """Chunks hold at most chunk_elements // pair_elements pairs, at least ``parts`` chunks where there are that many
    pairs, and together every pair above its threshold once, in order."""
    from benchmark.tally import pair_chunks

    acts = torch.rand(4, 5, 3, 3) + 1
    acts[1, 2] = 0  # at most the threshold: never a pair
    every = [(b, u) for b in range(4) for u in range(5) if (b, u) != (1, 2)]
    for elements, parts, sizes in ((9 * 6, 1, [6, 6, 6, 1]), (10**6, 1, [19]), (10**6, 3, [7, 7, 5]),
                                   (9 * 2, 3, [2] * 9 + [1]), (1, 1, [1] * 19)):
        chunks = pair_chunks(acts, torch.zeros(5), 9, elements, parts)
        assert [pb.numel() for pb, _ in chunks] == sizes
        assert [(int(b), int(u)) for pb, pu in chunks for b, u in zip(pb, pu)] == every


def test_batch_counts_travel_between_processes_by_value() -> None:
    """A DataLoader worker sends its BatchCounts through the queue's pickler: as the arrays themselves (3 ms
    for a batch of MobileNetV2 features.18), not as one shared-memory segment and file descriptor per tensor, which
    cost the main process 9 ms a batch to take in."""
    import pickle
    from dataclasses import fields
    from multiprocessing.reduction import ForkingPickler

    import torch.multiprocessing  # noqa: F401  (registers torch's shared-memory reductions, as DataLoader does)

    from benchmark.tally import BatchCounts

    g = torch.Generator().manual_seed(0)
    counts = BatchCounts(
        fold=torch.randint(0, 5, (4,), generator=g), train=torch.tensor([True, False, True, True]),
        truth=torch.randint(0, 99, (4, 7), generator=g), active=torch.randint(0, 99, (4, 3), generator=g),
        cell=torch.arange(5000), hits=torch.randint(1, 9, (5000,), generator=g), image=torch.arange(5000) % 4,
        entry_image=torch.tensor([0, 2]), entry_label=torch.tensor([3, 6]), gate=torch.ones(4, 1, 2, dtype=torch.bool))
    data = bytes(ForkingPickler.dumps(counts))
    assert len(data) > 3 * 5000 * 8  # the values are in the pickle, not in shared memory
    back = pickle.loads(data)
    for f in fields(counts):
        a, b = getattr(counts, f.name), getattr(back, f.name)
        assert isinstance(b, torch.Tensor) and b.dtype == a.dtype and torch.equal(a, b), f.name


@pytest.mark.parametrize("threads", [1, 3])
@pytest.mark.parametrize("compat", ["netdissect", "netdissect-lite"])
@pytest.mark.parametrize(("images", "units", "size", "seg"), [(5, 6, 3, 7), (1, 4, 2, 9), (16, 40, 7, 28)])
def test_float16_batches_are_counted_in_one_pass_as_the_chunks_count_them(images, units, size, seg, compat, threads,
                                                                           monkeypatch) -> None:
    """On the CPU, float16 activations are counted by one compiled pass over the batch as it is
    (:func:`benchmark.kernels.count_batch`): every field of its counts equals, in order, what the chunks of hot pairs
    give for the same values in float32 (maps whose peak equals the threshold, ReLU zeros and signed values
    included; the largest batch grows the loop's entries past its first capacity), and the tally equals the naive
    reference on the rounded values."""
    import benchmark.compiled as compiled

    loops = compiled.kernels()
    assert loops is not None, "numba is a dependency: the compiled loops must load"
    calls = []
    monkeypatch.setattr(loops, "count_batch", lambda *a, fused=loops.count_batch: calls.append(a[0].shape) or fused(*a))
    rng = np.random.default_rng(images + units + seg)
    acts, maps, image_labels = random_batch(rng, images, units, size, seg)
    acts[:, ::2] = np.maximum(acts[:, ::2], 0)  # ReLU maps for half the units
    half = torch.from_numpy(acts).half()
    rounded = half.float().numpy()
    thresholds = unit_thresholds([(rounded, maps, image_labels)], 0.6)
    thresholds[0] = rounded[0, 0].max()  # a map whose peak is the threshold: never active
    thresholds[1] = 0.0  # ReLU zeros at the threshold
    counter = Tally(units, NUM_LABELS, CATS, PRIMARY, compat=compat, chunk_elements=3 * 49).counter
    thr, m = torch.from_numpy(thresholds), torch.from_numpy(maps)
    fused = counter.count(TallyInput(half, m, image_labels), thr, threads)
    assert len(calls) == min(threads, images) and all(shape[1:] == (units, size * size) for shape in calls)
    chunked = counter.count(TallyInput(half.float(), m, image_labels), thr, threads)
    assert len(calls) == min(threads, images)  # float32 activations: the chunks
    assert fused.hits.numel() > 0 and fused.active.sum() > 0
    for name in ("fold", "train", "truth", "active", "cell", "hits", "image", "entry_image", "entry_label", "gate"):
        assert torch.equal(getattr(fused, name), getattr(chunked, name)), name
    tally = run_tally([(half.numpy(), maps, image_labels)], thresholds, compat)
    assert_same_counts(counts_of(tally), naive_tally([(rounded, maps, image_labels)], thresholds, NUM_LABELS, CATS,
                                                     PRIMARY, compat))


def test_a_float16_batch_that_is_not_finite_is_refused_and_an_empty_one_counts_nothing() -> None:
    rng = np.random.default_rng(3)
    acts, maps, image_labels = random_batch(rng, 3, 4)
    half = torch.from_numpy(acts).half()
    half[2, 1, 0, 0] = float("nan")
    counter = Tally(4, NUM_LABELS, CATS, PRIMARY).counter
    with pytest.raises(BrodenError, match="NaN or infinity"):
        counter.count(TallyInput(half, torch.from_numpy(maps), image_labels), torch.zeros(4))
    empty = counter.count(TallyInput(half[:0], torch.from_numpy(maps[:0]), []), torch.zeros(4))
    assert empty.active.shape == (0, 4) and empty.cell.numel() == empty.truth.numel() == 0
