"""Build the static leaderboard site from the submission files.

Every ``*.json`` in the submissions directory is validated; invalid ones are listed in a "rejected submissions"
section (and returned to the caller, which prints them) and skipped, so one bad pull request cannot take the site
down. The output is plain files with CSS and JS inlined: it works from ``file://`` and from any static host, and
loads nothing from elsewhere.

Lines and versions: submissions with the same model name (as a slug) and the same layers are versions of one
leaderboard line (:attr:`Entry.key`); the latest (by ``created``, then file name) is the line, the others are kept
as older versions. Ranking: lines on the leaderboard protocol (see ``leaderboard.protocol``) are ranked by the total
of unique detectors under the paper's per-category convention (the authors' release rule), then by detectors; lines
on another protocol are shown below, unranked. A submission with several layers is ranked by its last layer, the one
nearest the output, which is the layer the paper compares across networks; the row lists its other layers.

Layout of a built site (every URL stable across re-scorings):

- ``index.html``: the table, each row with the anchor ``#<slug>``; ``leaderboard.csv``: the table, one row per
  (line, layer); ``charts/unique-detectors.svg``;
- ``models/<slug>/index.html``: the latest version of a line (its permalink), with its charts beside it;
- ``models/<slug>/<version>/index.html``: an older version, ``<version>`` the first 12 hex digits of its file's sha256;
- ``submissions/<file>``: every valid submission file, byte for byte (the raw JSON).

Verification badges come only from the maintainers' file (``leaderboard.verified``), matched by the submission
file's sha256: editing a submission drops its badge.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2

from benchmark import html
from benchmark.html import charts
from benchmark.protocol import ordered_categories
from benchmark.tables import to_csv
from broden.errors import BrodenError
from broden.utils import atomic
from broden.utils.filenames import slug
from leaderboard import protocol
from leaderboard.validate import validate_submission

#: The git-tracked submissions, shipped as package data so the site builds from an installed package too.
SUBMISSIONS = Path(__file__).resolve().parent / "submissions"
CSV_FILE = "leaderboard.csv"
BEST_UNITS = 20
VERSION_DIGITS = 12


@dataclass
class Entry:
    """One valid submission as the site shows it."""

    file: str
    sha256: str  # of the file's bytes
    results: dict[str, Any]
    deviations: list[str]
    rank: int | None = None
    slug: str = ""  # the line's directory under models/
    version: str = ""  # "" for the latest version of its line, else its directory under models/<slug>/
    versions: list[Entry] = field(default_factory=list)  # every version of the line, latest first (on each)
    verified: Mapping[str, Any] | None = None  # the maintainers' record, when this exact file was verified
    overlaps: bool = False  # its unique-detector interval overlaps a ranked neighbour's (see mark_overlaps)

    @property
    def ranked(self) -> bool:
        return not self.deviations

    @property
    def layer(self) -> dict[str, Any]:
        """The layer shown in the leaderboard table: the submission's last."""
        return self.results["layers"][-1]

    @property
    def summary(self) -> dict[str, Any]:
        return self.layer["summary"]

    @property
    def interval(self) -> list[int] | None:
        """The 95% bootstrap interval of the ranking count (unique detectors, per-category, all), when recorded."""
        return ((self.layer.get("intervals") or {}).get("unique_per_category") or {}).get("all")

    @property
    def kind(self) -> str:
        return self.results["provenance"]["kind"]

    @property
    def key(self) -> tuple[str, str]:
        """What makes two submissions versions of one leaderboard line: the model's name (as a slug) and its layers."""
        return slug(self.results["name"]), "+".join(layer["name"] for layer in self.results["layers"])

    @property
    def page(self) -> str:
        """The page's directory, relative to the site root, ending in '/'."""
        return f"models/{self.slug}/{self.version + '/' if self.version else ''}"

    @property
    def created(self) -> datetime:
        try:
            when = datetime.fromisoformat(self.results["created"])
        except ValueError:
            return datetime.min.replace(tzinfo=UTC)
        return when if when.tzinfo else when.replace(tzinfo=UTC)


@dataclass
class Rejected:
    file: str
    errors: list[str]


@dataclass
class SeenDataset:
    """A dataset known by its provenance: the fingerprint first seen for it and the submission that showed it."""

    archive: str
    converter: str
    fingerprint: str
    first: Entry


@dataclass
class Site:
    """What a build produced (or would produce): the lines (latest versions) in table order, and rejected files."""

    entries: list[Entry] = field(default_factory=list)
    older: list[Entry] = field(default_factory=list)  # superseded versions, each with its own page
    rejected: list[Rejected] = field(default_factory=list)
    datasets: list[SeenDataset] = field(default_factory=list)


