"""Check every invariant of a Broden dataset and report each violation with the row it concerns.

Checks, by name (the ``check`` field of a :class:`Violation`):

- ``files``, ``meta``, ``labels``, ``schema``: broden.json, the label table (``labels/labels.parquet``) and the
  parquet shards the card's ``configs`` name exist, load with ``datasets.load_dataset`` and agree with each other:
  the shards' features are the ones the label table implies (ClassLabel names = label names), the ``index`` column
  numbers the rows 0..N-1 across the splits; the label table is consistent (per-category codes dense 1..K, a
  label's frequency and coverage are the sums over its categories); the image and split counts in broden.json are
  right.
- ``id``, ``duplicate-id``, ``size``: ids are unique relative paths, sizes positive (a row's split is the shard it
  is stored in).
- ``image``: the image decodes, at the recorded height x width.
- ``masks``, ``mask-size``, ``layer``, ``overlap``: mask lists are parallel, every RLE is well-formed and covers
  exactly seg_height x seg_width pixels, its layer is < layers[category], masks of one layer do not overlap, and no
  (category, layer, label) appears twice.
- ``label-unknown``, ``label-category``, ``label-zero``: mask and image-level labels exist in the table and belong
  to that category; 0 is never a mask label. A literal 0 in an image-level cell is Broden's marker for a label the
  builder filtered out: it is counted as a note, not a violation.
- ``frequency``, ``coverage``: per-category statistics recomputed from the rows match the table. A dataset whose
  ``broden.json`` says ``"label_statistics": "source-resolution"`` (the original release, whose builder counted
  labels on the full-resolution source masks before downsampling, where small regions still existed) must have
  recomputed frequencies <= the table's for pixel categories, and coverage within 10%.
- ``fingerprint``: the fingerprint in broden.json matches the content.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from broden.dataset import (
    DATASET_FORMAT,
    LABELS_FILE,
    META_FILE,
    SAVE_TO_DISK_FORMAT,
    SPLITS,
    Broden,
    Fingerprinter,
    open_image,
    read_labels,
    row_features,
)
from broden.errors import BrodenError
from broden.labels import MAX_LABEL_NUMBER, LabelTable
from broden.masks import decode_binary, rle_totals
from broden.utils.parallel import Forked, choose_workers, ordered_map
from broden.utils.progress import track

CHUNK_ROWS = 64
SOURCE_RESOLUTION = "source-resolution"
ZERO_NOTE = "image-level label 0 (a label the Broden builder filtered out)"


@dataclass(frozen=True)
class Violation:
    row_id: str | None  # None: the violation concerns the dataset as a whole
    check: str
    message: str

    def __str__(self) -> str:
        return f"{self.row_id if self.row_id is not None else '(dataset)'}: [{self.check}] {self.message}"


@dataclass
class ValidationReport:
    path: Path
    violations: list[Violation] = field(default_factory=list)
    notes: Counter = field(default_factory=Counter)
    num_images: int = 0
    num_labels: int = 0
    fingerprint: str | None = None

    @property
    def ok(self) -> bool:
        return not self.violations


@dataclass
class _Stats:
    violations: list[Violation] = field(default_factory=list)
    frequency: Counter = field(default_factory=Counter)  # (category, label) -> images
    coverage: defaultdict = field(default_factory=lambda: defaultdict(float))  # (category, label) -> sum of fractions
    zeros: int = 0
    rows: int = 0

    def merge(self, other: "_Stats") -> None:
        self.rows += other.rows
        self.violations.extend(other.violations)
        self.frequency.update(other.frequency)
        for k, v in other.coverage.items():
            self.coverage[k] += v
        self.zeros += other.zeros


_OPEN: dict[str, Broden] = {}  # this process's open dataset, keyed by the validation run that opened it


def _opened(run_id: str, path: str) -> Broden:
    """This worker's dataset of a run (a new run may see a rewritten dataset at the same path: never an older one)."""
    if run_id not in _OPEN:
        _OPEN.clear()
        _OPEN[run_id] = Broden(path)
    return _OPEN[run_id]


