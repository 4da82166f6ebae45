"""Assemble Broden from its original sources: the whole of ``broden build``.

The original builder's pipeline (``docs/broden-sources.md`` §3), in two passes over the images:

1. Per source, in parallel: read every image's photo and raw annotations, add the color map (full resolution),
   count each raw label's image frequency and covered fraction (on the unscaled masks), and keep the photo resized
   bilinearly to S x S (JPEG) and every raw label map reduced to S/2 x S/2 with ``scipy.ndimage.zoom(order=0)``
   (scipy's corner-aligned nearest pixel choice, as the original). Nearest selection commutes with translating raw
   codes to global numbers, so raw codes are stored and translated later. Results are cached per chunk of images
   in ``OUT.partial/work/<source>/`` with a completion marker per source, so an interrupted run resumes.
2. :func:`broden.build.unify.unify` names, merges, filters and numbers the labels; then every image's maps are
   translated and written as a Hugging Face dataset (atomically), split 70/30 by the md5 of ``<source>/<name>``.
"""

from __future__ import annotations

import gzip
import io
import json
import pickle
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from broden.build.sources import Source, colors, fail, get_sources, registry
from broden.build.unify import MIN_COVERAGE, MIN_FREQUENCY, RawKey, RawStats, Vocabulary, unify
from broden.dataset import IMAGE_SIZES, encode_row, write_dataset
from broden.errors import BrodenError
from broden.labels import BRODEN_CATEGORIES
from broden.legacy import export_legacy
from broden.masks import reduce_nearest
from broden.split import assign_split
from broden.utils import atomic
from broden.utils.parallel import default_workers, ordered_map
from broden.utils.progress import make_progress
from broden.validate import validate_dataset

CHUNK = 32  # images per cached work file: the unit of parallel work and of resuming
WORK_FORMAT = 1
PIXEL_CATEGORIES = tuple(n for n, k in BRODEN_CATEGORIES if k == "pixel")
IMAGE_CATEGORIES = tuple(n for n, k in BRODEN_CATEGORIES if k == "image")


@dataclass(frozen=True)
class BuildOptions:
    sources_dir: Path
    out: Path
    size: int = 224
    only: tuple[str, ...] | None = None
    min_frequency: int = MIN_FREQUENCY
    min_coverage: float = MIN_COVERAGE
    workers: int = 0  # 0: every available core
    download: bool = False
    legacy: Path | None = None


# -- phase 1: one image -----------------------------------------------------------------------------------------


