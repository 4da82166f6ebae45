"""SVG charts for dissection reports, comparisons and the leaderboard, drawn by matplotlib.

Every function returns SVG text and is deterministic: the same inputs give the same bytes (fixed hash salt, no
date), so regenerated reports diff cleanly. Text stays text (searchable, small) and is never parsed as mathtext, so
model and label names (untrusted input) are drawn literally. No pyplot and no global backend change: importing
this module does not disturb a user's own plotting.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence

from matplotlib import rc_context
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from broden.utils.text import clean, clean_svg

#: One fixed colour per Broden category, the same in every chart.
CATEGORY_COLORS = {
    "object": "#4e79a7",
    "scene": "#59a14f",
    "part": "#f28e2b",
    "material": "#b07aa1",
    "texture": "#e15759",
    "color": "#edc948",
}
_FALLBACK_COLORS = ("#76b7b2", "#9c755f", "#bab0ac", "#ff9da7", "#86bcb6", "#d37295")
_SERIES_COLORS = (
    "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
    "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac",
)

_RC = {
    "svg.hashsalt": "broden",
    "svg.fonttype": "none",
    "text.parse_math": False,
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
}


def category_color(name: str) -> str:
    """The fixed colour of a Broden category; other names get a stable colour derived from their spelling."""
    if name in CATEGORY_COLORS:
        return CATEGORY_COLORS[name]
    return _FALLBACK_COLORS[sum(name.encode("utf-8")) % len(_FALLBACK_COLORS)]


def series_color(index: int) -> str:
    """Colour of the ``index``-th series (model, checkpoint) in grouped bars and line charts."""
    return _SERIES_COLORS[index % len(_SERIES_COLORS)]


def _texts(labels: Sequence[str]) -> list[str]:
    """Untrusted names (models, layers, labels) as chart text: no control characters or bidi overrides."""
    return [clean(str(s)) for s in labels]


def _svg(fig: Figure) -> str:
    """The figure as SVG text, checked to parse (:func:`broden.utils.text.clean_svg`)."""
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None}, bbox_inches="tight")
    return clean_svg(buf.getvalue())


def _new_figure(width: float, height: float) -> Figure:
    return Figure(figsize=(width, height), dpi=100)


def _x_labels(ax, labels: Sequence[str]) -> None:
    """Category-axis labels, slanted when there are many so long names (layers, checkpoints) do not overlap."""
    slanted = len(labels) > 6
    ax.set_xticks(range(len(labels)), _texts(labels), rotation=45 if slanted else 0,
                  ha="right" if slanted else "center")


def _finish(fig: Figure, ax, *, title: str, value_label: str, legend: bool, value_axis: str = "y") -> str:
    """The ending every chart shares: whole-number ticks and the label on the value axis, title, legend, SVG."""
    if value_axis == "y":
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(clean(value_label))
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel(clean(value_label))
    ax.set_title(clean(title), loc="left")
    if legend:
        ax.legend(frameon=False, fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return _svg(fig)


def category_bar_chart(
    labels: Sequence[str], counts: Sequence[int], *, title: str, color: str = "#4e79a7", ylabel: str = "units"
) -> str:
    """One bar per concept, in the given order: the paper's per-layer histogram of detectors per concept."""
    if len(labels) != len(counts):
        raise ValueError("labels and counts must have the same length")
    with rc_context(_RC):
        fig = _new_figure(max(3.0, 0.2 * len(labels) + 1.0), 2.4)
        ax = fig.add_subplot()
        ax.bar(range(len(labels)), counts, color=color, width=0.75)
        ax.set_xticks(range(len(labels)), _texts(labels), rotation=90, fontsize=8)
        ax.set_xlim(-0.75, max(len(labels), 1) - 0.25)
        return _finish(fig, ax, title=title, value_label=ylabel, legend=False)


def grouped_bar_chart(
    groups: Sequence[str],
    series: Mapping[str, Sequence[float | None]],
    *,
    title: str,
    ylabel: str,
) -> str:
    """Bars side by side: for each group (e.g. category) one bar per series (e.g. model); ``None`` draws no bar."""
    n = max(len(series), 1)
    width = 0.8 / n
    with rc_context(_RC):
        fig = _new_figure(max(4.0, len(groups) * (0.35 * n + 0.5) + 1.5), 3.2)
        ax = fig.add_subplot()
        for i, (name, values) in enumerate(series.items()):
            if len(values) != len(groups):
                raise ValueError(f"series {name!r} has {len(values)} values for {len(groups)} groups")
            xs = [g + (i - (n - 1) / 2) * width for g, v in enumerate(values) if v is not None]
            ys = [v for v in values if v is not None]
            ax.bar(xs, ys, width=width * 0.95, label=clean(name), color=series_color(i))
        ax.set_xticks(range(len(groups)), _texts(groups))
        return _finish(fig, ax, title=title, value_label=ylabel, legend=bool(series))


def stacked_category_chart(
    bars: Sequence[str],
    stacks: Mapping[str, Sequence[float]],
    *,
    title: str,
    ylabel: str,
    horizontal: bool = False,
) -> str:
    """One bar per item (layer, model), stacked by category in category colours: the paper's architecture figure.

    ``horizontal`` lays the bars out as rows (long model names, many entries); ``ylabel`` names the value axis.
    """
    with rc_context(_RC):
        if horizontal:
            fig = _new_figure(6.5, max(1.8, 0.28 * len(bars) + 1.0))
        else:
            fig = _new_figure(max(3.5, 0.45 * len(bars) + 2.0), 3.2)
        ax = fig.add_subplot()
        base = [0.0] * len(bars)
        for category, values in stacks.items():
            if len(values) != len(bars):
                raise ValueError(f"stack {category!r} has {len(values)} values for {len(bars)} bars")
            draw = ax.barh if horizontal else ax.bar
            kwargs = {"left": base} if horizontal else {"bottom": base}
            draw(range(len(bars)), values, 0.7, label=clean(category), color=category_color(category), **kwargs)
            base = [b + v for b, v in zip(base, values)]
        if horizontal:
            ax.set_yticks(range(len(bars)), _texts(bars))
            ax.invert_yaxis()
        else:
            _x_labels(ax, bars)
        return _finish(fig, ax, title=title, value_label=ylabel, legend=bool(stacks),
                       value_axis="x" if horizontal else "y")


def line_chart(
    x_labels: Sequence[str],
    series: Mapping[str, Sequence[float | None]],
    *,
    title: str,
    xlabel: str,
    ylabel: str,
    colors: Mapping[str, str] | None = None,
) -> str:
    """One line per series over ordered x positions (checkpoints); ``None`` leaves a gap at that point."""
    with rc_context(_RC):
        fig = _new_figure(max(4.5, 0.6 * len(x_labels) + 2.5), 3.2)
        ax = fig.add_subplot()
        for i, (name, values) in enumerate(series.items()):
            if len(values) != len(x_labels):
                raise ValueError(f"series {name!r} has {len(values)} values for {len(x_labels)} points")
            ys = [float("nan") if v is None else v for v in values]
            color = (colors or {}).get(name, series_color(i))
            ax.plot(range(len(x_labels)), ys, marker="o", markersize=3.5, label=clean(name), color=color)
        _x_labels(ax, x_labels)
        ax.set_ylim(bottom=0)
        ax.set_xlabel(clean(xlabel))
        return _finish(fig, ax, title=title, value_label=ylabel, legend=bool(series))
