"""Store a validated submission under its canonical name, ready for a pull request.

The name is ``<model>__<layers>__<hash>.json``: readable in a directory listing, and the hash covers what the
leaderboard shows (model, dataset, protocol, layers), so a re-scored model that gives different numbers gets the same
prefix but a new name, and re-running the same submission finds its file already there. Timestamps and timings are
left out of the hash, so scoring again with identical results lands on the same name; a different file of that name
is replaced only with ``force``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
from pathlib import Path
from typing import Any

from broden.errors import BrodenError
from broden.utils import atomic
from broden.utils.filenames import slug
from leaderboard.validate import Verdict, validate_submission

HASHED_FIELDS = ("name", "model", "dataset", "protocol", "layers")


def content_hash(results: dict[str, Any]) -> str:
    shown = {k: results.get(k) for k in HASHED_FIELDS}
    return hashlib.sha256(json.dumps(shown, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:10]


def canonical_name(results: dict[str, Any]) -> str:
    layers = slug("+".join(layer["name"] for layer in results["layers"]), limit=40)
    return f"{slug(results['name'])}__{layers}__{content_hash(results)}.json"


def serialize(results: dict[str, Any]) -> str:
    """The stored form: one key per line, so pull-request diffs are reviewable."""
    return json.dumps(results, indent=1, ensure_ascii=False, allow_nan=False) + "\n"


def store(results: dict[str, Any], directory: str | os.PathLike[str], *, force: bool = False) -> tuple[Path, bool]:
    """Write ``results`` under its canonical name; returns the path and whether the file changed."""
    dest = Path(directory) / canonical_name(results)
    text = serialize(results)
    if dest.exists():
        if dest.read_text(encoding="utf-8", errors="replace") == text:
            return dest, False
        if not force:
            raise BrodenError(
                f"{dest}: a different file of this name exists (same model and numbers, other metadata); "
                "pass --force to replace it",
                exit_code=1,
            )
    atomic.write_text(dest, text)
    return dest, True


def earlier_versions(dest: Path) -> list[Path]:
    """Other files of the same model and layers (a previous scoring the new one may replace)."""
    prefix = dest.name.rsplit("__", 1)[0] + "__"
    return sorted(p for p in dest.parent.glob(f"{prefix}*.json") if p != dest)


def submit(
    path: str | os.PathLike[str], directory: str | os.PathLike[str], *, force: bool = False
) -> tuple[Verdict, Path, bool]:
    """Validate ``path`` and store it; an invalid file raises with its first error and writes nothing."""
    verdict = validate_submission(path)
    if not verdict.ok or verdict.results is None:
        raise BrodenError(f"{path}: {verdict.errors[0]}", exit_code=1)
    if not Path(directory).is_dir():
        raise BrodenError(
            f"{directory}: no such directory; run this from the root of your clone of the repository, or pass --dir"
        )
    dest, changed = store(verdict.results, directory, force=force)
    return verdict, dest, changed


def pull_request_help(dest: Path, name: str) -> str:
    """What to do next, with the file's path as the user would type it."""
    try:
        shown = dest.resolve().relative_to(Path.cwd().resolve())
    except ValueError:
        shown = dest
    branch = f"leaderboard-{slug(name, limit=40)}"
    return f"""\
Next: open a pull request that adds this file.
  git checkout -b {branch}
  git add {shlex.quote(str(shown))}
  git commit -m {shlex.quote("Leaderboard: add " + name)}
  git push -u origin {branch}
GitHub opens the pull request with its template (.github/pull_request_template.md); fill in:
  - the model: paper, architecture, training data, the layer(s) dissected
  - the weights: a public URL and their sha256 (sha256sum WEIGHTS)
  - the model file you gave to 'benchmark score' (or how the model is loaded)
  - the licence under which the weights and the results may be published
The "Leaderboard submission" check validates the file and shows the rank changes; maintainers re-score
the model with 'leaderboard verify' before marking it verified (see CONTRIBUTING.md)."""
