"""Everything that becomes HTML: one Jinja environment, SVG files, charts, overlays, the report, the comparison.

The dissection report (:mod:`benchmark.html.report`), the comparison pages (:mod:`benchmark.html.compare`) and the
leaderboard site (``leaderboard.site``) all render through :func:`environment`, so escaping rules (every model
name, label and metadata value is untrusted input), undefined-variable errors and the number filters are the same
everywhere. Templates live in ``benchmark/html/templates/`` and, for the site, ``leaderboard/templates/``.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from broden.version import __version__


@lru_cache(maxsize=None)
def environment(package: str = "benchmark.html", templates: str = "templates"):
    """The Jinja environment for the templates in ``package``/``templates`` (autoescaped, strict undefined)."""
    from jinja2 import Environment, PackageLoader, StrictUndefined
    from markupsafe import Markup

    from broden.utils.text import clean

    def finalize(value: Any) -> Any:
        """Every ``{{ value }}``: control characters and bidi overrides (U+202E) out, before autoescaping."""
        if isinstance(value, Markup):
            return Markup(clean(str(value), keep_newlines=True))
        return clean(value, keep_newlines=True) if isinstance(value, str) else value

    env = Environment(
        finalize=finalize,
        loader=PackageLoader(package, templates),
        autoescape=True,  # model names, labels and metadata are untrusted input
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["iou"] = lambda v: "—" if v is None else f"{v:.3f}"
    env.filters["pct"] = lambda v: "—" if v is None else f"{100 * v:.1f}%"
    env.filters["count"] = lambda v: "—" if v is None else str(v)
    env.filters["interval"] = lambda v: "" if v is None else f"[{v[0]}, {v[1]}]"
    env.globals["version"] = __version__
    return env


def render(template: str, **context: Any) -> str:
    """Render one of ``benchmark/html/templates`` (the report and the comparison pages)."""
    return environment().get_template(template).render(**context)


def write_svg(root: Path, rel: str, svg: str) -> str:
    """Write chart ``svg`` to ``root/rel`` (parents created) and return ``rel``, the page's link to it."""
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(svg, encoding="utf-8")
    return rel