def _first_seen(entries: list[Entry]) -> list[SeenDataset]:
    """Fix each provenance-known dataset to the fingerprint its earliest submission shows; a later submission
    claiming the same archive and converter with other data gets a deviation (it is not ranked)."""
    seen: dict[tuple[str, str, str], SeenDataset] = {}
    for entry in sorted(entries, key=lambda e: (e.created, e.file)):
        dataset = entry.results["dataset"]
        listed = any(d.fingerprint == dataset["fingerprint"] for d in protocol.KNOWN_FINGERPRINTS)
        key = protocol.provenance_key(dataset) if entry.kind == "measured" and not listed else None
        if key is None:
            continue
        first = seen.setdefault(key, SeenDataset(key[0], f"broden {key[2]}", dataset["fingerprint"], entry))
        if first.fingerprint != dataset["fingerprint"]:
            entry.deviations.append(
                f"dataset.fingerprint {dataset['fingerprint']} differs from {first.fingerprint}, first seen for "
                f"{first.archive} converted by {first.converter} (in {first.first.file})")
    return list(seen.values())


def load(directory: str | os.PathLike[str], verified: Mapping[str, Mapping[str, Any]] | None = None) -> Site:
    """Validate every submission in ``directory``, group versions into lines and rank the lines.

    ``verified`` maps a submission file's sha256 (hex) to the maintainers' record of its verification.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise BrodenError(f"{directory}: no such submissions directory")
    site = Site()
    lines: dict[tuple[str, str], list[Entry]] = {}
    for path in sorted(directory.glob("*.json")):
        verdict = validate_submission(path)
        if not verdict.ok or verdict.results is None:
            site.rejected.append(Rejected(path.name, verdict.errors))
            continue
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        entry = Entry(path.name, digest, verdict.results, verdict.warnings, verified=(verified or {}).get(digest))
        lines.setdefault(entry.key, []).append(entry)
    site.datasets = _first_seen([e for versions in lines.values() for e in versions])
    names = [name for name, _ in lines]
    for (name, layers), versions in lines.items():
        versions.sort(key=lambda e: (e.created, e.file), reverse=True)
        line_slug = name if names.count(name) == 1 else f"{name}--{slug(layers, limit=40, default='layers')}"
        used: set[str] = set()
        for i, entry in enumerate(versions):
            entry.slug, entry.versions = line_slug, versions
            if i:
                entry.version = entry.sha256[:VERSION_DIGITS]
                while entry.version in used:  # byte-identical copies under two names
                    entry.version += "-2"
                used.add(entry.version)
        site.entries.append(versions[0])
        site.older += versions[1:]
    _rank(site.entries)
    return site


def _score(entry: Entry) -> tuple[int, int]:
    return entry.summary["unique_per_category"]["all"], entry.summary["detectors"]["all"]


def _rank(entries: list[Entry]) -> None:
    """Sort ranked entries by score (ties share a rank), then the other-protocol ones, each by name within ties."""
    entries.sort(key=lambda e: (not e.ranked, [-s for s in _score(e)], e.results["name"].lower()))
    previous, rank = None, 0
    for position, entry in enumerate(e for e in entries if e.ranked):
        if _score(entry) != previous:
            rank, previous = position + 1, _score(entry)
        entry.rank = rank
    mark_overlaps([e for e in entries if e.ranked])


def mark_overlaps(ranked: list[Entry]) -> None:
    """Flag each entry, in rank order, whose interval overlaps the next or previous entry's: their order is not
    established by the data. Entries without an interval are never flagged (nor flag their neighbours)."""
    for above, below in itertools.pairwise(ranked):
        a, b = above.interval, below.interval
        if a is not None and b is not None and a[0] <= b[1] and b[0] <= a[1]:
            above.overlaps = below.overlaps = True


def _http(url: Any) -> str | None:
    """``url`` when it is an http(s) link; anything else is shown as text, never as a link."""
    return url if isinstance(url, str) and url.startswith(("https://", "http://")) else None


def _environment() -> jinja2.Environment:
    env = html.environment("leaderboard")
    static = resources.files("leaderboard").joinpath("static")
    env.globals.update(
        css=static.joinpath("leaderboard.css").read_text(encoding="utf-8"),
        scripts=[static.joinpath(name).read_text(encoding="utf-8") for name in ("sort.js", "filter.js")],
        categories=protocol.CATEGORIES,
        protocol=protocol,
        http=_http,
        csv_file=CSV_FILE,
    )
    return env


def _stacks(summaries: list[dict[str, Any]], categories: list[str]) -> dict[str, list[int]]:
    return {c: [s["unique_per_category"].get(c, 0) for s in summaries] for c in categories}


def _index_chart(entries: list[Entry]) -> str:
    return charts.stacked_category_chart(
        [e.results["name"] for e in entries],
        _stacks([e.summary for e in entries], list(protocol.CATEGORIES)),
        title="Unique detectors per category (per-category convention)",
        ylabel="unique detectors",
        horizontal=True,
    )


def _layer_charts(layer: dict[str, Any], categories: list[str]) -> dict[str, str]:
    """Two charts with their own value axes: detectors (hundreds) would flatten unique detectors (tens)."""
    summary = layer["summary"]
    unique = {"per-category": [summary["unique_per_category"].get(c, 0) for c in categories]}
    if "unique_top_label" in summary:
        unique["top-label"] = [summary["unique_top_label"].get(c, 0) for c in categories]
    return {
        "detectors": charts.grouped_bar_chart(
            categories, {"detectors": [summary["detectors"].get(c, 0) for c in categories]},
            title=f"Layer {layer['name']}: detectors per category", ylabel="units"),
        "unique": charts.grouped_bar_chart(
            categories, unique, title=f"Layer {layer['name']}: unique detectors per category", ylabel="labels"),
    }


def _best_units(layer: dict[str, Any]) -> list[dict[str, Any]]:
    return sorted(layer.get("units", []), key=lambda u: (-u["iou"], u["unit"]))[:BEST_UNITS]


def _write_model(env: jinja2.Environment, out: Path, entry: Entry) -> None:
    """The entry's page and its charts in ``out/<entry.page>``."""
    page = out / entry.page
    categories = ordered_categories(entry.results["protocol"]["categories"])
    layers = []
    for i, layer in enumerate(entry.results["layers"]):
        files = {}
        for name, svg in _layer_charts(layer, categories).items():
            files[name] = f"layer{i}-{name}.svg"
            atomic.write_text(page / files[name], svg)
        layers.append({"layer": layer, "charts": files, "best": _best_units(layer)})
    overview = None
    if len(layers) > 1:
        overview = "layers.svg"
        atomic.write_text(page / overview, charts.stacked_category_chart(
            [layer["name"] for layer in entry.results["layers"]],
            _stacks([layer["summary"] for layer in entry.results["layers"]], categories),
            title="Unique detectors per layer (per-category convention)",
            ylabel="unique detectors",
        ))
    root = "../" * entry.page.count("/")
    html = env.get_template("model.html.j2").render(
        entry=entry, r=entry.results, layers=layers, overview=overview, model_categories=categories, root=root,
        latest=entry.versions[0],
    )
    atomic.write_text(page / "index.html", html)