def _check_rows(job: tuple[str, str, int, int]) -> _Stats:
    """Worker: check rows ``start:stop`` of the dataset at ``path``; return violations and label statistics."""
    run_id, path, start, stop = job
    ds = _opened(run_id, path)
    stats = _Stats()
    for row in ds.iter_rows(indices=range(start, stop)):
        _check_row(row, ds, stats)
        stats.rows += 1
    return stats


def _check_header(row: dict[str, Any], report: Callable[[str, str], None]) -> bool:
    """Id, split and sizes of a row; False when the sizes are unusable (nothing else can be checked)."""
    rid = row["id"]
    path = PurePosixPath(rid or "")
    if not rid or path.is_absolute() or ".." in path.parts:
        report("id", "id must be a non-empty relative path like 'ade20k/x.jpg'")
    h, w, sh, sw = (row[k] for k in ("height", "width", "seg_height", "seg_width"))
    if min(h, w, sh, sw) <= 0:
        report("size", f"sizes must be positive (height {h}, width {w}, seg {sh}x{sw})")
        return False
    return True


def _check_structure(row: dict[str, Any], ds: Broden, report: Callable[[str, str], None],
                     stats: _Stats) -> dict[str, list[int]] | None:
    """The cheap checks of a row's labels and masks, without decoding anything: image-level labels, layer counts,
    parallel mask lists, each mask's category, layer, label and RLE header (the pixels it covers). Returns, per
    category, the indices of the masks fit to decode; None when the mask lists are unusable. Counts image-level
    label statistics into ``stats``."""
    labels = ds.labels
    sh, sw = row["seg_height"], row["seg_width"]
    seg = sh * sw
    for cat in ds.image_categories:
        seen = set()
        for lab in row[cat] or []:
            if lab == 0:
                stats.zeros += 1
            elif lab not in labels:
                report("label-unknown", f"{cat} label {lab} is not in the label table")
            elif cat not in labels[lab].categories:
                report("label-category", f"{cat} label {lab} ({labels[lab].name}) is not a {cat} label")
            elif lab not in seen:
                seen.add(lab)
                stats.frequency[(cat, lab)] += 1
                stats.coverage[(cat, lab)] += 1.0

    layers = row["layers"] or {}
    for cat, n in layers.items():
        if n is None or n < 0:
            report("layer", f"layers[{cat}] is {n}; it must be >= 0")
    masks = row["masks"]
    codes, lays, labs, rles = masks["category"], masks["layer"], masks["label"], masks["rle"]
    if not len(codes) == len(lays) == len(labs) == len(rles):
        report("masks", "the masks' category, layer, label and rle lists differ in length")
        return None
    names = ds.pixel_categories
    cats = [names[c] if 0 <= c < len(names) else f"#{c}" for c in codes]
    good: dict[str, list[int]] = defaultdict(list)
    seen_keys = set()
    totals = rle_totals(rles)
    for i, (cat, layer, lab, total) in enumerate(zip(cats, lays, labs, totals)):
        key = (cat, layer, lab)
        if cat not in layers:
            report("masks", f"mask {i}: category {cat!r} is not a pixel category of this dataset")
            continue
        if not 0 <= layer < (layers[cat] or 0):
            report("layer", f"mask {i} ({cat}, label {lab}): layer {layer} but layers[{cat}] = {layers[cat]}")
            continue
        if lab == 0:
            report("label-zero", f"mask {i} ({cat} layer {layer}) has label 0, which means unlabeled")
            continue
        if lab not in labels:
            report("label-unknown", f"mask {i}: {cat} label {lab} is not in the label table")
        elif cat not in labels[lab].categories:
            report("label-category", f"mask {i}: label {lab} ({labels[lab].name}) is not a {cat} label")
        if key in seen_keys:
            report("masks", f"mask {i}: ({cat}, layer {layer}, label {lab}) appears twice")
            continue
        seen_keys.add(key)
        if total is None:
            report("masks", f"mask {i} ({cat}, label {lab}): malformed RLE string")
        elif total != seg:
            report("mask-size", f"mask {i} ({cat}, label {lab}) covers {total} pixels, not seg {sh}x{sw} = {seg}")
        else:
            good[cat].append(i)
    return good


