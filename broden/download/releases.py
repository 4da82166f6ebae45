"""The prebuilt Broden releases (broden1_224, broden1_227, broden1_384): where to fetch them and what to expect.

Facts from the original NetDissect download script and third-party reports (see docs/broden-format.md §4). The
original host has had long outages, so each release lists the original URL first and then the Wayback Machine copy.
Only the 224 zip has a known checksum (an MD5 published by a third-party setup script, not by the authors); the
others are verified only if the user passes a checksum, and every download prints its sha256 so it can be pinned.
Sizes are approximate and used only to check free disk space before starting.

``download_release`` is the whole ``broden download`` flow: fetch the zip, extract it, convert it to a Hugging Face
dataset and validate that. Each stage is skipped when its finished output exists, so re-running after success makes
no network request and re-running after an interruption resumes where it stopped.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from broden.dataset import META_FILE
from broden.download.extract import extract
from broden.download.fetch import DEADLINE, check_transfer_options, fetch, normalise_checksum
from broden.errors import BrodenError
from broden.legacy import convert_legacy
from broden.utils import atomic
from broden.utils.disk import check_free_space, human_bytes
from broden.utils.hashing import file_digests
from broden.utils.progress import say
from broden.validate import validate_dataset

ORIGINAL_HOST = "http://netdissect.csail.mit.edu/data"
# Wayback "id_" URLs return the archived bytes unmodified. The timestamp is the capture a third party used for the
# 227 zip; for the other sizes Wayback redirects to the nearest capture it holds.
WAYBACK = "https://web.archive.org/web/20240418040425id_"

GB = 1_000_000_000


@dataclass(frozen=True)
class Release:
    """One prebuilt release: its file name, download URLs in the order tried, checksums and approximate sizes."""

    size: int
    urls: tuple[str, ...]
    md5: str | None
    sha256: str | None
    approx_zip_bytes: int
    approx_extracted_bytes: int

    @property
    def name(self) -> str:
        """Directory name inside the zip, e.g. ``broden1_224``."""
        return f"broden1_{self.size}"

    @property
    def filename(self) -> str:
        return f"{self.name}.zip"

    @property
    def approx_dataset_bytes(self) -> int:
        """The converted dataset keeps every JPEG as is and stores masks compactly: about the extracted size."""
        return self.approx_extracted_bytes


def _release(size: int, md5: str | None, approx_zip_bytes: int) -> Release:
    original = f"{ORIGINAL_HOST}/broden1_{size}.zip"
    return Release(
        size=size,
        urls=(original, f"{WAYBACK}/{original}"),
        md5=md5,
        sha256=None,
        approx_zip_bytes=approx_zip_bytes,
        # JPEG and PNG files do not compress further, so the tree is about the size of the zip.
        approx_extracted_bytes=approx_zip_bytes * 21 // 20,
    )


RELEASES: dict[int, Release] = {
    r.size: r
    for r in (
        _release(224, "be13c292eaef3300da03f8d0e48eab1c", int(1.0 * GB)),
        _release(227, None, int(0.975 * GB)),
        # Unknown; 384-pixel images have ~2.9x the pixels of 224 ones, so assume ~2.9x the bytes.
        _release(384, None, int(2.9 * GB)),
    )
}


#: Where ``broden download`` puts releases unless told otherwise, and so where ``benchmark score`` looks by default.
DEFAULT_DEST = Path("broden-data")


def get_release(size: int) -> Release:
    """The release for an image size, or a BrodenError listing the sizes that exist."""
    try:
        return RELEASES[size]
    except KeyError:
        sizes = ", ".join(str(s) for s in sorted(RELEASES))
        raise BrodenError(f"no prebuilt Broden release with image size {size}; choose one of {sizes}") from None


@dataclass(frozen=True)
class ReleasePaths:
    """Where each stage of ``download_release`` puts its output under the destination directory."""

    dest: Path
    release: Release

    @property
    def archive(self) -> Path:
        return self.dest / "downloads" / self.release.filename

    @property
    def unpacked(self) -> Path:
        """Staging directory the zip is extracted into before its top-level folder is moved to ``legacy``."""
        return self.dest / "downloads" / f"{self.release.name}.unpacked"

    @property
    def legacy(self) -> Path:
        """The release in its original layout; complete when ``index.csv`` exists."""
        return self.dest / self.release.name

    @property
    def dataset(self) -> Path:
        return self.dest / f"{self.release.name}-hf"

    @property
    def record(self) -> Path:
        """Written after validation passes: which dataset (by fingerprint) is known to be good."""
        return self.dest / "downloads" / f"{self.release.name}.validated.json"


def _fingerprint(dataset: Path) -> str | None:
    try:
        return json.loads((dataset / META_FILE).read_text())["fingerprint"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _validated(paths: ReleasePaths) -> bool:
    try:
        record = json.loads(paths.record.read_text())
    except (OSError, ValueError):
        return False
    fingerprint = _fingerprint(paths.dataset)
    return fingerprint is not None and record.get("fingerprint") == fingerprint


def _release_root(unpacked: Path, release: Release, archive: Path) -> Path:
    """The folder holding index.csv: normally ``broden1_<S>/`` at the top of the zip, or the top itself."""
    candidates = [unpacked / release.name, unpacked, *sorted(p for p in unpacked.iterdir() if p.is_dir())]
    for candidate in candidates:
        if (candidate / "index.csv").is_file():
            return candidate
    raise BrodenError(
        f"{archive} has no index.csv at its top or in {release.name}/: it is not a Broden release; "
        "delete it and download it again"
    )


@dataclass(frozen=True)
class _Plan:
    """Which stages still have to run: each is needed only if its output is missing and a later stage needs it."""

    download: bool
    extract: bool
    install: bool  # move the extracted release to its final place
    convert: bool

    @classmethod
    def for_paths(cls, paths: ReleasePaths, force: bool) -> _Plan:
        convert = force or _fingerprint(paths.dataset) is None
        install = force or (convert and not (paths.legacy / "index.csv").is_file())
        extract = force or (install and not paths.unpacked.is_dir())
        return cls(download=force or (extract and not paths.archive.exists()), extract=extract, install=install,
                   convert=convert)

    def disk_needed(self, paths: ReleasePaths) -> tuple[int, str]:
        """Approximate bytes the remaining stages write, and a breakdown for the error message."""
        r = paths.release
        part = paths.archive.with_name(paths.archive.name + ".part")
        have = part.stat().st_size if part.exists() else 0
        parts = [("download", max(r.approx_zip_bytes - have, 0)) if self.download else None,
                 ("extracted", r.approx_extracted_bytes) if self.extract else None,
                 ("dataset", r.approx_dataset_bytes) if self.convert else None]
        chosen = [p for p in parts if p]
        return sum(n for _, n in chosen), ", ".join(f"{what} ~{human_bytes(n)}" for what, n in chosen)


def archive_record(archive: Path) -> dict[str, object] | None:
    """What a converted dataset records about the zip it came from (None when the zip is no longer there).

    The leaderboard ranks results on data converted from a release archive whose checksum it knows, so the record
    holds both checksums whatever the user pinned.
    """
    if not archive.is_file():
        return None
    sha256, md5 = file_digests(archive, md5=True)
    return {"name": archive.name, "bytes": archive.stat().st_size, "sha256": sha256, "md5": md5}


def download_release(
    size: int,
    dest: Path,
    *,
    urls: Sequence[str] | None = None,
    sha256: str | None = None,
    md5: str | None = None,
    force: bool = False,
    retries: int = 5,
    backoff: float = 1.0,
    timeout: float = 60.0,
    deadline: float = DEADLINE,
) -> Path:
    """Fetch, extract, convert and validate ``broden1_<size>`` under ``dest``; return the converted dataset path.

    ``urls`` replaces the known URLs (``file://`` URLs and local paths work); ``sha256``/``md5`` replace the known
    checksums. ``force`` redoes every stage; each old output stays in place until its replacement is complete.
    """
    release = get_release(size)
    check_transfer_options(retries=retries, timeout=timeout, deadline=deadline)
    sha256, md5 = normalise_checksum(sha256, "sha256"), normalise_checksum(md5, "md5")
    paths = ReleasePaths(Path(dest), release)
    if not force and _validated(paths):
        say(f"{paths.dataset} is already downloaded, converted and validated (use --force to redo it)")
        return paths.dataset
    plan = _Plan.for_paths(paths, force)
    needed, breakdown = plan.disk_needed(paths)
    check_free_space(paths.dest, needed, f"{release.name} ({breakdown})")

    if plan.extract:
        if not (sha256 or md5):
            sha256, md5 = release.sha256, release.md5
        fetch(
            list(urls) if urls else list(release.urls),
            paths.archive,
            sha256=sha256,
            md5=md5,
            retries=retries,
            backoff=backoff,
            timeout=timeout,
            deadline=deadline,
            description=f"downloading {release.filename}",
            force=force,
        )
        extract(paths.archive, paths.unpacked)
    if plan.install:
        try:
            root = _release_root(paths.unpacked, release, paths.archive)
        except BrodenError:
            shutil.rmtree(paths.unpacked, ignore_errors=True)  # ours, and useless: the advice (download again) works
            raise
        with atomic.atomic_path(paths.legacy, is_dir=True) as tmp:
            os.replace(root, tmp)
        shutil.rmtree(paths.unpacked, ignore_errors=True)

    if plan.convert:
        say(f"converting {paths.legacy} to {paths.dataset}")
        convert_legacy(paths.legacy, paths.dataset, archive=archive_record(paths.archive))

    _validate(paths.dataset)
    atomic.write_json(paths.record, {"dataset": paths.dataset.name, "fingerprint": _fingerprint(paths.dataset)})
    say(f"{paths.dataset} is ready and valid; {paths.archive} and {paths.legacy}/ are not needed by broden any more "
        "and can be deleted to save space")
    return paths.dataset


def _validate(dataset: Path) -> None:
    say(f"validating {dataset}")
    violations = validate_dataset(dataset)
    if violations:
        first = str(violations[0]).replace("\n", " ")
        raise BrodenError(
            f"{dataset} failed validation with {len(violations)} problem(s), first: {first}; run "
            f"'broden validate {dataset}' for the full list",
            exit_code=1,
        )


def download_from_hub(repo_id: str, dest: str | Path, *, revision: str | None = None, force: bool = False) -> Path:
    """Fetch the Broden dataset repo ``repo_id`` from the Hugging Face Hub into ``dest/<NAME>`` (through the Hub
    cache, see :func:`broden.hub.pull`), record the repo and commit in its broden.json and validate it; a folder
    already holding that commit is kept unless ``force``. Returns the dataset path."""
    from broden.dataset import read_meta
    from broden.hub import pull

    out = Path(dest) / repo_id.split("/")[-1]
    if not force and (out / META_FILE).is_file():
        hub = read_meta(out).get("hub") or {}
        if hub.get("repo_id") == repo_id and hub.get("requested_revision") == (revision or "main"):
            say(f"{out} already holds {repo_id}@{hub.get('revision')} (use --force to fetch it again)")
            return out
    say(f"fetching {repo_id}{'@' + revision if revision else ''} from the Hugging Face Hub into {out}")
    pull(repo_id, out, revision=revision)
    _validate(out)
    return out
