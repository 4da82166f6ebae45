"""Resumable, verified downloads that never leave a half-written file where a finished one is expected.

``fetch`` streams a file into ``<dest>.part`` and renames it onto ``dest`` only once it is complete and its
checksums match. An interrupted download is resumed with an HTTP Range request (guarded by If-Range, so a file that
changed on the server is fetched again from the start); a server that ignores Range is simply read again from the
beginning. Transient failures (connection errors, timeouts, 5xx, 429) are retried with exponential backoff; a URL
that cannot work (404, an HTML error page instead of the file, a checksum mismatch) makes ``fetch`` move on to the
next URL. ``file://`` URLs and plain local paths are accepted for files fetched by other means.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit
from urllib.request import url2pathname

from rich.progress import Progress, TaskID

from broden.errors import BrodenError
from broden.utils import atomic
from broden.utils.cli import check_number
from broden.utils.disk import check_free_space, human_bytes
from broden.utils.hashing import file_digests
from broden.utils.progress import make_progress, say
from broden.version import __version__

CHUNK = 1 << 20
# Network reads are smaller: a dropped connection loses at most the chunk being received.
NET_CHUNK = 1 << 16
MAX_BACKOFF = 60.0
#: Minimum-throughput rule: a transfer that receives less than MIN_RATE bytes/s over SLOW_WINDOW seconds is dropped
#: and retried; attempts that make less than MIN_PROGRESS bytes count as failures (a server dripping bytes gives up
#: after --retries attempts instead of resetting the count forever).
MIN_RATE = 1024
SLOW_WINDOW = 30.0
MIN_PROGRESS = 1 << 20
#: Default overall deadline of one download, over every URL and retry (seconds).
DEADLINE = 12 * 3600.0
_HEX = re.compile(r"^[0-9a-f]+$")
_WEB_PAGE = "sent a web page instead of the file (the host may be down or the link may have moved)"
# Leading bytes of the archive formats we fetch, by file-name suffix; a mismatch means the server sent something
# else (typically an error page), which must not be kept as the finished file.
_MAGIC: dict[str, tuple[bytes, ...]] = {
    ".zip": (b"PK\x03\x04", b"PK\x05\x06"),
    ".gz": (b"\x1f\x8b",),
    ".tgz": (b"\x1f\x8b",),
    ".bz2": (b"BZh",),
    ".xz": (b"\xfd7zXZ\x00",),
}


class _Transient(Exception):
    """A failure worth retrying the same URL for (connection dropped, timeout, server error)."""


class _Unusable(Exception):
    """This URL will not give the file (404, gave up retrying): try the next one."""


class _BadContent(_Unusable):
    """The bytes received are not the file (an HTML page, wrong type or size, checksum mismatch): never kept."""


@dataclass(frozen=True)
class _Expected:
    name: str
    sha256: str | None
    md5: str | None
    size: int | None


def check_transfer_options(*, retries: int, timeout: float, deadline: float) -> None:
    """Refuse retry and time limits that cannot work (``--timeout 0``, ``-1``, ``nan``) with one line."""
    if retries < 0:
        raise BrodenError(f"--retries {retries}: give 0 or more")
    check_number("--timeout", timeout, above=0)
    check_number("--deadline", deadline, above=0, allow_inf=True)


def normalise_checksum(value: str | None, kind: str) -> str | None:
    """Lower-case hex digest, or BrodenError if it is not one of ``kind`` ('sha256' or 'md5')."""
    length = {"sha256": 64, "md5": 32}[kind]
    if value is None:
        return None
    value = value.strip().lower()
    if len(value) != length or not _HEX.match(value):
        raise BrodenError(f"--{kind} {value!r} is not a {kind} checksum ({length} hexadecimal digits)")
    return value


def _looks_like_html(head: bytes) -> bool:
    start = head.lstrip()[:64].lower()
    return start.startswith((b"<!doctype html", b"<html", b"<head", b"<?xml")) or b"<html" in start


def _check_content(path: Path, exp: _Expected, progress: Progress | None = None) -> str:
    """The sha256 of ``path`` if its bytes are what was asked for; _BadContent if they are not."""
    actual_size = path.stat().st_size
    if exp.size is not None and actual_size != exp.size:
        raise _BadContent(f"got {actual_size} bytes, expected {exp.size}")
    with open(path, "rb") as f:
        head = f.read(512)
    if _looks_like_html(head):
        raise _BadContent(_WEB_PAGE)
    magic = _MAGIC.get(Path(exp.name).suffix.lower())
    if magic and not head.startswith(magic):
        raise _BadContent(f"sent something that is not a {Path(exp.name).suffix} file (it starts with {head[:16]!r})")
    if Path(exp.name).suffix.lower() == ".zip":
        import zipfile

        try:  # the central directory is at the end: a truncated zip (short Content-Length) has none
            zipfile.ZipFile(path).close()
        except (zipfile.BadZipFile, OSError) as exc:
            raise _BadContent(f"the zip is truncated or damaged ({exc})") from None
    sha, md5 = file_digests(path, md5=exp.md5 is not None, progress=progress)
    for kind, want, got in (("sha256", exp.sha256, sha), ("md5", exp.md5, md5)):
        if want is not None and got != want:
            raise _BadContent(f"checksum mismatch: expected {kind} {want}, got {got}; the file was removed")
    return sha


class _PartFile:
    """``<dest>.part`` plus ``<dest>.part.json`` recording where it came from, so a later run can resume it safely."""

    def __init__(self, dest: Path) -> None:
        self.path = dest.with_name(dest.name + ".part")
        self.meta_path = dest.with_name(dest.name + ".part.json")

    def size(self) -> int:
        return self.path.stat().st_size if self.path.exists() else 0

    def validator(self) -> str | None:
        """A strong ETag or Last-Modified of the response the part came from (for If-Range)."""
        try:
            meta = json.loads(self.meta_path.read_text())
        except (OSError, ValueError):
            return None
        etag = meta.get("etag")
        if etag and not etag.startswith("W/"):
            return etag
        return meta.get("last_modified")

    def remember(self, url: str, headers) -> None:
        atomic.write_json(
            self.meta_path,
            {"url": url, "etag": headers.get("ETag"), "last_modified": headers.get("Last-Modified")},
        )

    def discard(self) -> None:
        self.path.unlink(missing_ok=True)
        self.meta_path.unlink(missing_ok=True)


def _local_source(url: str) -> Path | None:
    """The local file a ``file://`` URL or plain path names; None for network URLs."""
    parts = urlsplit(url)
    if parts.scheme == "file":
        return Path(url2pathname(unquote(parts.path)))
    if "://" not in url:
        return Path(url).expanduser()
    return None