def _interval(layer: dict[str, Any], key: str) -> list[Any]:
    """[low, high] of a layer's count over all categories when the results carry intervals, else two blanks."""
    ci = ((layer.get("intervals") or {}).get(key) or {}).get("all")
    return list(ci) if ci else ["", ""]


def table_csv(site: Site) -> str:
    """The table as CSV: one row per (line, layer); ``rank`` only on the ranked (last) layer of a ranked line;
    ``unique_low`` / ``unique_high``: the bootstrap interval of ``unique`` where the results carry one. Written by
    the one CSV writer (:func:`benchmark.tables.to_csv`): submitted text cannot become a spreadsheet formula."""
    columns = ["rank", "model", "layer", "ranked_layer", "training_data", "architecture", "units", "detectors",
               "detector_fraction", "unique", "unique_low", "unique_high",
               *[f"unique_{c}" for c in protocol.CATEGORIES], "protocol", "source", "verified", "created", "file",
               "sha256", "page"]
    rows = []
    for e in site.entries:
        for layer in e.results["layers"]:
            s, last = layer["summary"], layer is e.layer
            rows.append(dict(zip(columns, [
                e.rank if last and e.rank is not None else "", e.results["name"], layer["name"], int(last),
                e.results["model"].get("training_data") or "", e.results["model"].get("architecture") or "",
                s["units"], s["detectors"]["all"], f"{s['detector_fraction']:.6f}", s["unique_per_category"]["all"],
                *_interval(layer, "unique_per_category"),
                *[s["unique_per_category"].get(c, "") for c in protocol.CATEGORIES],
                protocol.LEADERBOARD if e.ranked else protocol.OTHER_PROTOCOL, e.kind, int(e.verified is not None),
                e.results["created"], e.file, e.sha256, e.page + "index.html",
            ], strict=True)))
    return to_csv(rows, columns)


