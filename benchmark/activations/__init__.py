"""Where activations come from: batches of dataset rows (images and/or masks decoded in DataLoader workers), the
forward pass, the compact on-disk cache between the two passes, and user-supplied activations (``.npz``).

Activations are rounded to float16 as they are produced, in every path (cached, recomputed or supplied), so the
thresholds, top images and tally all see the same values whether or not the cache was used.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from benchmark.runtime import worker_init
from benchmark import compiled as compiled_loops
from broden.dataset import Broden, decode_row, open_image
from broden.errors import BrodenError
from broden.utils.disk import start_writeback

if TYPE_CHECKING:  # the tally imports this module
    from benchmark.tally import BatchCounts

CACHE_DTYPE = np.float16


@dataclass
class Batch:
    """Rows ``start:end`` of the run's row order: their dataset ids, and what this pass asked to decode."""

    start: int
    end: int
    ids: list[str]
    images: torch.Tensor | None = None  # (B, 3, H, W) float
    label_maps: torch.Tensor | None = None  # (B, L, sh, sw) int32, layers of the selected pixel categories stacked
    image_labels: list[list[int]] | None = None  # per image: its image-level label numbers
    splits: list[str] | None = None  # per image: its split ("train" or "val"), decoded with the labels
    pixel_labels: PixelLabels | None = None  # label_maps grouped by label tuple (for the tally)
    counts: dict[str, BatchCounts] | None = None  # per layer, when ``RowBatches(then=...)`` counted the batch where
    # it was decoded (pass 2; label_maps and pixel_labels are then None)


