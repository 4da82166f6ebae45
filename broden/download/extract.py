"""Safe, atomic extraction of zip and tar(.gz/.bz2/.xz) archives.

Every member is checked before anything is written: absolute paths, ``..`` components, links whose targets leave
the destination, and device or pipe entries are refused with an error naming the archive and the member. Files
are written into a temporary sibling of the destination, which is renamed into place only once every member is
out, so an interrupted or refused extraction never leaves a partial tree where a complete one is expected.
"""

from __future__ import annotations

import errno
import os
import posixpath
import re
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Callable

from broden.errors import BrodenError
from broden.utils import atomic
from broden.utils.disk import check_free_space, human_bytes
from broden.utils.progress import make_progress

_DRIVE = re.compile(r"^[A-Za-z]:")
#: Largest ratio of the members' uncompressed bytes to the archive's size: Broden's zips (JPEGs, PNGs) are near 1,
#: text compresses about 10x; a zip bomb (2 GiB of zeros in 2 MB) is near 1000.
MAX_RATIO = 100


@dataclass(frozen=True)
class _Member:
    name: str  # as stored in the archive
    kind: str  # "dir" | "file" | "symlink" | "hardlink"
    size: int
    target: str | None  # link target as stored
    open: Callable[[], IO[bytes]]


class _Unsafe(Exception):
    pass


def _zip_members(zf: zipfile.ZipFile) -> list[_Member]:
    members = []
    for info in zf.infolist():
        mode = info.external_attr >> 16
        if info.is_dir():
            kind, target = "dir", None
        elif info.create_system == 3 and stat.S_ISLNK(mode):
            kind, target = "symlink", zf.read(info).decode("utf-8", "replace")
        else:
            kind, target = "file", None
        members.append(_Member(info.filename, kind, info.file_size, target, lambda i=info: zf.open(i)))
    return members


def _tar_members(tf: tarfile.TarFile) -> list[_Member]:
    members = []
    for info in tf.getmembers():
        if info.isdir():
            kind = "dir"
        elif info.isreg():
            kind = "file"
        elif info.issym():
            kind = "symlink"
        elif info.islnk():
            kind = "hardlink"
        else:
            raise _Unsafe(info.name, "is a device, pipe or other special file")
        members.append(
            _Member(info.name, kind, info.size if kind == "file" else 0, info.linkname or None,
                    lambda i=info: tf.extractfile(i))  # type: ignore[arg-type,return-value]
        )
    return members


def _relative_parts(name: str) -> tuple[str, ...]:
    """The path components of a member name, refusing anything that could land outside the destination."""
    if name.startswith(("/", "\\")) or _DRIVE.match(name):
        raise _Unsafe(name, "has an absolute path")
    parts = tuple(p for p in re.split(r"[/\\]", name) if p not in ("", "."))
    if ".." in parts:
        raise _Unsafe(name, "contains '..'")
    return parts


def _check_link(member: _Member) -> None:
    target = member.target or ""
    if target.startswith(("/", "\\")) or _DRIVE.match(target):
        raise _Unsafe(member.name, f"is a link to the absolute path {target!r}")
    base = posixpath.dirname("/".join(_relative_parts(member.name))) if member.kind == "symlink" else ""
    resolved = posixpath.normpath(posixpath.join(base, target.replace("\\", "/")))
    if resolved == ".." or resolved.startswith("../"):
        raise _Unsafe(member.name, f"is a link to {target!r}, outside the destination")


def _inside(real_root: str, path: Path) -> bool:
    """Whether ``path``, with every link on the way resolved, lies under the already-resolved ``real_root``."""
    real = os.path.realpath(path)
    return real == real_root or real.startswith(real_root + os.sep)


@contextmanager
def _open_archive(archive: Path) -> Iterator[list[_Member]]:
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            yield _zip_members(zf)
    elif tarfile.is_tarfile(archive):
        with tarfile.open(archive) as tf:
            yield _tar_members(tf)
    else:
        raise BrodenError(f"{archive} is neither a zip nor a tar archive; delete it and download it again")


