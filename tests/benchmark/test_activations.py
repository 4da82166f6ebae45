"""Decoding a batch's masks: the compiled fill (benchmark.kernels.fill_label_maps) against pycocotools' decoding."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from benchmark.activations import RowBatches
from benchmark.compiled import kernels
from broden.dataset import load, write_dataset
from broden.errors import BrodenError
from broden.masks import encode_label_map
from broden.sample import write_sample


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    return load(write_sample(tmp_path_factory.mktemp("sample") / "ds", num_images=24, size=64).path)


def _batches(ds, compiled: bool, categories=None, batch_size: int = 5):
    rb = RowBatches(ds, range(len(ds)), batch_size, categories=categories or ds.labels.category_names,
                    compiled=compiled)
    return [rb[i] for i in range(len(rb))]


def _assert_same(a, b) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x.label_maps.dtype == y.label_maps.dtype == torch.int32
        assert torch.equal(x.label_maps, y.label_maps)
        assert x.image_labels == y.image_labels and x.splits == y.splits and x.ids == y.ids
        for field in ("table", "counts", "of_pixel"):
            assert torch.equal(getattr(x.pixel_labels, field), getattr(y.pixel_labels, field))


@pytest.mark.parametrize("categories", [None, ["part", "object"], ["texture", "color"]])
def test_compiled_mask_decoding_gives_the_maps_pycocotools_gives(sample, categories) -> None:
    assert kernels() is not None, "numba is a dependency: the compiled loops must load"
    compiled = _batches(sample, True, categories)
    assert any(int(b.label_maps.max()) > 0 for b in compiled)  # the sample's masks are really there
    _assert_same(compiled, _batches(sample, False, categories))


def test_compiled_fill_reads_every_rle_form(tmp_path) -> None:
    """Long runs (numbers of several 5-bit groups), differences to the run two before of either sign, a run ending
    on the last pixel, a mask-free image, two object layers: the fill gives pycocotools' maps."""
    from tests.helpers.hostile import tiny_rows

    rows, table = tiny_rows(n=4, size=64)
    rng = np.random.default_rng(0)
    seg = 32
    for j, row in enumerate(rows):
        keep = [i for i, c in enumerate(row["masks"]["category"]) if c != "object"]
        masks = {k: [v[i] for i in keep] for k, v in row["masks"].items()}
        for layer, (label, share) in enumerate(((2, 0.3), (3, 0.05))):
            m = np.zeros((seg, seg), np.int32)
            m[rng.random((seg, seg)) < share] = label
            m[: 4 * j, :] = 0  # long leading runs
            m[-1, -1] = label if layer == 0 else 0
            if j == 3:
                m[:] = 0  # no masks at all in this layer
            for lab, rle in encode_label_map(m):
                for k, v in (("category", "object"), ("layer", layer), ("label", lab), ("rle", rle)):
                    masks[k].append(v)
        row["masks"] = masks
        row["layers"] = {**row["layers"], "object": 2}
    ds = load(write_dataset(tmp_path / "ds", rows, table).path)
    _assert_same(_batches(ds, True, batch_size=3), _batches(ds, False, batch_size=3))
    maps = _batches(ds, True, batch_size=4)[0].label_maps
    assert bool((maps == 3).any()) and bool((maps == 2).any())  # both object layers came through


def test_compiled_fill_refuses_a_layer_beyond_the_row_s(sample, monkeypatch) -> None:
    """The loop writes where a mask's layer says, unchecked: a layer beyond the row's own count is refused first."""
    rb = RowBatches(sample, range(len(sample)), 4, categories=sample.labels.category_names, compiled=True)
    read = rb.rows.read

    def damaged(idx):
        cols = read(idx)
        masks = cols["masks"][0]
        cols["masks"][0] = {**masks, "layer": [99] + list(masks["layer"][1:])}
        return cols

    monkeypatch.setattr(rb.rows, "read", damaged)
    with pytest.raises(BrodenError, match=r"layer 99, but the row has \d+ \w+ layers; run 'broden validate'"):
        rb._load(0)


def test_the_cache_reads_back_what_was_written_and_starts_each_write_back(tmp_path, monkeypatch) -> None:
    import benchmark.activations as activations

    started = []
    real = activations.start_writeback
    monkeypatch.setattr(activations, "start_writeback", lambda fd, offset, n: started.append((offset, n)) or
                        real(fd, offset, n))
    shapes = {"a": (3, 2, 2), "b": (1, 4, 1)}
    acts = {name: torch.randn(7, *shape).half() for name, shape in shapes.items()}
    cache = activations.ActivationCache(tmp_path, shapes, 5, resume=False, first_row=2)  # rows 2..6 of the run
    for start, end in ((4, 7), (2, 4)):  # out of order, as resumed ranks may write
        for name in shapes:
            cache.write(name, start, acts[name][start:end])
    cache.flush()
    cache.close()
    row = {"a": 3 * 2 * 2 * 2, "b": 4 * 2}  # bytes per row
    assert started == [(2 * row["a"], 3 * row["a"]), (2 * row["b"], 3 * row["b"]), (0, 2 * row["a"]),
                       (0, 2 * row["b"])]
    reader = cache.rows()
    assert activations.ActivationCache.intact(tmp_path, shapes, 5)
    for name in shapes:
        assert torch.equal(reader.read(name, 2, 7), acts[name][2:7]) and torch.equal(reader.read(name, 5, 6),
                                                                                     acts[name][5:6])
    again = activations.ActivationCache(tmp_path, shapes, 5, resume=True, first_row=2)  # resuming keeps the rows
    again.close()
    assert torch.equal(reader(2, 7, [])["a"], acts["a"][2:7])


@pytest.mark.parametrize(("value", "message"), [(65519.0, None), (-65519.0, None), (65520.0, "beyond float16's range"),
                                                (-1e6, "beyond float16's range"), (float("inf"), "NaN or Inf"),
                                                (float("-inf"), "NaN or Inf"), (float("nan"), "NaN or Inf")])
def test_activations_are_rounded_to_float16_and_refused_where_not_finite_there(value, message) -> None:
    from benchmark.activations import check_finite

    acts = torch.rand(4, 3, 2, 2)
    acts[2, 1, 1, 0] = value
    acts[3, 0, 0, 1] = value  # the first image with one is named
    if message is None:
        assert torch.equal(check_finite("conv", acts, list("abcd")), acts.half())  # 65519 rounds to 65504
        return
    with pytest.raises(BrodenError, match=f"^layer 'conv': .*{message}.* on image c;"):
        check_finite("conv", acts, list("abcd"))