def _copy_local(src: Path, part: _PartFile, progress: Progress, task: TaskID) -> None:
    if not src.is_file():
        raise _Unusable(f"{src} does not exist or is not a file")
    part.discard()
    try:
        os.link(src, part.path)  # same file system: no copy, no extra space
        progress.update(task, total=src.stat().st_size, completed=src.stat().st_size)
        return
    except OSError:
        pass
    total = src.stat().st_size
    check_free_space(part.path.parent, total, part.path.name)
    progress.update(task, total=total, completed=0)
    with open(src, "rb") as fin, open(part.path, "wb") as fout:
        while chunk := fin.read(CHUNK):
            fout.write(chunk)
            progress.advance(task, len(chunk))


def _content_range(value: str | None) -> tuple[int | None, int | None]:
    """(first byte, total) from ``bytes 100-199/200`` or ``bytes */200``."""
    m = re.match(r"bytes\s+(?:(\d+)-\d+|\*)/(\d+|\*)", value or "")
    if not m:
        return None, None
    first = int(m.group(1)) if m.group(1) is not None else None
    total = int(m.group(2)) if m.group(2) != "*" else None
    return first, total


def _http_attempt(
    session, url: str, part: _PartFile, exp: _Expected, timeout: float, progress: Progress, task: TaskID,
    deadline: float,
) -> None:
    """One request: append to the part file (or start it over); raise _Transient or _Unusable on failure."""
    import requests
    import urllib3

    have = part.size()
    headers = {"Accept-Encoding": "identity"}
    if have:
        headers["Range"] = f"bytes={have}-"
        validator = part.validator()
        if validator:
            headers["If-Range"] = validator
    try:
        resp = session.get(url, headers=headers, stream=True, timeout=timeout)
    except (requests.ConnectionError, requests.Timeout) as exc:
        raise _Transient(_describe(exc)) from None
    except requests.RequestException as exc:
        raise _Unusable(_describe(exc)) from None
    with resp:
        status = resp.status_code
        if status == 416 and have:
            _, total = _content_range(resp.headers.get("Content-Range"))
            if total == have:
                return  # the part file already holds every byte
            part.discard()
            raise _Transient("the server refused to resume the partial file; starting over")
        if status in (408, 425, 429) or status >= 500:
            raise _Transient(f"HTTP {status} {resp.reason or ''}".strip())
        if status not in (200, 206):
            raise _Unusable(f"HTTP {status} {resp.reason or ''}".strip())
        ctype = resp.headers.get("Content-Type", "").split(";")[0].strip().lower()
        # Refused before anything is written, so a partial file from an earlier good response survives.
        if ctype in ("text/html", "application/xhtml+xml"):
            raise _Unusable(_WEB_PAGE)
        length = resp.headers.get("Content-Length")
        start, total = 0, int(length) if length and length.isdigit() else None
        if status == 206:  # otherwise the server ignored Range (or If-Range saw a changed file): start over
            start, total = _content_range(resp.headers.get("Content-Range"))
            if start != have:
                part.discard()
                raise _Transient(f"the server resumed at byte {start} instead of {have}; starting over")
        if exp.size is not None and total is not None and total != exp.size:
            raise _Unusable(f"the server offers {total} bytes, expected {exp.size}")
        if total is not None:
            check_free_space(part.path.parent, total - start, exp.name)
        progress.update(task, total=total, completed=start)
        received = 0
        window_start, window_bytes = time.monotonic(), 0
        try:
            chunks = _arriving(resp)
            first = next(chunks, b"")
            if start == 0 and _looks_like_html(first):
                raise _Unusable(_WEB_PAGE)
            part.remember(url, resp.headers)
            with open(part.path, "ab" if start else "wb") as f:
                for chunk in itertools.chain([first], chunks):
                    f.write(chunk)
                    received += len(chunk)
                    window_bytes += len(chunk)
                    progress.advance(task, len(chunk))
                    now = time.monotonic()
                    if now > deadline:
                        raise _Unusable(f"the download's deadline passed after {start + received} bytes")
                    if now - window_start >= SLOW_WINDOW:
                        rate = window_bytes / (now - window_start)
                        if rate < MIN_RATE:
                            raise _Transient(f"too slow ({rate:.0f} B/s over {now - window_start:.1f} s, the "
                                             f"minimum is {MIN_RATE} B/s)")
                        window_start, window_bytes = now, 0
        except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError,
                urllib3.exceptions.HTTPError) as exc:
            raise _Transient(f"connection lost after {start + received} bytes ({_describe(exc)})") from None
        if total is not None and start + received < total:
            raise _Transient(f"connection closed after {start + received} of {total} bytes")