def read_photo(source: str, path: Path):
    """The photo as an RGB PIL image (grayscale and CMYK converted, i.e. grayscale expanded to 3 channels)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            return img.convert("RGB")
    except FileNotFoundError:
        raise fail(source, path, "photo is missing") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise fail(source, path, f"photo does not decode ({exc})") from None


def resize_photo(photo, size: int) -> bytes:
    """S x S bilinear resize (aspect ratio not kept, as the original's ``crop=False``), saved as default JPEG."""
    from PIL import Image

    buf = io.BytesIO()
    photo.resize((size, size), Image.BILINEAR).save(buf, format="JPEG")
    return buf.getvalue()


def label_statistics(pixel: dict[str, list[np.ndarray]], image: dict[str, list[int]]) -> dict[tuple[str, int], float]:
    """(category, raw code) -> covered fraction of one image (1.0 for image-level labels); code 0 ignored.

    A multi-layer map (ADE part levels) counts each layer's pixels against one plane's area.
    """
    out: dict[tuple[str, int], float] = {}
    for cat, layers in pixel.items():
        if not layers:
            continue
        counts = np.bincount(np.concatenate([np.ravel(layer) for layer in layers]))
        area = layers[0].size
        for code in np.flatnonzero(counts):
            if code:
                out[(cat, int(code))] = float(counts[code]) / area
    for cat, codes in image.items():
        for code in set(codes):
            if code:
                out[(cat, int(code))] = 1.0
    return out


def process_image(source: Source, root: Path, item: Any, size: int) -> dict[str, Any]:
    """Phase 1 for one image: statistics, resized JPEG and reduced raw maps."""
    img = source.load(root, item)
    photo = read_photo(source.name, img.photo)
    pixel = {**img.pixel, colors.CATEGORY: [colors.color_codes(np.asarray(photo))]}
    for cat, layers in pixel.items():
        for layer in layers:
            if layer.min(initial=0) < 0 or layer.max(initial=0) > 65535:
                raise fail(source.name, img.photo, f"{cat} annotation holds codes outside 0..65535")
    seg = size // 2
    return {
        "name": img.name,
        "jpeg": resize_photo(photo, size),
        "pixel": {
            cat: np.stack([reduce_nearest(l, seg) for l in layers]).astype(np.uint16)
            if layers
            else np.zeros((0, seg, seg), np.uint16)
            for cat, layers in pixel.items()
        },
        "image": {cat: list(codes) for cat, codes in img.image.items()},
        "stats": label_statistics(pixel, img.image),
    }


# -- phase 1: work cache ----------------------------------------------------------------------------------------


def _chunk_path(cache: Path, index: int) -> Path:
    return cache / f"chunk-{index:05d}.pkl.gz"


def _process_chunk(task: tuple[str, Path, Path, int, list[Any], int]) -> tuple[str, int]:
    """Worker: process one chunk of images and write its cache file (atomically); returns (source, image count)."""
    source_name, root, cache, index, items, size = task
    source = registry()[source_name]
    records = [process_image(source, root, item, size) for item in items]
    header = {"names": [r["name"] for r in records], "stats": [r.pop("stats") for r in records]}
    with atomic.atomic_path(_chunk_path(cache, index)) as tmp:
        with gzip.open(tmp, "wb", compresslevel=1) as f:
            pickle.dump(header, f, protocol=pickle.HIGHEST_PROTOCOL)
            pickle.dump(records, f, protocol=pickle.HIGHEST_PROTOCOL)
    return source_name, len(records)


def _read_chunk(path: Path, *, records: bool) -> Any:
    try:
        with gzip.open(path, "rb") as f:
            header = pickle.load(f)
            return pickle.load(f) if records else header
    except (OSError, EOFError, pickle.UnpicklingError) as exc:
        raise BrodenError(f"{path}: damaged work file ({exc}); delete it and run the same command again") from None


@dataclass
class SourceWork:
    """A finished phase 1 of one source: its chunk files, output names, raw label statistics and names."""

    source: str
    cache: Path
    names: list[list[str]]  # per chunk: output file names (collisions already resolved)
    stats: dict[RawKey, RawStats]
    label_names: dict[RawKey, list[str]]


def _unique_names(names: Sequence[str], used: set[str]) -> list[str]:
    """The original's collision rule: a taken ``x.jpg`` becomes ``x2.jpg``, ``x3.jpg``, ..."""
    out = []
    for name in names:
        stem, dot, ext = name.rpartition(".")
        candidate, k = name, 1
        while candidate in used:
            k += 1
            candidate = f"{stem}{k}{dot}{ext}"
        used.add(candidate)
        out.append(candidate)
    return out


def _load_marker(marker: Path, source: str, config: dict[str, Any]) -> SourceWork | None:
    if not marker.is_file():
        return None
    done = json.loads(marker.read_text())
    if done.get("config") != config:
        return None
    return SourceWork(
        source,
        marker.parent,
        done["names"],
        {(source, c, r): RawStats(f, v) for c, r, f, v in done["stats"]},
        {(source, c, r): n for c, r, n in done["label_names"]},
    )


def _finish_source(source: Source, cache: Path, n_chunks: int, names: dict, config: dict[str, Any]) -> SourceWork:
    """Sum the chunks' statistics, resolve output-name collisions and write the source's completion marker."""
    stats: dict[tuple[str, int], list[float]] = {}
    used: set[str] = set()
    out_names = []
    for i in range(n_chunks):
        header = _read_chunk(_chunk_path(cache, i), records=False)
        out_names.append(_unique_names(header["names"], used))
        for image_stats in header["stats"]:
            for key, cov in image_stats.items():
                acc = stats.setdefault(key, [0, 0.0])
                acc[0] += 1
                acc[1] += cov
    done = {
        "config": config,
        "names": out_names,
        "stats": [[c, r, int(f), v] for (c, r), (f, v) in sorted(stats.items())],
        "label_names": [[c, r, n] for c, table in sorted(names.items()) for r, n in sorted(table.items())],
    }
    atomic.write_json(cache / "complete.json", done, indent=None)
    work = _load_marker(cache / "complete.json", source.name, config)
    assert work is not None
    return work


def read_sources(
    sources: Sequence[Source], root: Path, work: Path, size: int, workers: int, progress
) -> list[SourceWork]:
    """Phase 1 of every source in one process pool, resuming from cached chunks; finished sources are reused."""
    done: dict[str, SourceWork] = {}
    pending = []  # (source, cache, config, names, chunks, todo, progress task)
    for source in sources:
        cache = work / source.name
        config = {"format": WORK_FORMAT, "size": size, "root": str(root.resolve())}
        if (finished := _load_marker(cache / "complete.json", source.name, config)) is not None:
            done[source.name] = finished
            continue
        if (cache / "config.json").is_file() and json.loads((cache / "config.json").read_text()) != config:
            shutil.rmtree(cache)
        cache.mkdir(parents=True, exist_ok=True)
        atomic.write_json(cache / "config.json", config)
        items = source.items(root)
        if not items:
            raise BrodenError(f"{source.name}: no images found under {root}; {source.obtain(root)}")
        names = {**source.label_names(root), colors.CATEGORY: colors.label_names()}
        chunks = [items[i : i + CHUNK] for i in range(0, len(items), CHUNK)]
        todo = [i for i in range(len(chunks)) if not _chunk_path(cache, i).is_file()]
        task = progress.add_task(f"{source.name}: reading", total=len(items))
        progress.advance(task, len(items) - sum(len(chunks[i]) for i in todo))
        pending.append((source, cache, config, names, chunks, todo, task))
    tasks = [(s.name, root, cache, i, chunks[i], size) for s, cache, _, _, chunks, todo, _ in pending for i in todo]
    remaining = {s.name: len(todo) for s, *_, todo, _ in pending}
    by_name = {p[0].name: p for p in pending}
    for name, count in ordered_map(_process_chunk, tasks, workers=workers):
        source, cache, config, names, chunks, _, task = by_name[name]
        progress.advance(task, count)
        remaining[name] -= 1
        if not remaining[name]:  # a source is finished (and resumable as a whole) as soon as its last chunk is
            done[name] = _finish_source(source, cache, len(chunks), names, config)
    for source, cache, config, names, chunks, todo, _ in pending:
        if not todo:  # every chunk was cached already: only the marker was missing
            done[source.name] = _finish_source(source, cache, len(chunks), names, config)
    return [done[s.name] for s in sources]


# -- phase 2: rows ----------------------------------------------------------------------------------------------


def _rows_of_chunk(task: tuple[str, Path, list[str], dict[str, np.ndarray], int]) -> list[dict[str, Any]]:
    """Worker: translate one cached chunk to global numbers and encode the dataset rows."""
    source, path, names, lookups, size = task
    rows = []
    for name, rec in zip(names, _read_chunk(path, records=True)):
        row_id = f"{source}/{name}"
        label_maps = {}
        for cat in PIXEL_CATEGORIES:
            table = lookups.get(cat, np.zeros(1, np.int32))
            # every raw code left after reduction was counted in phase 1
            label_maps[cat] = [table[raw] for raw in rec["pixel"].get(cat, np.zeros((0, 1, 1), np.uint16))]
        image_labels = {}
        for cat in IMAGE_CATEGORIES:
            table = lookups.get(cat, np.zeros(1, np.int32))
            # a raw label filtered out of the vocabulary is written as 0, as in the original (raw 0 is skipped)
            image_labels[cat] = [table[c] for c in rec["image"].get(cat, []) if c]
        row = encode_row(
            id=row_id, image=rec["jpeg"], split=assign_split(row_id), source=source, size=(size, size),
            seg_size=(size // 2, size // 2), label_maps=label_maps, image_labels=image_labels,
        )
        rows.append(row)
    return rows


def iter_rows(works: Sequence[SourceWork], vocab: Vocabulary, size: int, workers: int, progress) -> Iterator[dict]:
    total = sum(len(n) for w in works for n in w.names)
    task = progress.add_task("writing dataset", total=total)
    lookups = {w.source: {c: vocab.lookup(w.source, c) for c in PIXEL_CATEGORIES + IMAGE_CATEGORIES} for w in works}
    tasks = (
        (w.source, _chunk_path(w.cache, i), names, lookups[w.source], size)
        for w in works
        for i, names in enumerate(w.names)
    )
    for rows in ordered_map(_rows_of_chunk, tasks, workers=workers):
        yield from rows
        progress.advance(task, len(rows))


# -- the whole build --------------------------------------------------------------------------------------------


def select_sources(opts: BuildOptions) -> list[Source]:
    """The sources to build, each checked (downloaded first with ``download``); missing ones are one error."""
    sources = get_sources(opts.only)
    problems = []
    for source in sources:
        try:
            source.check(opts.sources_dir)
        except BrodenError as exc:
            if not opts.download:
                problems.append(exc)
                continue
            try:
                source.download(opts.sources_dir)
            except BrodenError as failed:
                where = source.obtain(opts.sources_dir)
                raise BrodenError(f"{source.name}: download failed ({failed}); {where}") from None
            source.check(opts.sources_dir)
    if problems:
        others = [s.name for s in sources if all(not str(p).startswith(s.name + ":") for p in problems)]
        hint = f" (build the others with --only {','.join(others)})" if others and opts.only is None else ""
        more = f"; {len(problems) - 1} more source(s) missing" if len(problems) > 1 else ""
        raise BrodenError(f"{problems[0]}{hint}{more}")
    return sources


def build(opts: BuildOptions):
    """Run the whole build; returns the written, validated :class:`broden.dataset.Broden`."""
    if opts.size not in IMAGE_SIZES:
        raise BrodenError(f"--size {opts.size}: choose one of {', '.join(map(str, IMAGE_SIZES))}")
    root = Path(opts.sources_dir)
    if opts.download:
        root.mkdir(parents=True, exist_ok=True)
    elif not root.is_dir():
        raise BrodenError(f"--sources {root}: no such directory (it should hold ade20k/, pascal/, opensurfaces/, dtd/)")
    sources = select_sources(opts)
    workers = opts.workers or default_workers()
    work = Path(f"{opts.out}.partial") / "work"
    with make_progress() as progress:
        works = read_sources(sources, root, work, opts.size, workers, progress)
        stats = {k: v for w in works for k, v in w.stats.items()}
        names = {k: v for w in works for k, v in w.label_names.items()}
        vocab = unify(stats, names, min_frequency=opts.min_frequency, min_coverage=opts.min_coverage)
        if not len(vocab.labels):
            raise BrodenError("no label reaches --min-frequency/--min-coverage; lower them or add sources")
        meta = {
            "label_statistics": "source-resolution",  # counted on the unscaled source masks, as the original
            "build": {
                "sources": [s.name for s in sources],
                "size": opts.size,
                "min_frequency": opts.min_frequency,
                "min_coverage": opts.min_coverage,
                # the original's syns.txt: every raw label merged into each name, "source/category#code"
                "aliases": {name: [f"{s}/{c}#{r}" for s, c, r in keys] for name, keys in vocab.aliases.items()},
            },
        }
        rows = iter_rows(works, vocab, opts.size, workers, progress)
        dataset = write_dataset(opts.out, rows, vocab.labels, meta=meta)

    violations = validate_dataset(opts.out, workers=workers)
    if violations:
        first = violations[0]
        raise BrodenError(
            f"{opts.out}: built, but {len(violations)} validation problem(s), first: {first.row_id}: "
            f"{first.check}: {first.message}",
            exit_code=1,
        )
    if opts.legacy is not None:
        export_legacy(dataset, opts.legacy, workers=workers)
    shutil.rmtree(Path(f"{opts.out}.partial"), ignore_errors=True)
    return dataset