@dataclass
class PixelLabels:
    """The pixels of a batch of label maps grouped, image by image, by the labels they carry in each layer.

    Image ``b``'s pixels carry ``T_b`` distinct label tuples (one label per layer, 0 = none); ``table[b, t]`` is the
    ``t``-th of them (``t < T_b``; rows beyond are 0) and ``counts[b, t]`` its number of pixels (0 beyond ``T_b``).
    ``of_pixel[b * sh * sw + y * sw + x]`` is the tuple index ``t`` of that pixel. A few dozen tuples per image
    stand for its ``sh * sw`` pixels, so the tally counts tuples under a unit's active pixels, not labels.
    """

    table: torch.Tensor  # (B, T, L) int64, T = max_b T_b
    counts: torch.Tensor  # (B, T) int64
    of_pixel: torch.Tensor  # (B * sh * sw,) int32

    def to(self, device: torch.device) -> PixelLabels:
        return PixelLabels(self.table.to(device), self.counts.to(device), self.of_pixel.to(device))

    @classmethod
    def of(cls, label_maps: torch.Tensor, compiled: bool = False) -> PixelLabels:
        """Group the pixels of ``label_maps`` ``(B, L, sh, sw)`` (non-negative integers). ``compiled``: int32 maps
        on the CPU are grouped by :func:`benchmark.kernels.group_pixels` where numba can load it (for a run that
        loads the compiled loops anyway), else with tensor operations; the same grouping."""
        nb, layers = label_maps.shape[:2]
        device = label_maps.device
        columns = label_maps.flatten(2)  # (B, L, S)
        size = columns.shape[2]
        low, high = torch.aminmax(columns) if columns.numel() else (torch.tensor(0), torch.tensor(0))
        if int(low) < 0:
            raise BrodenError(f"label maps hold label numbers outside 0 (none) and the positive label numbers: "
                             f"{int(low)}; rebuild the dataset's masks")
        kernels = (compiled_loops.kernels() if compiled and device.type == "cpu" and columns.dtype == torch.int32
                   else None)
        if kernels is not None:
            return cls._grouped(kernels.group_pixels, columns.contiguous().numpy())
        # One integer per pixel, equal for equal (image, tuple), increasing with the image: digits in base
        # (max label + 1) behind the image number, renumbered densely whenever the next digit would overflow.
        radix = int(high) + 1
        key = torch.arange(nb, device=device)[:, None].repeat(1, size)  # (B, S), built in place
        bound = max(nb, 1)
        for layer in range(layers):
            if bound * radix >= 2**62:
                key, bound = _renumbered(key)
            key.mul_(radix).add_(columns[:, layer])
            bound *= radix
        key = key.view(-1)
        # Neighbouring pixels mostly carry the same labels: the distinct keys are found among the runs of equal
        # keys (a few percent of the pixels), not among all pixels.
        starts = torch.ones(key.numel(), dtype=torch.bool, device=device)
        starts[1:] = key[1:] != key[:-1]
        run_start = starts.nonzero().flatten()
        distinct, of_run = torch.unique(key[run_start], return_inverse=True)
        lengths = torch.diff(run_start, append=run_start.new_tensor([key.numel()]))
        counts = torch.zeros(distinct.numel(), dtype=torch.int64, device=device).index_add_(0, of_run, lengths)
        # each tuple's first pixel (unique's order follows the image number) gives its image and labels
        first = torch.full((counts.numel(),), key.numel(), dtype=torch.int64, device=device)
        first.scatter_reduce_(0, of_run, run_start, reduce="amin")
        image = first // size
        per_image = torch.bincount(image, minlength=nb)
        local = torch.arange(counts.numel(), device=device) - (torch.cumsum(per_image, 0) - per_image)[image]
        width = int(per_image.max()) if nb else 0
        table = torch.zeros(nb, width, layers, dtype=torch.int64, device=device)
        table[image, local] = columns[image, :, first % size].to(torch.int64)
        tuple_counts = torch.zeros(nb, width, dtype=torch.int64, device=device)
        tuple_counts[image, local] = counts
        of_pixel = local.to(torch.int32)[of_run].repeat_interleave(lengths, output_size=key.numel())
        return cls(table, tuple_counts, of_pixel)

    @classmethod
    def _grouped(cls, group: Callable[..., None], columns: np.ndarray) -> PixelLabels:
        """The grouping of ``columns`` ``(B, L, S)`` int32 by the compiled loop, laid out as :meth:`of`'s."""
        nb, layers, size = columns.shape
        of_pixel = np.empty(nb * size, np.int32)
        first, counts = np.empty((nb, size), np.int64), np.empty((nb, size), np.int64)
        sizes = np.empty(nb, np.int64)
        group(columns, of_pixel, first, counts, sizes)
        width = int(sizes.max()) if nb else 0
        image, local = np.nonzero(np.arange(width)[None, :] < sizes[:, None])
        table = np.zeros((nb, width, layers), np.int64)
        table[image, local] = columns[image, :, first[image, local]]
        tuple_counts = np.zeros((nb, width), np.int64)
        tuple_counts[image, local] = counts[image, local]
        return cls(torch.from_numpy(table), torch.from_numpy(tuple_counts), torch.from_numpy(of_pixel))


def _renumbered(key: torch.Tensor) -> tuple[torch.Tensor, int]:
    """``key`` replaced by dense numbers in the same order (and shape), and how many there are."""
    distinct, dense = torch.unique(key, return_inverse=True)
    return dense, max(distinct.numel(), 1)


class ArrowRows:
    """A row source: columns of the dataset's memory-mapped Arrow rows (``Broden.rows``), one slice per batch."""

    def __init__(self, dataset: Broden, columns: Sequence[str]) -> None:
        self.rows = dataset.rows.select_columns(list(columns))

    def read(self, idx: np.ndarray) -> dict[str, list]:
        contiguous = bool(np.all(np.diff(idx) == 1))
        return self.rows[int(idx[0]) : int(idx[-1]) + 1] if contiguous else self.rows[idx.tolist()]


class ShardRows:
    """A row source for a streaming dataset: columns read from its parquet shards a row group at a time
    (:class:`broden.dataset.ShardReader`); the whole dataset is never copied or held in memory."""

    def __init__(self, dataset: Broden, columns: Sequence[str]) -> None:
        self.reader, self.columns = dataset.reader, list(columns)

    def read(self, idx: np.ndarray) -> dict[str, list]:
        return self.reader.read(idx, self.columns)


def row_source(dataset: Broden, columns: Sequence[str]) -> ArrowRows | ShardRows:
    """Where :class:`RowBatches` reads rows: the shards for a streaming dataset, else the Arrow rows. Both give
    the same values in the same (canonical) order."""
    return ShardRows(dataset, columns) if dataset.streaming else ArrowRows(dataset, columns)