def _check_row(row: dict[str, Any], ds: Broden, stats: _Stats) -> None:
    rid = row["id"]
    bad = stats.violations

    def report(check: str, message: str) -> None:
        bad.append(Violation(rid, check, message))

    if not _check_header(row, report):
        return
    h, w, sh, sw = (row[k] for k in ("height", "width", "seg_height", "seg_width"))
    image = row["image"]
    try:
        img = open_image(image["bytes"] if isinstance(image, dict) else image, rid)
        if img.size != (w, h):
            report("image", f"image is {img.size[1]}x{img.size[0]}, the row says {h}x{w}")
    except BrodenError as exc:
        report("image", str(exc))
    except Exception as exc:  # noqa: BLE001 - a damaged image must be reported, whatever the decoder raises
        report("image", f"image does not decode ({type(exc).__name__}: {exc})")

    good = _check_structure(row, ds, report, stats)
    if good is None:
        return
    rles, lays, labs, labels = row["masks"]["rle"], row["masks"]["layer"], row["masks"]["label"], ds.labels
    for cat, idx in good.items():
        binary = decode_binary([rles[i] for i in idx], sh, sw).reshape(len(idx), -1)
        cat_layers = np.asarray([lays[i] for i in idx])
        cat_labels = np.asarray([labs[i] for i in idx])
        for layer in np.unique(cat_layers):
            sel = cat_layers == layer
            if sel.sum() > 1:
                overlap = int((binary[sel].sum(axis=0, dtype=np.int32) > 1).sum())
                if overlap:
                    report("overlap", f"{cat} layer {layer}: masks overlap on {overlap} pixels")
        for lab in np.unique(cat_labels):
            if int(lab) not in labels:
                continue
            area = np.any(binary[cat_labels == lab], axis=0).sum()
            if area:
                stats.frequency[(cat, int(lab))] += 1
                stats.coverage[(cat, int(lab))] += float(area) / (sh * sw)


def _read_json(path: Path, report: ValidationReport) -> Any:
    if not path.is_file():
        report.violations.append(Violation(None, "files", f"{path.name} is missing"))
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        report.violations.append(Violation(None, "files", f"{path.name} is not valid JSON ({exc})"))
        return None


def _check_table(labels: LabelTable, report: ValidationReport) -> None:
    bad = report.violations
    if labels.max_number > MAX_LABEL_NUMBER:
        bad.append(Violation(None, "labels", f"label number {labels.max_number} is over {MAX_LABEL_NUMBER:,}: "
                                             "counts are kept per label number, so number the labels 1..N"))
    for cat in labels.category_names:
        codes = sorted(lab.categories[cat].code for lab in labels.labels if cat in lab.categories)
        if codes != list(range(1, len(codes) + 1)):
            bad.append(Violation(None, "labels", f"{cat} codes are not 1..{len(codes)}"))
    for lab in labels.labels:
        ms = lab.categories.values()
        if lab.frequency != sum(m.frequency for m in ms):
            bad.append(Violation(None, "labels", f"label {lab.number} ({lab.name}): frequency {lab.frequency} is "
                                                 f"not the sum over its categories ({sum(m.frequency for m in ms)})"))
        cov = sum(m.coverage for m in ms)
        if abs(lab.coverage - cov) > 1e-3 * max(1.0, cov):
            bad.append(Violation(None, "labels", f"label {lab.number} ({lab.name}): coverage {lab.coverage} is "
                                                 f"not the sum over its categories ({cov:f})"))