def _arriving(resp) -> Iterator[bytes]:
    """The body as it arrives: each read returns what the socket has (up to NET_CHUNK), so a server that drips
    bytes is measured as slow instead of blocking one read for as long as it likes."""
    while chunk := resp.raw.read1(NET_CHUNK, decode_content=True):
        yield chunk


def _describe(exc: BaseException) -> str:
    """The innermost useful reason from a requests/urllib3 exception chain, e.g. 'Connection refused'."""
    text = str(exc)
    m = re.search(r"\[Errno -?\d+\] ([^'\")\]]+)", text)
    if m:
        return m.group(1).strip()
    if "IncompleteRead" in text or "Connection broken" in text:
        return "connection broken"
    if "timed out" in text.lower():
        return "timed out"
    return text.splitlines()[0][:200] if text else type(exc).__name__


def _fetch_http(
    url: str,
    part: _PartFile,
    exp: _Expected,
    *,
    retries: int,
    backoff: float,
    timeout: float,
    progress: Progress,
    task: TaskID,
    deadline: float,
) -> None:
    """Retry one URL until the part file is complete, or ``deadline`` (``time.monotonic``) passes; consecutive
    failures without real progress (at least MIN_PROGRESS bytes) are bounded by ``retries``."""
    import requests

    with requests.Session() as session:
        session.headers["User-Agent"] = f"broden/{__version__} (+https://github.com/broden-project/broden)"
        failures = 0
        furthest = part.size()
        while True:
            try:
                _http_attempt(session, url, part, exp, timeout, progress, task, deadline)
                return
            except _Transient as exc:
                now = part.size()
                if now >= furthest + MIN_PROGRESS:  # real progress: the connection is flaky, not dead
                    furthest, failures = now, 0
                furthest = max(furthest, now)
                failures += 1
                if failures > retries:
                    raise _Unusable(f"{exc} (gave up after {failures} tries)") from None
                delay = min(backoff * 2 ** (failures - 1), MAX_BACKOFF)
                if time.monotonic() + delay > deadline:
                    raise _Unusable(f"{exc}; the download's deadline passed") from None
                progress.console.print(f"{url}: {exc}; retrying in {delay:.3g} s", soft_wrap=True, markup=False,
                                       highlight=False)
                time.sleep(delay)