class RowBatches(torch.utils.data.Dataset):
    """Batch ``i`` = rows ``indices[first_row + i*bs : first_row + (i+1)*bs]`` of the dataset (up to
    ``stop_row``, default all), read from its row source in one call and decoded: only those rows are ever read.

    ``preprocess`` given: images are decoded and preprocessed. ``categories`` given: label maps of its pixel
    categories are decoded and stacked (each category gets as many layers as its deepest image in the batch;
    missing layers are zeros), their pixels grouped by label tuple for the tally (:class:`PixelLabels`, here in the
    DataLoader worker rather than in the tally's thread), and each image's image-level label numbers listed.
    ``then`` given: called on each decoded batch where it was decoded (in the worker), to work on it there; a
    :class:`~broden.errors.BrodenError` it raises reaches the main process like a decoding error. ``compiled``: the
    masks are decoded by :func:`benchmark.kernels.fill_label_maps` where numba can load it (for a run that loads the
    compiled loops anyway), else by pycocotools through :func:`broden.dataset.decode_row`; the same maps.
    """

    def __init__(
        self,
        dataset: Broden,
        indices: Sequence[int],
        batch_size: int,
        *,
        preprocess: Callable | None = None,
        categories: Sequence[str] | None = None,
        first_row: int = 0,
        stop_row: int | None = None,
        then: Callable[[Batch], None] | None = None,
        compiled: bool = False,
    ) -> None:
        self.indices = np.asarray(indices, dtype=np.int64)
        self.then = then
        self.compiled = compiled
        self.batch_size = int(batch_size)
        self.preprocess = preprocess
        self.first_row = int(first_row)
        self.stop_row = len(self.indices) if stop_row is None else int(stop_row)
        self.categories = list(categories) if categories is not None else None
        cats = self.categories or []
        self.pixel = [c for c in cats if c in dataset.pixel_categories]
        self.image_level = [c for c in cats if c in dataset.image_categories]
        self.mask_categories = list(dataset.pixel_categories)  # the names of the masks' category ClassLabel
        columns = ["id"] + (["image"] if preprocess is not None else [])
        if self.categories is not None:
            columns += ["split", "source", "height", "width", "seg_height", "seg_width", "layers", "masks",
                        *dataset.image_categories]
        self.rows = row_source(dataset, columns)

    def __len__(self) -> int:
        return max(0, -(-(self.stop_row - self.first_row) // self.batch_size))

    def __getitem__(self, i: int) -> Batch | Failed:
        try:
            return self._load(i)
        except BrodenError as exc:  # travels back from a worker as a value, not as a wrapped traceback
            return Failed(str(exc), exc.exit_code)

    def _load(self, i: int) -> Batch:
        start = self.first_row + i * self.batch_size
        end = min(start + self.batch_size, self.stop_row)
        idx = self.indices[start:end]
        cols = self.rows.read(idx)
        ids = list(cols["id"])
        batch = Batch(start, end, ids)
        if self.preprocess is not None:
            images = []
            for img, rid in zip(cols["image"], ids):
                data = img["bytes"] if isinstance(img, dict) else img
                image = open_image(data, rid)
                try:
                    images.append(self.preprocess(image))
                except Exception as exc:  # user code: reported as one line naming the image
                    raise BrodenError(f"image {rid}: preprocess raised {type(exc).__name__}: {exc}") from exc
            batch.images = _stack_images(images, ids)
        if self.categories is not None:
            keys = list(cols)
            rows = [{"image": None, **{k: cols[k][j] for k in keys}} for j in range(len(ids))]  # masks only
            self._add_labels(batch, rows)
        if self.then is not None:
            self.then(batch)
        return batch

    def _add_labels(self, batch: Batch, rows: list[dict[str, Any]]) -> None:
        kernels = compiled_loops.kernels() if self.compiled else None
        if kernels is not None:
            maps = self._filled_label_maps(kernels.fill_label_maps, rows)
            batch.image_labels = [[int(n) for c in self.image_level for n in r[c]] for r in rows]
            batch.splits = [r["split"] for r in rows]
        else:
            samples = [decode_row(r, self.mask_categories, self.pixel, self.image_level) for r in rows]
            maps = self._stacked_label_maps(samples)
            batch.image_labels = [[int(n) for c in self.image_level for n in s.image_labels[c]] for s in samples]
            batch.splits = [s.split for s in samples]
        batch.label_maps = torch.from_numpy(maps)
        batch.pixel_labels = PixelLabels.of(batch.label_maps, compiled=kernels is not None)

    def _layout(self, ids: list[str], layers: list[dict[str, int | None]], sizes: list[tuple[int, int]]
                ) -> tuple[dict[str, int], dict[str, int], tuple[int, int]]:
        """Each pixel category's depth (its deepest image in the batch) and first stacked layer, and the batch's one
        segmentation size."""
        depth = {c: max((int(lay.get(c) or 0) for lay in layers), default=0) for c in self.pixel}
        first, offset = {}, 0
        for c in self.pixel:
            first[c], offset = offset, offset + depth[c]
        size = (max((h for h, _ in sizes), default=0), max((w for _, w in sizes), default=0))
        for rid, lay, shape in zip(ids, layers, sizes):
            if shape != size and any(lay.get(c) for c in self.pixel):
                raise BrodenError(f"row {rid}: segmentation size {shape} differs within the batch; every image of a "
                                  "dataset must share one segmentation size")
        return depth, first, size

    def _stacked_label_maps(self, samples: list[Any]) -> np.ndarray:
        depth, first, (sh, sw) = self._layout([s.id for s in samples],
                                              [{c: s.pixel[c].shape[0] for c in self.pixel} for s in samples],
                                              [(s.seg_height, s.seg_width) for s in samples])
        maps = np.zeros((len(samples), sum(depth.values()), sh, sw), np.int32)
        for j, s in enumerate(samples):
            for c in self.pixel:
                layers = s.pixel[c]
                maps[j, first[c] : first[c] + layers.shape[0]] = layers
        return maps

    def _filled_label_maps(self, fill: Callable[..., None], rows: list[dict[str, Any]]) -> np.ndarray:
        """The batch's stacked label maps, every mask filled in by one compiled call."""
        depth, first, (sh, sw) = self._layout([r["id"] for r in rows], [r["layers"] or {} for r in rows],
                                              [(int(r["seg_height"]), int(r["seg_width"])) for r in rows])
        category = {self.mask_categories.index(c): c for c in self.pixel}  # mask category code -> name
        rles, images, slots, labels = [], [], [], []
        for j, r in enumerate(rows):
            m, layers = r["masks"], r["layers"] or {}
            for code, layer, label, rle in zip(m["category"], m["layer"], m["label"], m["rle"]):
                c = category.get(code)
                if c is not None:
                    if not 0 <= layer < int(layers.get(c) or 0):  # the loop writes where the slot says, unchecked
                        raise BrodenError(f"row {r['id']}: a {c} mask of layer {layer}, but the row has "
                                          f"{layers.get(c)} {c} layers; run 'broden validate' on the dataset")
                    rles.append(rle)
                    images.append(j)
                    slots.append(first[c] + layer)
                    labels.append(label)
        maps = np.zeros((len(rows), sum(depth.values()), sh * sw), np.int32)
        if rles:
            chars = np.frombuffer(bytearray("".join(rles).encode("ascii", "replace")), np.uint8)
            ends = np.cumsum(np.fromiter(map(len, rles), np.int64, len(rles)))
            fill(chars, ends, np.asarray(images, np.int64), np.asarray(slots, np.int64),
                 np.asarray(labels, np.int32), sh, sw, maps)
        return maps.reshape(len(rows), -1, sh, sw)


def _stack_images(images: list[Any], ids: list[str]) -> torch.Tensor:
    first = images[0]
    for img, rid in zip(images, ids):
        if not isinstance(img, torch.Tensor) or img.dim() != 3 or img.shape[0] != 3:
            shape = tuple(img.shape) if isinstance(img, torch.Tensor) else type(img).__name__
            raise BrodenError(f"image {rid}: preprocess returned {shape}; it must return a float tensor (3, H, W)")
        if img.shape != first.shape:
            raise BrodenError(f"image {rid}: preprocess returned {tuple(img.shape)} but {tuple(first.shape)} before; "
                              "it must give every image the same size")
    return torch.stack(images).to(torch.float32)


@dataclass
class Failed:
    """A batch that could not be decoded: the one-line error, re-raised in the main process."""

    message: str
    exit_code: int = 2


def _keep(batch: Batch | Failed) -> Batch | Failed:
    return batch


def batch_loader(batches: RowBatches, workers: int) -> Iterator[Batch]:
    """Iterate ``batches`` in order, decoded in ``workers`` processes (0: in this process)."""
    if workers <= 0 or len(batches) <= 1:
        items: Iterable[Batch | Failed] = (batches[i] for i in range(len(batches)))
    else:
        items = torch.utils.data.DataLoader(
            batches, batch_size=None, shuffle=False, num_workers=min(workers, len(batches)),
            collate_fn=_keep, prefetch_factor=2, persistent_workers=False, worker_init_fn=worker_init,
        )
    for item in items:
        if isinstance(item, Failed):
            raise BrodenError(item.message, item.exit_code)
        yield item


def check_finite(layer: str, acts: torch.Tensor, ids: Sequence[str]) -> torch.Tensor:
    """``acts`` rounded to float16; NaN/Inf, or values beyond float16's range, are an error naming the image."""
    # Values of 65520 and more round to infinity in float16, and NaN stays NaN: a float16 value is not finite where
    # its exponent bits are all set, one integer reduction over the rounded values (isfinite on float16 is an
    # order of magnitude slower on a CPU; 32 x 1280 x 7 x 7 float32 values: 0.5 ms against 0.9 for a reduction
    # of their magnitudes before rounding).
    half = acts.detach().to(torch.float16)
    bad = (half.view(torch.int16).flatten(1) & 0x7FFF).amax(dim=1) >= 0x7C00
    if bool(bad.any()):
        j = int(torch.nonzero(bad)[0])
        if bool(torch.isfinite(acts[j]).all()):
            raise BrodenError(f"layer {layer!r}: activations beyond float16's range (|x| > 65504) on image {ids[j]}; "
                              "scale the layer's output down in the model file")
        raise BrodenError(f"layer {layer!r}: NaN or Inf activations on image {ids[j]}; check the model and its weights")
    return half


def cache_file(directory: Path, layer_index: int) -> Path:
    """The file of a run's ``layer_index``-th layer in its activation cache directory."""
    return directory / f"layer{layer_index}.f16"


class ActivationCache:
    """One raw float16 file per layer, (N, U, h, w) row-major, written by row ranges and read through
    :meth:`rows`: rows ``first_row .. first_row + num_rows - 1`` of the run (a distributed rank caches its shard).

    Plain positioned reads and writes rather than a memory map: the page cache holds the data, so the process's
    resident memory does not grow with the number of images.
    """

    def __init__(self, directory: Path, shapes: dict[str, tuple[int, int, int]], num_rows: int, *, resume: bool,
                 first_row: int = 0) -> None:
        self.dir = Path(directory)
        self.first_row = first_row
        self.shapes = shapes
        self.num_rows = num_rows
        self.dir.mkdir(parents=True, exist_ok=True)
        self._files = {}
        for i, (layer, shape) in enumerate(shapes.items()):
            path = cache_file(self.dir, i)
            size = num_rows * int(np.prod(shape)) * 2
            f = open(path, "r+b" if resume else "w+b")
            f.truncate(size)
            self._files[layer] = f

    @staticmethod
    def intact(directory: Path, shapes: dict[str, tuple[int, int, int]], num_rows: int) -> bool:
        """Whether a previous run left every layer's file at its full size (resumable)."""
        for i, shape in enumerate(shapes.values()):
            path = cache_file(Path(directory), i)
            if not path.is_file() or path.stat().st_size != num_rows * int(np.prod(shape)) * 2:
                return False
        return True

    @staticmethod
    def nbytes(shapes: dict[str, tuple[int, int, int]], num_rows: int) -> int:
        return sum(num_rows * int(np.prod(s)) * 2 for s in shapes.values())

    def write(self, layer: str, start: int, acts: torch.Tensor) -> None:
        """Rows ``start ..`` of ``layer``; their write-back to disk starts now, so that :meth:`flush` (each
        checkpoint) does not wait for all of pass 1's rows at once."""
        data = acts.detach().to("cpu", torch.float16).contiguous().numpy()
        f = self._files[layer]
        offset = (start - self.first_row) * int(np.prod(self.shapes[layer])) * 2
        f.seek(offset)
        f.write(memoryview(data).cast("B"))
        f.flush()
        start_writeback(f.fileno(), offset, data.nbytes)

    def rows(self) -> CacheRows:
        """The cache's reader (for rows written and flushed): small and picklable, for other processes too."""
        return CacheRows(self.dir, self.shapes, self.first_row)

    def flush(self) -> None:
        for f in self._files.values():
            f.flush()
            os.fsync(f.fileno())

    def close(self) -> None:
        for f in self._files.values():
            f.close()
        self._files = {}


@dataclass(frozen=True)
class CacheRows:
    """Reads an :class:`ActivationCache`'s rows (those written and flushed), from any process."""

    dir: Path
    shapes: dict[str, tuple[int, int, int]]
    first_row: int

    def read(self, layer: str, start: int, end: int) -> torch.Tensor:
        """Rows ``start:end`` of ``layer``, float16 ``(end - start, U, h, w)``."""
        shape = self.shapes[layer]
        out = np.empty((end - start, *shape), CACHE_DTYPE)
        path = cache_file(self.dir, list(self.shapes).index(layer))
        if not read_rows(path, (start - self.first_row) * out[:1].nbytes, out):
            raise BrodenError(f"{self.dir}: activation cache is truncated; run again with --force")
        return torch.from_numpy(out)

    def __call__(self, start: int, end: int, ids: Sequence[str]) -> dict[str, torch.Tensor]:
        """Every layer's rows ``start:end`` (the reader of stored activations, as ``SuppliedProducer.read``)."""
        return {layer: self.read(layer, start, end) for layer in self.shapes}


class SuppliedActivations:
    """``--activations acts.npz``: ``activations`` (N, U, h, w) and ``image`` (N dataset ids), read by row ranges.

    An uncompressed npz member is memory-mapped (nothing is loaded up front); a compressed one is loaded whole.
    """

    def __init__(self, path: str | os.PathLike[str], dataset: Broden) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise BrodenError(f"{self.path}: activations file not found")
        try:
            npz = np.load(self.path, allow_pickle=False)
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
            raise BrodenError(f"{self.path}: not a readable .npz file ({exc})") from None
        if not isinstance(npz, np.lib.npyio.NpzFile):
            raise BrodenError(f"{self.path}: a single array, not an .npz archive; save 'activations' and 'image' "
                              "together with numpy.savez")
        with npz:
            missing = [k for k in ("activations", "image") if k not in npz.files]
            if missing:
                raise BrodenError(f"{self.path}: no {missing[0]!r} array; the npz needs 'activations' (N, units, h, w) "
                                  "and 'image' (N dataset ids)")
            try:
                ids = npz["image"]
                self.layer = str(npz["layer"]) if "layer" in npz.files else "activations"
            except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
                raise BrodenError(f"{self.path}: 'image' or 'layer' is not readable ({exc}); store the ids as "
                                  "strings (numpy.savez(..., image=np.array(ids)))") from None
        self.array = _npz_member(self.path, "activations")
        if self.array.ndim != 4:
            raise BrodenError(f"{self.path}: 'activations' has shape {self.array.shape}; expected (N, units, h, w)")
        if 0 in self.array.shape[1:]:
            raise BrodenError(f"{self.path}: 'activations' has shape {self.array.shape}: no units or an empty "
                              "spatial map; every row needs units x h x w values")
        if ids.ndim != 1 or ids.shape[0] != self.array.shape[0] or ids.dtype.kind not in "US":
            raise BrodenError(f"{self.path}: 'image' must be {self.array.shape[0]} dataset ids (strings), one per "
                              f"activation row; got shape {ids.shape} of {ids.dtype}")
        if ids.shape[0] == 0:
            raise BrodenError(f"{self.path}: no activation rows")
        self.indices = dataset.positions(ids)  # no per-id Python objects: 63,305 of them and their map took 20 MB
        unknown = np.flatnonzero(self.indices < 0)
        if unknown.size:
            raise BrodenError(f"{self.path}: image id {str(ids[unknown[0]])!r} is not in the dataset {dataset.path} "
                              f"({unknown.size} unknown id(s)); the ids must be the dataset's 'id' column")
        if np.unique(self.indices).size != self.indices.size:
            raise BrodenError(f"{self.path}: an image id appears twice in 'image'; list each image once")

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(int(d) for d in self.array.shape[1:])  # type: ignore[return-value]

    def read(self, start: int, end: int) -> torch.Tensor:
        """Rows ``start:end`` as float32. From a C-ordered memory map they are read with a positioned read, not
        through the map: mapped pages stay resident in the process, so its memory would grow with the file (at
        full Broden scale, 3.2 GB of float16 for 512 units 7x7)."""
        if isinstance(self.array, np.memmap) and self.array.flags.c_contiguous:
            rows = np.empty((end - start, *self.array.shape[1:]), self.array.dtype)
            if not read_rows(self.path, self.array.offset + start * rows[:1].nbytes, rows):
                raise BrodenError(f"{self.path}: 'activations' is truncated; write the file again")
            return torch.from_numpy(rows.astype(np.float32))
        return torch.from_numpy(np.array(self.array[start:end], dtype=np.float32))  # a copy: the map is read-only


def read_rows(path: Path, offset: int, out: np.ndarray) -> bool:
    """Fill ``out`` with the bytes of ``path`` from ``offset``, through a file of its own (so that processes and
    threads never share a file position) and not through a memory map (mapped pages stay resident in the
    process). False when the file ends first."""
    with open(path, "rb", buffering=0) as f:
        f.seek(offset)
        view, done = memoryview(out).cast("B"), 0
        while done < out.nbytes:
            got = f.readinto(view[done:])
            if not got:
                return False
            done += got
    return True


def _check_dtype(path: Path, name: str, dtype: np.dtype) -> None:
    if dtype.kind not in "fiu":  # bool, complex (its imaginary part would be dropped), str, object, records
        raise BrodenError(f"{path}: '{name}' holds {dtype} values; it must be a real numeric array (float or int)")


def _npz_member(path: Path, name: str) -> np.ndarray:
    """Memory-map ``name`` from an uncompressed npz; load it when it is compressed. The npy header is checked
    against the member's size, so a header that claims more (or less) data than the file holds is refused."""
    try:
        with zipfile.ZipFile(path) as zf:
            info = zf.getinfo(f"{name}.npy")
            if info.compress_type == zipfile.ZIP_STORED:
                with open(path, "rb") as f:
                    f.seek(info.header_offset)
                    header = f.read(30)
                    name_len = int.from_bytes(header[26:28], "little")
                    extra_len = int.from_bytes(header[28:30], "little")
                    start = info.header_offset + 30 + name_len + extra_len
                    f.seek(start)
                    version = np.lib.format.read_magic(f)
                    read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                                   else np.lib.format.read_array_header_2_0)
                    shape, fortran, dtype = read_header(f)
                    offset = f.tell()
                _check_dtype(path, name, dtype)
                nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
                if offset - start + nbytes != info.file_size:
                    raise BrodenError(f"{path}: '{name}' claims shape {shape} of {dtype} ({nbytes} bytes) but holds "
                                      f"{info.file_size - (offset - start)} bytes; the file is damaged, write it again")
                if nbytes == 0:
                    return np.zeros(shape, dtype)
                return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape,
                                 order="F" if fortran else "C")
        with np.load(path, allow_pickle=False) as npz:
            array = npz[name]
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise BrodenError(f"{path}: '{name}' is not readable ({' '.join(str(exc).split())[:200]}); write the file "
                          "again with numpy.savez") from None
    _check_dtype(path, name, array.dtype)
    return array