def _check_meta(meta: Any, labels: LabelTable, report: ValidationReport) -> bool:
    bad = report.violations
    if not isinstance(meta, dict):
        bad.append(Violation(None, "meta", f"{META_FILE} must hold a JSON object"))
        return False
    if meta.get("format") != DATASET_FORMAT:
        bad.append(Violation(None, "meta", f"format is {meta.get('format')!r}, expected {DATASET_FORMAT!r}"))
        return False
    for key, kind in (("fingerprint", str), ("num_images", int), ("splits", dict), ("categories", list)):
        if not isinstance(meta.get(key), kind):
            bad.append(Violation(None, "meta", f"{key} is missing or not a {kind.__name__}"))
            return False
    cats = [{"name": c.name, "kind": c.kind} for c in labels.categories]
    if meta["categories"] != cats:
        bad.append(Violation(None, "meta", f"categories {meta['categories']} differ from the label table's {cats}"))
    for key in ("image_size", "seg_size"):
        size = meta.get(key)
        if size is not None and not (isinstance(size, list) and len(size) == 2 and all(
                isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in size)):
            bad.append(Violation(None, "meta", f"{key} is {size!r}; it must be [height, width] in whole pixels, "
                                               "or null for mixed sizes"))
    return True


def _check_statistics(labels: LabelTable, stats: _Stats, source_resolution: bool, report: ValidationReport) -> None:
    kinds = {c.name: c.kind for c in labels.categories}
    table = {(c, lab.number): m for lab in labels.labels for c, m in lab.categories.items()}
    for key in sorted(set(table) | set(stats.frequency)):
        cat, number = key
        if number not in labels or cat not in kinds:
            continue  # already reported per row
        m = table.get(key)
        freq, cov = stats.frequency.get(key, 0), stats.coverage.get(key, 0.0)
        name = f"{cat} label {number} ({labels.name(number)})"
        t_freq, t_cov = (m.frequency, m.coverage) if m else (0, 0.0)
        one_sided = source_resolution and kinds[cat] == "pixel"
        if (freq > t_freq) if one_sided else (freq != t_freq):
            rel = "at most " if one_sided else ""
            report.violations.append(Violation(None, "frequency", f"{name}: in {freq} images, the table says "
                                                                  f"{rel}{t_freq}"))
            continue
        tol = 0.1 * t_cov + 0.01 if one_sided else 1e-4 * t_cov + 1e-6 * (t_freq + 1)
        if abs(cov - t_cov) > tol:
            report.violations.append(Violation(None, "coverage", f"{name}: coverage {cov:.6f} recomputed from the "
                                                                 f"rows, the table says {t_cov:.6f}"))