def fetch(
    urls: Sequence[str],
    dest: Path,
    *,
    sha256: str | None = None,
    md5: str | None = None,
    size: int | None = None,
    retries: int = 5,
    backoff: float = 1.0,
    timeout: float = 60.0,
    deadline: float = DEADLINE,
    description: str | None = None,
    force: bool = False,
) -> Path:
    """Download ``dest`` from the first of ``urls`` that delivers it complete and verified; return ``dest``.

    An existing ``dest`` that verifies is returned without any network request (``force`` fetches it again, the
    old file staying in place until the new one is verified). Checksums are optional; the sha256 of every new
    download is printed so users can pin it. Raises BrodenError naming every URL tried and why it failed.
    """
    check_transfer_options(retries=retries, timeout=timeout, deadline=deadline)
    dest = Path(dest)
    exp = _Expected(dest.name, normalise_checksum(sha256, "sha256"), normalise_checksum(md5, "md5"), size)
    ends = time.monotonic() + deadline
    urls = [u for u in urls if u]
    if not urls:
        raise BrodenError(f"no URL to download {dest.name} from; pass one with --url")
    if dest.exists() and not force:
        try:
            _check_content(dest, exp)
            return dest
        except _BadContent as exc:
            say(f"{dest}: {exc}; downloading it again")
            dest.unlink()
    part = _PartFile(dest)
    if force:
        part.discard()
    dest.parent.mkdir(parents=True, exist_ok=True)
    failures: list[str] = []
    with make_progress(in_bytes=True) as progress:
        task = progress.add_task(description or dest.name, total=size)
        for url in urls:
            local = _local_source(url)
            resumed = part.size() > 0 and local is None
            try:
                if local is not None:
                    _copy_local(local, part, progress, task)
                else:
                    _fetch_http(url, part, exp, retries=retries, backoff=backoff, timeout=timeout,
                                progress=progress, task=task, deadline=ends)
                try:
                    sha = _check_content(part.path, exp, progress)
                except _BadContent:
                    if not resumed:
                        raise
                    # The kept part may have come from another file; fetch this URL once more from the start.
                    part.discard()
                    _fetch_http(url, part, exp, retries=retries, backoff=backoff, timeout=timeout,
                                progress=progress, task=task, deadline=ends)
                    sha = _check_content(part.path, exp, progress)
            except _BadContent as exc:
                part.discard()  # bad bytes are never kept, and never resumed
                failures.append(f"{url}: {exc}")
                continue
            except _Unusable as exc:
                failures.append(f"{url}: {exc}")
                continue
            os.replace(part.path, dest)
            part.meta_path.unlink(missing_ok=True)
            break
        else:
            advice = f"download it by hand and pass --url file:///path/to/{dest.name}"
            if any("checksum mismatch" in f for f in failures):
                advice = (
                    "the file is damaged or not the expected one; if you trust it, pass the checksum it got "
                    "(--sha256/--md5)"
                )
            raise BrodenError(f"could not download {dest.name} ({'; '.join(failures)}); {advice}")
    say(f"{dest}: {human_bytes(dest.stat().st_size)}, sha256 {sha}")
    return dest
