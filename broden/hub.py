"""Broden datasets on the Hugging Face Hub: thin wrappers of ``huggingface_hub``, nothing hand-written over HTTP.

A Broden dataset folder *is* a Hub dataset repository (README.md card, ``data/*.parquet``, ``labels/``,
``broden.json``), so pushing uploads the folder as it is and pulling is ``snapshot_download``:

- :func:`resolve` turns ``hf://ORG/NAME[@REV]`` (or ``hf://datasets/ORG/NAME``, or a bare ``ORG/NAME`` where no
  such local folder exists) into the local snapshot folder of the Hub cache (``HF_HUB_CACHE``; resumable,
  downloaded once per commit), with the commit it resolved to;
- :func:`pull` copies a snapshot to a folder of your own and records the repo and commit in its ``broden.json``;
- :func:`push` creates the repo if needed and uploads the folder with ``HfApi.upload_folder`` (chunked and
  resumable by the library; the token comes from ``HF_TOKEN`` or ``hf auth login``, as everywhere in the HF tools).

Everything network-related is in these three calls of ``huggingface_hub``; the tests run them against a folder
laid out as the Hub cache (``HF_HUB_OFFLINE=1``, the library's own offline path) and a stand-in for the two upload
calls, since the Hub cannot be reached from the test machines.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Any

from broden.errors import BrodenError
from broden.utils import atomic

REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
#: What a streaming load downloads: everything but the shards, which are then read over HTTP as they are used.
METADATA_PATTERNS = ["README.md", "broden.json", "labels/*"]


def parse_hub_id(source: str) -> tuple[str, str | None] | None:
    """``(repo_id, revision)`` of ``hf://[datasets/]ORG/NAME[@REV]``, or None for anything else."""
    if not source.startswith("hf://"):
        return None
    rest = source[len("hf://"):]
    rest = rest.removeprefix("datasets/")
    repo_id, _, revision = rest.partition("@")
    if not REPO_ID.match(repo_id):
        raise BrodenError(f"{source}: not a Hub dataset address; write hf://ORG/NAME or hf://ORG/NAME@REVISION")
    return repo_id, revision or None


def _hub_error(repo_id: str, revision: str | None, exc: Exception) -> BrodenError:
    at = f" at revision {revision}" if revision else ""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return BrodenError(
        f"hf://{repo_id}{at}: cannot fetch the dataset from the Hugging Face Hub ({type(exc).__name__}: {first}); "
        "check the repo id and revision, your token (HF_TOKEN) for a private repo, and the network "
        "(HF_HUB_OFFLINE=1 uses the cache only)"
    )