class _Writer:
    """Writes members under ``root``, resolving links on every path so nothing can land outside it."""

    def __init__(self, root: Path, advance: Callable[[int], None]) -> None:
        self.root = Path(os.path.realpath(root))
        self.real_root = str(self.root)
        self.advance = advance
        self._safe_dirs: set[Path] = {self.root}  # directories created and checked; they never become links

    def _directory(self, member: _Member, path: Path) -> None:
        if path in self._safe_dirs:
            return
        path.mkdir(parents=True, exist_ok=True)
        if not _inside(self.real_root, path):
            raise _Unsafe(member.name, "would be written through a link, outside the destination")
        self._safe_dirs.add(path)

    def write(self, member: _Member, parts: tuple[str, ...]) -> None:
        out = self.root.joinpath(*parts)
        if member.kind == "dir":
            return self._directory(member, out)
        self._directory(member, out.parent)
        if member.kind == "symlink":
            if not _inside(self.real_root, out.parent / (member.target or "")):
                raise _Unsafe(member.name, f"is a link to {member.target!r}, outside the destination")
            os.symlink(member.target or "", out)
        elif member.kind == "hardlink":
            source = self.root.joinpath(*_relative_parts(member.target or ""))
            if not source.is_file() or not _inside(self.real_root, source):
                raise _Unsafe(member.name, f"is a hard link to {member.target!r}, which is not a file in the archive")
            os.link(source, out)
        else:
            try:  # O_NOFOLLOW: never write through a link an earlier member placed at this very path
                fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
            except OSError as exc:
                if exc.errno == errno.ELOOP:
                    raise _Unsafe(member.name, "would be written through a link") from None
                raise
            written = 0
            with member.open() as fin, open(fd, "wb") as fout:
                while chunk := fin.read(1 << 20):
                    written += len(chunk)
                    if written > member.size:  # checked before extraction; a header that lies is caught here
                        raise _Unsafe(member.name, f"holds more than the {member.size} bytes its header declares")
                    fout.write(chunk)
                    self.advance(len(chunk))


def extract(archive: Path, dest: Path) -> Path:
    """Extract ``archive`` (zip or tar, optionally compressed) into the directory ``dest``; return ``dest``.

    ``dest`` appears only once extraction is complete (an existing ``dest`` is replaced then). Unsafe members
    raise BrodenError naming the archive and the member, before anything is written.
    """
    archive, dest = Path(archive), Path(dest)
    if not archive.is_file():
        raise BrodenError(f"{archive} does not exist; download it first")
    try:
        with _open_archive(archive) as members:
            checked = []
            for member in members:
                parts = _relative_parts(member.name)
                if member.kind in ("symlink", "hardlink"):
                    _check_link(member)
                if parts:
                    checked.append((member, parts))
            total = sum(m.size for m, _ in checked)
            packed = max(archive.stat().st_size, 1)
            if total > MAX_RATIO * packed:
                raise BrodenError(
                    f"{archive}: its members unpack to {human_bytes(total)}, {total // packed}x the archive's "
                    f"{human_bytes(packed)} (at most {MAX_RATIO}x is plausible): a zip bomb or a damaged archive; "
                    "nothing was extracted: delete it and download it again"
                )
            check_free_space(dest.parent, total, f"extracting {archive.name}")
            with atomic.atomic_path(dest, is_dir=True) as tmp, make_progress(in_bytes=True) as progress:
                task = progress.add_task(f"extracting {archive.name}", total=total)
                writer = _Writer(tmp, lambda n: progress.advance(task, n))
                for member, parts in checked:
                    writer.write(member, parts)
    except _Unsafe as exc:
        name, reason = exc.args
        raise BrodenError(
            f"{archive}: refusing to extract member {name!r}: it {reason}; nothing was extracted. "
            "The archive is damaged or malicious: delete it and download it again"
        ) from None
    except (zipfile.BadZipFile, tarfile.TarError, zlib.error, EOFError, OSError) as exc:
        if isinstance(exc, OSError) and exc.errno is not None and exc.filename is not None:
            raise BrodenError(f"could not extract {archive} into {dest}: {exc.strerror} ({exc.filename})") from None
        raise BrodenError(f"{archive} is damaged ({exc}); delete it and download it again") from None
    return dest