def validate(path: str | Path, *, workers: int | None = None) -> ValidationReport:
    """Check the dataset at ``path``; never raises for damaged data, every problem becomes a violation."""
    path = Path(path)
    report = ValidationReport(path)
    if not path.is_dir():
        report.violations.append(Violation(None, "files", f"{path} is not a directory"))
        return report
    meta = _read_json(path / META_FILE, report)
    if meta is None:
        return report
    if isinstance(meta, dict) and meta.get("format") == SAVE_TO_DISK_FORMAT:
        report.violations.append(Violation(None, "meta", f"format is the old {SAVE_TO_DISK_FORMAT} (save_to_disk); "
                                                         f"convert the folder with 'broden migrate {path} NEW'"))
        return report
    if not (path / LABELS_FILE).is_file():
        report.violations.append(Violation(None, "files", f"{LABELS_FILE} is missing"))
        return report
    try:
        labels = read_labels(path, meta if isinstance(meta, dict) else {})
    except BrodenError as exc:
        report.violations.append(Violation(None, "labels", str(exc)))
        return report
    report.num_labels = len(labels)
    _check_table(labels, report)
    if not _check_meta(meta, labels, report):
        return report
    try:
        ds = Broden(path)
    except BrodenError as exc:
        report.violations.append(Violation(None, "files", str(exc)))
        return report
    expected = row_features(labels)
    for split, part in ds.splits.items():
        if set(part.column_names) != set(expected):
            diff = sorted(set(part.column_names) ^ set(expected))
            report.violations.append(Violation(None, "schema", f"the {split} rows' columns differ from the label "
                                                               f"table's schema in {diff}"))
            return report
        got = {k: v for k, v in part.features.items() if k != "image"}
        want = {k: v for k, v in expected.items() if k != "image"}
        if got != want:
            diff = sorted(k for k in want if got[k] != want[k])
            report.violations.append(Violation(None, "schema", f"the {split} rows' features {diff} differ from the "
                                                               "label table's (ClassLabel names must be the label "
                                                               "names); rebuild the dataset"))
            return report
    n = report.num_images = len(ds)
    if meta["num_images"] != n:
        report.violations.append(Violation(None, "meta", f"num_images is {meta['num_images']}, the rows hold {n}"))
    splits = Counter(ds.rows["split"])
    if meta["splits"] != {s: splits.get(s, 0) for s in SPLITS}:
        message = f"splits {meta['splits']} differ from the rows' {dict(splits)}"
        report.violations.append(Violation(None, "meta", message))
    for rid, count in Counter(ds.rows["id"]).items():
        if count > 1:
            report.violations.append(Violation(rid, "duplicate-id", f"id appears in {count} rows"))

    stats = _Stats()
    run_id = uuid.uuid4().hex
    jobs = [(run_id, str(path), s, min(s + CHUNK_ROWS, n)) for s in range(0, n, CHUNK_ROWS)]
    workers = choose_workers(workers, n, min_items=1000) if len(jobs) > 1 else 1
    results = ordered_map(_check_rows, jobs, workers=workers)
    # the fingerprint is hashed here while the workers check the same rows
    fingerprint = Fingerprinter(labels)
    own_rows = ds.iter_rows(batch_size=CHUNK_ROWS)
    for part in track(results, f"validate {path.name}", total=n, advance_by=lambda part: part.rows):
        stats.merge(part)
        for _ in range(part.rows):
            fingerprint.add(next(own_rows))
    _OPEN.pop(run_id, None)
    report.violations.extend(stats.violations)
    _check_statistics(labels, stats, meta.get("label_statistics") == SOURCE_RESOLUTION, report)
    if stats.zeros:
        report.notes[ZERO_NOTE] = stats.zeros
    actual = fingerprint.hexdigest()
    report.fingerprint = actual
    if actual != meta["fingerprint"]:
        report.violations.append(Violation(None, "fingerprint", f"{META_FILE} says {meta['fingerprint']}, the "
                                                                f"content hashes to {actual}; rebuild or re-convert"))
    return report


#: Rows from which preflight checks in worker processes: below, starting them costs more than it saves (a 20,000
#: row check takes about 5 s on one core); they also keep the mask bytes out of the scorer's memory.
PREFLIGHT_MIN_ROWS = 10_000
#: Rows per preflight task.
PREFLIGHT_SPAN = 256
#: Rows from which :func:`start_preflight` checks in a forked child: below, the check (0.08 s for 240 rows) is
#: shorter than what forking it costs the caller (about 0.03 s) plus what the caller could do meanwhile.
PREFLIGHT_FORK_MIN_ROWS = 1_000


