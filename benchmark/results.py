"""Reading, validating and writing results files (schema ``broden-results/2``; ``broden-results/1`` still read).

Results are plain JSON so they can be diffed, reviewed in a pull request and published on the leaderboard; the
JSON Schemas shipped in ``benchmark/schema/results-v<N>.json`` are the contract between the scorer, the reports and
the leaderboard. A file is validated with the schema of the version it names; version 2 adds optional fields
(intervals, held-out results, seed, bootstrap and rotation settings) to version 1, so every reader handles both.
Version 1 is frozen for the files written with it; new fields go into the current version only. Parsing is
strict: NaN/Infinity and duplicate keys are rejected, because both would let two readers see different numbers
in the same file.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from broden.errors import BrodenError
from broden.utils import atomic

SCHEMA_VERSION = "broden-results/2"
#: Imported and reported results carry no field that version 2 added, and are still written as version 1 (so the
#: leaderboard's seed files, regenerated, stay byte-identical).
SUMMARY_SCHEMA_VERSION = "broden-results/1"
#: Every version a reader accepts, with its schema file under benchmark/schema/.
SCHEMA_FILES = {"broden-results/1": "results-v1.json", "broden-results/2": "results-v2.json"}
#: Results larger than this are refused before parsing (a 2048-unit layer with top images is about 3 MB).
MAX_RESULTS_BYTES = 64 * 1024 * 1024
#: Items of each list inside a layer (units, bootstrap replicates) that ``write_results(..., check_every_unit=False)``
#: validates.
UNITS_CHECKED_ON_WRITE = 16
RESULTS_SCHEMA_FILE = SCHEMA_FILES[SCHEMA_VERSION]
#: ``benchmark explain`` writes its formulas beside the results, in a file of its own schema.
EXPLANATIONS_FILE = "explanations.json"
EXPLANATIONS_SCHEMA_VERSION = "broden-explanations/1"
EXPLANATIONS_SCHEMA_FILE = "explanations-v1.json"


@cache
def schema(name: str = SCHEMA_VERSION) -> dict[str, Any]:
    """The JSON Schema of a results version (``broden-results/N``) or the file ``benchmark/schema/<name>``."""
    file = SCHEMA_FILES.get(name, name)
    return json.loads(resources.files("benchmark").joinpath(f"schema/{file}").read_text())


def _inline_refs(node: Any, defs: dict[str, Any]) -> Any:
    """The schema with every local ``$ref`` replaced by its definition (it has no recursion).

    jsonschema resolves references on every visit; a 2048-unit results file visits them ~50,000 times, and inlining
    halves validation time.
    """
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            merged = {k: v for k, v in node.items() if k != "$ref"}
            return {**_inline_refs(defs[ref.rsplit("/", 1)[1]], defs), **merged}
        return {k: _inline_refs(v, defs) for k, v in node.items() if k != "$defs"}
    if isinstance(node, list):
        return [_inline_refs(v, defs) for v in node]
    return node


#: RFC 3339 date-time, the JSON Schema ``date-time`` format (jsonschema checks it only with an extra package)
_DATE_TIME = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})")


def _is_date_time(value: object) -> bool:
    if not isinstance(value, str):
        return True  # the type is the schema's business
    if not _DATE_TIME.fullmatch(value):
        return False
    try:
        datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
    except ValueError:  # 2026-02-30, 25:00, ...
        return False
    return True


@cache
def _validator(name: str = RESULTS_SCHEMA_FILE) -> Any:
    import jsonschema

    raw = schema(name)
    formats = jsonschema.FormatChecker()
    formats.checks("date-time")(_is_date_time)
    return jsonschema.Draft202012Validator(_inline_refs(raw, raw["$defs"]), format_checker=formats)


def _check_layers(obj: dict[str, Any]) -> str | None:
    """What the schema cannot say: layer names are distinct, unit indices lie in 0..num_units-1, each once."""
    names: set[str] = set()
    for i, layer in enumerate(obj["layers"]):
        if layer["name"] in names:
            return f"$.layers[{i}].name: layer {layer['name']!r} appears twice"
        names.add(layer["name"])
        seen: set[int] = set()
        for j, unit in enumerate(layer.get("units", [])):
            if unit["unit"] >= layer["num_units"]:
                return f"$.layers[{i}].units[{j}].unit: {unit['unit']} is not below num_units {layer['num_units']}"
            if unit["unit"] in seen:
                return f"$.layers[{i}].units[{j}].unit: unit {unit['unit']} appears twice"
            seen.add(unit["unit"])
    return None


def _json_path(parts: Any) -> str:
    path = "$"
    for p in parts:
        path += f"[{p}]" if isinstance(p, int) else f".{p}"
    return path


def validate_results(obj: Any, where: str = "results") -> None:
    """Raise a one-line BrodenError naming the JSON path and the reason of the first schema violation."""
    validate_document(obj, RESULTS_SCHEMA_FILE, where)


def validate_document(obj: Any, schema_file: str, where: str) -> None:
    """:func:`validate_results` against the schema ``benchmark/schema/<schema_file>``."""
    import jsonschema

    if schema_file in SCHEMA_FILES.values():  # a results file is checked against the version it names
        version = obj.get("schema") if isinstance(obj, dict) else None
        if isinstance(version, str) and version not in SCHEMA_FILES:
            raise BrodenError(f"{where}: $.schema: {version!r} is not a results schema this version reads "
                              f"({', '.join(SCHEMA_FILES)}); upgrade broden")
        schema_file = SCHEMA_FILES.get(version, schema_file)
    errors = sorted(_validator(schema_file).iter_errors(obj),
                    key=lambda e: (len(e.absolute_path), list(map(str, e.absolute_path))))
    if errors:
        err = jsonschema.exceptions.best_match(errors) or errors[0]
        message = err.message if len(err.message) <= 200 else err.message[:197] + "..."
        raise BrodenError(f"{where}: {_json_path(err.absolute_path)}: {message}")
    problem = _check_layers(obj) if str(obj.get("schema", "")).startswith("broden-results/") else None
    if problem:
        raise BrodenError(f"{where}: {problem}")


@dataclass(frozen=True)
class _Bad:
    """Placeholder the parser leaves where a value is not allowed, so the walk can report its JSON path."""

    reason: str


class _Object(dict):
    duplicate: str | None = None


def _pairs(items: list[tuple[str, Any]]) -> _Object:
    obj = _Object()
    for key, value in items:
        if key in obj and obj.duplicate is None:
            obj.duplicate = key
        obj[key] = value
    return obj


def _number(text: str) -> float | _Bad:
    value = float(text)
    return value if math.isfinite(value) else _Bad(f"{text} overflows to infinity")


def _find_bad(value: Any, parts: list[str | int]) -> str | None:
    """The first disallowed value (NaN, Infinity, duplicate key) as 'PATH: reason', depth first."""
    if isinstance(value, _Bad):
        return f"{_json_path(parts)}: {value.reason}"
    if isinstance(value, _Object):
        if value.duplicate is not None:
            return f"{_json_path(parts)}: duplicate key {value.duplicate!r}; each key may appear once"
        items: Any = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return None
    for key, child in items:
        if (found := _find_bad(child, parts + [key])) is not None:
            return found
    return None


def parse_json_strict(data: bytes, where: str) -> dict[str, Any]:
    """Parse a results file, rejecting by JSON path: NaN/Infinity, numbers that overflow, duplicate keys, text that
    is not UTF-8, and a top level that is not an object. Errors are one line: ``where: $.path: reason``."""
    try:
        obj = json.loads(
            data.decode("utf-8"),
            object_pairs_hook=_pairs,
            parse_constant=lambda name: _Bad(f"{name} is not allowed; use a finite number"),
            parse_float=_number,
            parse_int=lambda text: _number(text) if len(text) > 300 else int(text),
        )
        bad = _find_bad(obj, [])
    except UnicodeDecodeError as exc:
        raise BrodenError(f"{where}: $: not UTF-8 text (byte {exc.start}); a results file is a JSON file") from None
    except json.JSONDecodeError as exc:
        raise BrodenError(f"{where}: $: not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    except RecursionError:
        raise BrodenError(f"{where}: $: nested too deeply to be a results file") from None
    if bad:
        raise BrodenError(f"{where}: {bad}")
    if not isinstance(obj, dict):
        raise BrodenError(f"{where}: $: the top level is a {type(obj).__name__}, a results file is a JSON object")
    return obj


def load_results(path: str | os.PathLike[str], *, max_bytes: int = MAX_RESULTS_BYTES) -> dict[str, Any]:
    """Read and validate a results file."""
    return load_document(path, RESULTS_SCHEMA_FILE, "results", max_bytes=max_bytes)


def load_explanations(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and validate an explanations file (``benchmark explain``)."""
    return load_document(path, EXPLANATIONS_SCHEMA_FILE, "explanations")


