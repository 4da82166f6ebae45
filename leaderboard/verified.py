"""The maintainers' record of verified submissions: ``leaderboard/verified.json``, tracked in git.

A verification is keyed by the sha256 of the submission file's bytes, so it covers exactly the file that was
re-scored: a submission edited afterwards (or a submitter's own copy with other numbers) has another hash and no
badge. Only maintainers add records (``leaderboard verify ... --record NAME``); the pull-request workflow flags a pull
request that edits this file. The format::

    {"schema": "leaderboard-verified/1",
     "verified": {"<sha256 hex>": {"file": "...", "name": "...", "date": "YYYY-MM-DD", "by": "...",
                                   "dataset": "sha256:...", "device": "cpu", "harness": "0.1.0"}}}
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from benchmark.results import parse_json_strict
from broden.errors import BrodenError
from broden.utils import atomic

#: The git-tracked record the site reads by default.
VERIFIED = Path(__file__).resolve().parent / "verified.json"
SCHEMA = "leaderboard-verified/1"
RECORD_FIELDS = ("file", "name", "date", "by", "dataset", "device", "harness")
_SHA256 = re.compile(r"[0-9a-f]{64}")


def load_verified(path: str | os.PathLike[str]) -> dict[str, dict[str, Any]]:
    """The records by submission sha256; a missing file is an empty record, a malformed one an error."""
    path = Path(path)
    if not path.exists():
        return {}
    try:
        obj = parse_json_strict(path.read_bytes(), str(path))
    except OSError as exc:
        raise BrodenError(f"{path}: cannot read the verification record ({exc.strerror or exc})") from None
    fix = f"fix {path} (format: see leaderboard/verified.py) or restore it from git"
    if not isinstance(obj, dict) or obj.get("schema") != SCHEMA or not isinstance(obj.get("verified"), dict):
        raise BrodenError(f"{path}: not a verification record (schema {SCHEMA!r} with a 'verified' object); {fix}")
    for key, record in obj["verified"].items():
        if not _SHA256.fullmatch(key):
            raise BrodenError(f"{path}: verified key {key!r} is not a lower-case sha256 hex digest; {fix}")
        if not isinstance(record, dict) or not all(isinstance(record.get(f), str) for f in ("file", "date", "by")):
            raise BrodenError(f"{path}: verified.{key[:12]}... needs string fields file, date and by; {fix}")
    return obj["verified"]


def add_record(path: str | os.PathLike[str], sha256: str, record: dict[str, Any]) -> None:
    """Add (or replace) the record for ``sha256`` and rewrite the file atomically, keys sorted for clean diffs."""
    records = load_verified(path)
    records[sha256] = {k: record[k] for k in RECORD_FIELDS if k in record}
    atomic.write_json(path, {"schema": SCHEMA, "verified": dict(sorted(records.items()))}, indent=1)