def preflight(ds: Broden, *, workers: int = 1) -> None:
    """Validate's cheap checks, for a command about to use ``ds`` (``benchmark score``, before pass 1).

    The metadata, the label table, the columns, and every row's sizes, image-level labels, layer counts and mask
    lists with their RLE headers (nothing is decoded), plus one segmentation size for all rows (label maps of a
    batch are stacked). Raises :class:`BrodenError` naming the first violation and how many there are.

    ``workers`` > 1: a dataset of :data:`PREFLIGHT_MIN_ROWS` rows or more (not streamed) is checked in that many
    worker processes (:func:`broden.utils.parallel.ordered_map`: inline where they cannot start).
    """
    report = ValidationReport(ds.path)
    _check_table(ds.labels, report)
    _check_meta(ds.meta, ds.labels, report)
    expected = set(ds.columns)
    actual = set(ds.rows.column_names) if ds.rows is not None else expected  # a streaming reader reads by name
    if actual != expected:
        diff = sorted(actual ^ expected)
        report.violations.append(Violation(None, "schema", f"the rows' columns differ from the label table's "
                                                           f"schema in {diff}"))
    if not report.violations:
        n = len(ds)
        spans = [(s, min(s + PREFLIGHT_SPAN, n)) for s in range(0, n, PREFLIGHT_SPAN)]
        if _in_workers(ds, workers):
            run_id = uuid.uuid4().hex
            parts = ordered_map(_preflight_rows, [(run_id, str(ds.path), a, b) for a, b in spans], workers=workers)
        else:
            parts = (_preflight_span(ds, a, b) for a, b in spans)
        seg_sizes: Counter = Counter()
        for violations, sizes, _ in track(parts, f"check {ds.path.name}", total=n, advance_by=lambda p: p[2]):
            report.violations.extend(violations)
            seg_sizes.update(sizes)
        if len(seg_sizes) > 1:
            shown = ", ".join(f"{h}x{w} ({n} images)" for (h, w), n in seg_sizes.most_common(3))
            report.violations.append(Violation(None, "size", f"segmentations come in {len(seg_sizes)} sizes ({shown}); "
                                                             "a dissection needs one: convert or build at one size"))
    if report.violations:
        n = len(report.violations)
        raise BrodenError(f"{ds.path}: {report.violations[0]}{f' (and {n - 1} more)' if n > 1 else ''}; run "
                          f"'broden validate {ds.path}' for the full list")


def start_preflight(ds: Broden, *, workers: int = 1) -> Forked[None]:
    """:func:`preflight` of ``ds``, under way while the caller goes on (a scorer loads the model meanwhile):
    ``.result()`` raises what preflight raised. A dataset checked in one process (from
    :data:`PREFLIGHT_FORK_MIN_ROWS` to :data:`PREFLIGHT_MIN_ROWS` rows, or ``workers`` 1) is checked in a forked
    child process; a smaller one, a larger one (checked by worker processes: a forked child must not start processes
    of its own) and a streamed one (whose open connections the child would share) are checked before this returns.
    """
    fork = ds.reader is None and len(ds) >= PREFLIGHT_FORK_MIN_ROWS and not _in_workers(ds, workers)
    return Forked(f"the check of {ds.path}", lambda: preflight(ds, workers=workers), fork=fork)


def _in_workers(ds: Broden, workers: int) -> bool:
    """Whether :func:`preflight` checks ``ds`` in worker processes (a large local dataset, more than one span)."""
    return workers > 1 and len(ds) >= PREFLIGHT_MIN_ROWS and ds.reader is None and len(ds) > PREFLIGHT_SPAN


def _preflight_rows(job: tuple[str, str, int, int]) -> tuple[list[Violation], Counter, int]:
    """Worker: :func:`_preflight_span` of the dataset at ``path``."""
    run_id, path, start, stop = job
    return _preflight_span(_opened(run_id, path), start, stop)


def _preflight_span(ds: Broden, start: int, stop: int) -> tuple[list[Violation], Counter, int]:
    """Preflight's row checks of rows ``start:stop``: their violations, how many rows with usable sizes have each
    segmentation size, and how many rows were checked."""
    stats = _Stats()
    seg_sizes: Counter = Counter()
    columns = [c for c in ds.columns if c != "image"]
    span = range(start, stop)
    batch = ds.reader.read(span, columns) if ds.reader is not None else ds.rows.select_columns(columns)[start:stop]
    for i in range(len(batch["id"])):
        row = {k: batch[k][i] for k in columns}
        rid = row["id"]

        def add(check: str, message: str, rid: str = rid) -> None:
            stats.violations.append(Violation(rid, check, message))

        if _check_header(row, add):
            _check_structure(row, ds, add, stats)
            seg_sizes[(row["seg_height"], row["seg_width"])] += 1
    return stats.violations, seg_sizes, len(batch["id"])


def validate_dataset(path: str | Path, *, workers: int | None = None) -> list[Violation]:
    """Every violation of the dataset at ``path`` (empty when it is clean)."""
    return validate(path, workers=workers).violations