def load_document(path: str | os.PathLike[str], schema_file: str, what: str, *,
                  max_bytes: int = MAX_RESULTS_BYTES) -> dict[str, Any]:
    """Read a JSON file strictly (:func:`parse_json_strict`) and validate it against ``schema_file``."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise BrodenError(f"{path}: cannot read {what} ({exc.strerror or exc}); check the path") from exc
    if not path.is_file():  # a directory, or a FIFO that would block the read forever
        raise BrodenError(f"{path}: not a regular file; give the path of a {what} JSON file")
    if size > max_bytes:
        raise BrodenError(f"{path}: {size} bytes is over the {max_bytes}-byte limit for a {what} file")
    obj = parse_json_strict(path.read_bytes(), str(path))
    validate_document(obj, schema_file, str(path))
    return obj


def write_results(path: str | os.PathLike[str], obj: dict[str, Any], *, check_every_unit: bool = True) -> Path:
    """Validate ``obj`` and write it atomically as compact JSON; an invalid object never reaches the disk.

    ``check_every_unit=False`` is for producers whose unit objects are already known to conform (the scorer's come
    from ``scoring.score_units``, the replicates from ``bootstrap``, both tested against the schema; the importer
    validates its own): every field of the document is checked, but of each list inside a layer (its units, each
    statistic's bootstrap replicates) only the first :data:`UNITS_CHECKED_ON_WRITE` items, because validating every
    unit and replicate of a wide layer costs more than tallying a small dataset. Readers always check everything.
    """
    return write_json(path, obj, RESULTS_SCHEMA_FILE, check_every_unit=check_every_unit)


def _first_items(value: Any, keep: int) -> Any:
    """``value`` with every list inside it cut to its first ``keep`` items (a copy of the containers only)."""
    if isinstance(value, list):
        return [_first_items(item, keep) for item in value[:keep]]
    if isinstance(value, dict):
        return {key: _first_items(item, keep) for key, item in value.items()}
    return value


def write_json(path: str | os.PathLike[str], obj: dict[str, Any], schema_file: str, *,
               check_every_unit: bool = True) -> Path:
    """Validate ``obj`` against ``schema_file`` and write it atomically as compact JSON (``check_every_unit``: as
    in :func:`write_results`, for documents with ``layers[].units``)."""
    if check_every_unit:
        validate_document(obj, schema_file, str(path))
    else:
        layers = [_first_items(layer, UNITS_CHECKED_ON_WRITE) for layer in obj.get("layers", [])]
        validate_document({**obj, "layers": layers}, schema_file, str(path))
    atomic.write_text(path, json.dumps(obj, separators=(",", ":"), allow_nan=False) + "\n")
    return Path(path)
