"""Build the static leaderboard site from the submission files.

Every ``*.json`` in the submissions directory is validated; invalid ones are listed in a "rejected submissions"
section (and returned to the caller, which prints them) and skipped, so one bad pull request cannot take the site
down. The output is plain files (index.html, one page per model, SVG charts) with CSS and JS inlined: it works from
``file://`` and from any static host, and loads nothing from elsewhere.

Ranking: entries on the leaderboard protocol (see ``leaderboard.protocol``) are ranked by the total of unique
detectors under the paper's per-category convention (the authors' release rule), then by detectors; entries on
another protocol are shown below, unranked. A submission with several layers is represented in the table by its
last layer, the one nearest the output, which is the layer the paper compares across networks; its model page
shows every layer.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2

from benchmark import html
from benchmark.html import charts
from benchmark.protocol import ordered_categories
from broden.errors import BrodenError
from broden.utils import atomic
from broden.utils.filenames import distinct_names
from leaderboard import protocol
from leaderboard.validate import validate_submission

#: The git-tracked submissions, shipped as package data so the site builds from an installed package too.
SUBMISSIONS = Path(__file__).resolve().parent / "submissions"
#: File in every built site; an existing non-empty output directory without it is never replaced.
BEST_UNITS = 20


@dataclass
class Entry:
    """One valid submission as the site shows it."""

    file: str
    slug: str
    results: dict[str, Any]
    deviations: list[str]
    rank: int | None = None

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
    def kind(self) -> str:
        return self.results["provenance"]["kind"]


@dataclass
class Rejected:
    file: str
    errors: list[str]


@dataclass
class Site:
    """What a build produced (or would produce): the ranked entries and the rejected files."""

    entries: list[Entry] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)


def load(directory: str | os.PathLike[str]) -> Site:
    """Validate every submission in ``directory`` and rank the valid ones."""
    directory = Path(directory)
    if not directory.is_dir():
        raise BrodenError(f"{directory}: no such submissions directory")
    site = Site()
    valid = []
    for path in sorted(directory.glob("*.json")):
        verdict = validate_submission(path)
        if verdict.ok and verdict.results is not None:
            valid.append((path, verdict))
        else:
            site.rejected.append(Rejected(path.name, verdict.errors))
    pages = distinct_names([path.stem for path, _ in valid], "model")
    site.entries = [Entry(path.name, pages[path.stem], v.results, v.warnings) for path, v in valid]
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


def _http(url: Any) -> str | None:
    """``url`` when it is an http(s) link; anything else is shown as text, never as a link."""
    return url if isinstance(url, str) and url.startswith(("https://", "http://")) else None


def _environment() -> jinja2.Environment:
    env = html.environment("leaderboard")
    static = resources.files("leaderboard").joinpath("static")
    env.globals.update(
        css=static.joinpath("leaderboard.css").read_text(encoding="utf-8"),
        sort_js=static.joinpath("sort.js").read_text(encoding="utf-8"),
        categories=protocol.CATEGORIES,
        protocol=protocol,
        http=_http,
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


def _layer_chart(layer: dict[str, Any], categories: list[str]) -> str:
    summary = layer["summary"]
    series = {"detectors": [summary["detectors"].get(c, 0) for c in categories],
              "unique (per-category)": [summary["unique_per_category"].get(c, 0) for c in categories]}
    if "unique_top_label" in summary:
        series["unique (top-label)"] = [summary["unique_top_label"].get(c, 0) for c in categories]
    return charts.grouped_bar_chart(categories, series, title=f"Layer {layer['name']}", ylabel="units / labels")


def _best_units(layer: dict[str, Any]) -> list[dict[str, Any]]:
    return sorted(layer.get("units", []), key=lambda u: (-u["iou"], u["unit"]))[:BEST_UNITS]


def _write_model(env: jinja2.Environment, out: Path, entry: Entry) -> None:
    categories = ordered_categories(entry.results["protocol"]["categories"])
    layers = []
    for i, layer in enumerate(entry.results["layers"]):
        chart = f"{entry.slug}-layer{i}.svg"
        atomic.write_text(out / "charts" / chart, _layer_chart(layer, categories))
        layers.append({"layer": layer, "chart": f"../charts/{chart}", "best": _best_units(layer)})
    overview = None
    if len(layers) > 1:
        overview = f"{entry.slug}-layers.svg"
        atomic.write_text(out / "charts" / overview, charts.stacked_category_chart(
            [layer["name"] for layer in entry.results["layers"]],
            _stacks([layer["summary"] for layer in entry.results["layers"]], categories),
            title="Unique detectors per layer (per-category convention)",
            ylabel="unique detectors",
        ))
        overview = f"../charts/{overview}"
    html = env.get_template("model.html.j2").render(
        entry=entry, r=entry.results, layers=layers, overview=overview, model_categories=categories
    )
    atomic.write_text(out / "models" / f"{entry.slug}.html", html)


def build(directory: str | os.PathLike[str], out: str | os.PathLike[str]) -> Site:
    """Write the site to ``out`` (replaced only when complete); raises when no submission is valid."""
    out = Path(out)
    site = load(directory)
    if not site.entries:
        raise BrodenError(
            f"{directory}: no valid submissions ({len(site.rejected)} rejected); nothing to build", exit_code=1
        )
    env = _environment()
    with atomic.atomic_path(out, is_dir=True) as tmp:
        tmp.mkdir(parents=True, exist_ok=True)
        atomic.write_text(tmp / "charts" / "unique-detectors.svg", _index_chart(site.entries))
        for entry in site.entries:
            _write_model(env, tmp, entry)
        atomic.write_text(tmp / "index.html", env.get_template("index.html.j2").render(site=site))
    return site