def snapshot(repo_id: str, revision: str | None = None, *, allow_patterns: list[str] | None = None) -> Path:
    """The local snapshot folder of dataset repo ``repo_id`` at ``revision`` in the Hub cache (downloaded if
    missing, resuming partial files); its name is the commit hash."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    try:
        return Path(snapshot_download(repo_id, repo_type="dataset", revision=revision,
                                      allow_patterns=allow_patterns, library_name="broden"))
    except (HfHubHTTPError, LocalEntryNotFoundError, OSError, ValueError) as exc:
        raise _hub_error(repo_id, revision, exc) from exc


def resolve(source: str | os.PathLike[str], *, revision: str | None = None, metadata_only: bool = False
            ) -> tuple[Path, dict[str, Any] | None]:
    """The local folder of ``source`` and, for a Hub dataset, ``{"repo_id", "revision"}`` (the commit hash).

    A path that exists is local. ``hf://ORG/NAME[@REV]`` is the Hub; so is a bare ``ORG/NAME`` that is not a local
    path. ``revision`` (a branch, tag or commit) overrides one given with ``@``. ``metadata_only``: fetch only
    :data:`METADATA_PATTERNS` (for streaming).
    """
    text = os.fspath(source)
    hub = parse_hub_id(text)
    if hub is None and not Path(text).exists() and REPO_ID.match(text) and not text.startswith("."):
        hub = (text, None)
    if hub is None:
        return Path(text), None
    repo_id, rev = hub
    try:
        local = snapshot(repo_id, revision or rev, allow_patterns=METADATA_PATTERNS if metadata_only else None)
    except BrodenError as exc:
        if text.startswith("hf://"):
            raise
        raise BrodenError(f"{text}: no such dataset folder here, and as a Hub repo id: {exc}") from exc
    return local, {"repo_id": repo_id, "revision": local.name}


def shard_reader(provenance: dict[str, Any]):
    """A :class:`broden.dataset.ShardReader` over the parquet shards of the Hub commit ``provenance`` names, read
    with ``huggingface_hub.HfFileSystem`` (HTTP range requests: only the row groups used are transferred)."""
    import huggingface_hub

    from broden.dataset import DATA_DIR, SPLITS, ShardReader

    fs = huggingface_hub.HfFileSystem()
    root = f"datasets/{provenance['repo_id']}@{provenance['revision']}"
    try:
        files = [(s, f) for s in SPLITS for f in sorted(fs.glob(f"{root}/{DATA_DIR}/{s}-*.parquet"))]
        return ShardReader(files, filesystem=fs)
    except OSError as exc:
        raise _hub_error(provenance["repo_id"], provenance["revision"], exc) from exc


def pull(repo_id: str, dest: str | os.PathLike[str], *, revision: str | None = None) -> Path:
    """Copy dataset repo ``repo_id`` at ``revision`` from the Hub (through the cache) to ``dest`` (replaced only
    when complete) and record ``{"repo_id", "revision", "requested_revision"}`` under ``hub`` in its
    ``broden.json``; returns ``dest``. The copy is checked to be a Broden dataset before it replaces ``dest``."""
    import json

    from broden.dataset import META_FILE, read_meta

    if not REPO_ID.match(repo_id):
        raise BrodenError(f"--hub {repo_id}: not a Hub repo id; write ORG/NAME")
    local = snapshot(repo_id, revision)
    meta = read_meta(local)
    meta["hub"] = {"repo_id": repo_id, "revision": local.name, "requested_revision": revision or "main"}
    dest = Path(dest)
    with atomic.atomic_path(dest, is_dir=True) as tmp:
        shutil.copytree(local, tmp, symlinks=False, dirs_exist_ok=True)  # the cache links to blobs: copy the files
        (tmp / META_FILE).unlink()
        (tmp / META_FILE).write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
    return dest


def push(dataset: str | os.PathLike[str], repo_id: str, *, private: bool = False, revision: str | None = None,
         token: str | None = None) -> str:
    """Upload the Broden dataset folder ``dataset`` to the Hub dataset repo ``repo_id`` (created if missing, private
    if asked) in one commit; returns the commit URL. The folder must load as a Broden dataset."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    from broden.dataset import Broden

    if not REPO_ID.match(repo_id):
        raise BrodenError(f"{repo_id}: not a Hub repo id; write ORG/NAME")
    ds = Broden(dataset)
    api = HfApi(token=token, library_name="broden")
    try:
        api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
        info = api.upload_folder(
            repo_id=repo_id, repo_type="dataset", folder_path=str(ds.path), revision=revision,
            commit_message=f"broden: {ds.meta.get('name', ds.path.name)} ({len(ds)} images, {ds.fingerprint})",
            ignore_patterns=[".*", "**/.*"],
        )
    except (HfHubHTTPError, OSError, ValueError) as exc:
        raise BrodenError(f"push to {repo_id}: the Hub refused or could not be reached ({type(exc).__name__}: "
                          f"{str(exc).strip().splitlines()[0] if str(exc).strip() else ''}); check HF_TOKEN (write "
                          "access) and the network") from exc
    return str(getattr(info, "commit_url", info))