def write_site(site: Site, directory: Path, dest: Path, release: Mapping[str, Any] | None = None) -> None:
    """Render ``site`` (loaded from the submissions ``directory``) into the new, empty directory ``dest``.

    ``release``: the release record when this is a release snapshot (its index says so).
    """
    env = _environment()
    dest.mkdir(parents=True, exist_ok=True)
    atomic.write_text(dest / "charts" / "unique-detectors.svg", _index_chart(site.entries))
    for entry in site.entries + site.older:
        _write_model(env, dest, entry)
        atomic.write_bytes(dest / "submissions" / entry.file, (directory / entry.file).read_bytes())
    atomic.write_text(dest / CSV_FILE, table_csv(site))
    atomic.write_text(dest / "index.html", env.get_template("index.html.j2").render(site=site, release=release))


def build(directory: str | os.PathLike[str], out: str | os.PathLike[str],
          verified: Mapping[str, Mapping[str, Any]] | None = None) -> Site:
    """Write the site to ``out`` (replaced only when complete); raises when no submission is valid."""
    directory, out = Path(directory), Path(out)
    site = load(directory, verified)
    if not site.entries:
        raise BrodenError(
            f"{directory}: no valid submissions ({len(site.rejected)} rejected); nothing to build", exit_code=1
        )
    with atomic.atomic_path(out, is_dir=True) as tmp:
        write_site(site, directory, tmp)
    return site


RELEASE_FILE = "release.json"
RELEASE_SCHEMA = "leaderboard-release/1"
RELEASE_NAME = re.compile(r"v[0-9]+(\.[0-9]+)*")


def release_record(site: Site, name: str) -> dict[str, Any]:
    """What a release lists: every entry (latest versions in table order, then older ones) with the file's sha256,
    the harness version that scored it (measured entries) and its dataset, plus the harness that built the release."""
    from broden.version import __version__

    def item(e: Entry) -> dict[str, Any]:
        return {
            "file": e.file, "sha256": e.sha256, "name": e.results["name"], "latest": not e.version,
            "rank": e.rank, "protocol": protocol.LEADERBOARD if e.ranked else protocol.OTHER_PROTOCOL,
            "kind": e.kind, "layers": [layer["name"] for layer in e.results["layers"]],
            "unique": e.summary["unique_per_category"]["all"], "detectors": e.summary["detectors"]["all"],
            "dataset": {"name": e.results["dataset"]["name"], "fingerprint": e.results["dataset"]["fingerprint"]},
            "harness_version": (e.results.get("environment") or {}).get("broden_version"),
            "verified": e.verified is not None, "page": e.page,
        }

    return {
        "schema": RELEASE_SCHEMA, "release": name,
        "created": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "harness_version": __version__,
        "entries": [item(e) for e in site.entries + site.older],
        "rejected": [r.file for r in site.rejected],
    }


def build_release(directory: str | os.PathLike[str], releases: str | os.PathLike[str], name: str,
                  verified: Mapping[str, Mapping[str, Any]] | None = None) -> tuple[Site, Path]:
    """Write the release snapshot ``releases/<name>/`` (the site plus ``release.json``), read-only files, once.

    An existing release of that name is never touched: the call raises before doing any work, and also if the
    name appears while it works.
    """
    if not RELEASE_NAME.fullmatch(name):
        raise BrodenError(f"--release {name!r}: name releases v1, v2, ... (or v1.1); a release is cited by its name")
    dest = Path(releases) / name
    taken = f"{dest}: release {name} exists and releases never change; choose the next name"
    if dest.exists() or dest.is_symlink():
        raise BrodenError(taken, exit_code=1)
    directory = Path(directory)
    site = load(directory, verified)
    if not site.entries:
        raise BrodenError(f"{directory}: no valid submissions ({len(site.rejected)} rejected); nothing to release",
                          exit_code=1)
    record = release_record(site, name)
    try:
        with atomic.atomic_path(dest, is_dir=True, replace=False) as tmp:
            write_site(site, directory, tmp, release=record)
            atomic.write_json(tmp / RELEASE_FILE, record)
            for path in tmp.rglob("*"):
                if path.is_file():
                    path.chmod(0o444)
    except FileExistsError:
        raise BrodenError(taken, exit_code=1) from None
    return site, dest
