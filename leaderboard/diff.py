"""What a change to the submissions does to the leaderboard: entries added, changed or removed, and rank moves.

Two submission directories (typically main's and a pull request's) are loaded and ranked exactly as the site
builds them (``leaderboard.site.load``). Entries are matched by :attr:`Entry.key` (model name and layers), so a
re-scored model is a *change* of its line, not an addition plus a removal. The result renders as a GitHub-flavoured
Markdown report for a pull request's job summary; every piece of submitted text in it is escaped, so a submission
cannot inject markup or links into the report.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from leaderboard.site import Entry, Rejected, Site

ADDED, CHANGED, REMOVED = "added", "changed", "removed"


@dataclass
class Change:
    """One leaderboard line that the head adds, changes or removes (``base`` / ``head`` is None when absent)."""

    status: str
    base: Entry | None
    head: Entry | None

    @property
    def entry(self) -> Entry:
        """The entry to describe: the head's, or the base's for a removal."""
        entry = self.head or self.base
        assert entry is not None
        return entry


@dataclass
class SiteDiff:
    """Differences between a base and a head site, in the head's table order (removals last)."""

    changes: list[Change] = field(default_factory=list)
    moved: list[tuple[Entry, Entry]] = field(default_factory=list)  # unchanged entries whose rank changed
    rejected: list[Rejected] = field(default_factory=list)  # the head's rejected files
    base_entries: int = 0
    head_entries: int = 0


def compare(base: Site, head: Site) -> SiteDiff:
    """Match ``base`` and ``head`` entries by key and list what the head adds, changes, removes and re-ranks."""
    before = {e.key: e for e in base.entries}
    after = {e.key: e for e in head.entries}
    out = SiteDiff(rejected=list(head.rejected), base_entries=len(base.entries), head_entries=len(head.entries))
    for entry in head.entries:
        old = before.get(entry.key)
        if old is None:
            out.changes.append(Change(ADDED, None, entry))
        elif old.results != entry.results:
            out.changes.append(Change(CHANGED, old, entry))
        elif old.rank != entry.rank:
            out.moved.append((old, entry))
    out.changes += [Change(REMOVED, e, None) for e in base.entries if e.key not in after]
    return out


_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+!|~-])")


def escape(text: object) -> str:
    """``text`` as literal Markdown table-cell content: HTML and Markdown syntax escaped, on one line."""
    plain = " ".join(str(text).split())
    plain = plain.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _SPECIAL.sub(r"\\\1", plain)


def _rank(entry: Entry | None) -> str:
    if entry is None:
        return "–"
    return str(entry.rank) if entry.rank is not None else "unranked"


def _count(change: Change, key: str) -> str:
    value = change.entry.summary[key]["all"]
    if change.status == CHANGED and change.base is not None:
        previous = change.base.summary[key]["all"]
        if previous != value:
            return f"{value} (was {previous})"
    return str(value)


def _protocol(entry: Entry) -> str:
    return "leaderboard" if entry.ranked else "other protocol: " + "; ".join(entry.deviations)


def markdown(diff: SiteDiff) -> str:
    """The report: a table of added / changed / removed lines, a table of rank moves, and the rejected files."""
    lines = ["## Leaderboard changes", "",
             f"main: {diff.base_entries} entries; this pull request: {diff.head_entries} entries.", ""]
    if diff.changes:
        lines += ["| Change | Model | Layer | Unique detectors | Detectors | Rank (main → PR) | File | Protocol |",
                  "| --- | --- | --- | ---: | ---: | --- | --- | --- |"]
        for c in diff.changes:
            e = c.entry
            lines.append(
                f"| {c.status} | {escape(e.results['name'])} | {escape(e.layer['name'])} "
                f"| {_count(c, 'unique_per_category')} | {_count(c, 'detectors')} "
                f"| {_rank(c.base)} → {_rank(c.head)} | {escape(e.file)} | {escape(_protocol(e))} |"
            )
    else:
        lines.append("No leaderboard line is added, changed or removed.")
    if diff.moved:
        lines += ["", "### Rank changes of other entries", "", "| Model | Layer | Rank (main → PR) |",
                  "| --- | --- | --- |"]
        lines += [f"| {escape(h.results['name'])} | {escape(h.layer['name'])} | {_rank(b)} → {_rank(h)} |"
                  for b, h in diff.moved]
    if diff.rejected:
        lines += ["", "### Rejected files", "", "These files fail `leaderboard validate` and are left off the site:", ""]
        lines += [f"- {escape(r.file)}: {escape('; '.join(r.errors))}" for r in diff.rejected]
    return "\n".join(lines) + "\n"
