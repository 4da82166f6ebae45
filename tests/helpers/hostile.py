"""Shared checks of the hostile-input tests: one ``error:`` line, nothing written, nothing touched; faults to inject
(another process holding an output's lock, a process killed while writing, a small or read-only tmpfs)."""

from __future__ import annotations

import contextlib
import hashlib
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.paths import REPO


def snapshot(root: Path) -> dict[str, str]:
    """Every path under ``root`` (``root`` itself included by its name) with its content's digest."""
    root = Path(root)
    found = {}
    for path in sorted([root, *root.rglob("*")]) if root.exists() else []:
        rel = str(path.relative_to(root.parent))
        found[rel] = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "dir"
    return found


def assert_one_error(code: int, err: str, *, expected: str | None = None, exit_code: int | None = None,
                     progress_lines: bool = False) -> None:
    """A refused command: exit status != 0 (or ``exit_code``), stderr exactly one ``error:`` line, no traceback.

    ``progress_lines``: the command may have said what it was doing first (downloads: "retrying in 1 s"); the
    error line is then the last line and the only one starting with ``error:``."""
    assert code != 0 if exit_code is None else code == exit_code, (code, err)
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1 and lines[-1].startswith("error: "), err
    assert progress_lines or len(lines) == 1, err
    if expected is not None:
        assert expected in lines[-1], lines[-1]


def run_in_process(main, args: list[str], capsys) -> tuple[int, str, str]:
    """Run a command's ``main`` in this process; returns (exit code, stdout, stderr)."""
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def run_command(module: str, args: list[str], *, env: dict[str, str] | None = None, **kwargs) -> subprocess.CompletedProcess:
    """Run ``python -m <module> ARGS`` in a child process from the repository root."""
    full_env = {**os.environ, "BRODEN_PROGRESS": "0", "PYTHONPATH": str(REPO), **(env or {})}
    return subprocess.run([sys.executable, "-m", module, *map(str, args)], capture_output=True, text=True,
                          env=full_env, cwd=kwargs.pop("cwd", REPO), timeout=kwargs.pop("timeout", 300), **kwargs)


@contextlib.contextmanager
def lock_held(out: Path, command: str) -> Iterator[int]:
    """Another process holding the lock on output ``out`` (as a running ``command`` would); yields its pid."""
    code = textwrap.dedent(f"""
        import sys, time
        from broden.utils.outputs import claim
        with claim({str(out)!r}, {command!r}, own=lambda p: True):
            print("held", flush=True)
            sys.stdin.read()
    """)
    child = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                             env={**os.environ, "PYTHONPATH": str(REPO)}, cwd=REPO)
    try:
        assert child.stdout.readline().strip() == "held"
        yield child.pid
    finally:
        child.stdin.close()
        child.wait(timeout=30)


def killed_while_writing(dest: Path) -> int:
    """A child process killed (SIGKILL) half-way through an atomic write of ``dest`` and of a dataset's scratch
    space beside it; returns the dead child's pid. The temporaries it leaves are what a crash leaves."""
    code = textwrap.dedent(f"""
        import os, signal
        from broden.utils import atomic
        scratch = atomic.temp_dir({str(dest)!r})
        open(os.path.join(scratch.name, "rows.arrow"), "wb").write(b"x" * 1000)
        with atomic.atomic_path({str(dest)!r}) as tmp:
            open(tmp, "wb").write(b"half")
            os.kill(os.getpid(), signal.SIGKILL)
    """)
    child = subprocess.Popen([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(REPO)}, cwd=REPO)
    assert child.wait(timeout=60) == -9
    return child.pid


@contextlib.contextmanager
def tmpfs(where: Path, size: str, *, read_only: bool = False) -> Iterator[Path]:
    """A small tmpfs mounted at ``where`` (root only); skips the test where mounting is not allowed."""
    where.mkdir(parents=True, exist_ok=True)
    options = f"size={size}" + (",ro" if read_only else "")
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], capture_output=True,
                              timeout=30)
    except (OSError, subprocess.SubprocessError) as exc:
        pytest.skip(f"cannot mount a tmpfs here ({exc})")
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode(errors='replace').strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True, timeout=30)


# -- a tiny dataset to damage --------------------------------------------------------------------------------------
#: number, name, category of the tiny dataset's labels
TINY_LABELS = [(1, "red-c", "color"), (2, "dog", "object"), (3, "sky", "object"), (4, "street-s", "scene")]


def tiny_rows(n: int = 6, size: int = 32) -> tuple[list[dict], "LabelTable"]:  # noqa: F821
    """Rows (in the row schema) and label table of a small valid dataset: grey photos, a dog on the sky, red."""
    import io

    import numpy as np
    from PIL import Image

    from broden.labels import BRODEN_CATEGORIES, Category, Label, LabelTable, Membership
    from broden.masks import encode_label_map

    codes = {num: sum(c == cat for _, _, c in TINY_LABELS[: i + 1]) for i, (num, _, cat) in enumerate(TINY_LABELS)}
    table = LabelTable([Category(c, k) for c, k in BRODEN_CATEGORIES],
                       [Label(num, name, 1, 1.0, {cat: Membership(codes[num], 1, 1.0)})
                        for num, name, cat in TINY_LABELS])
    seg = size // 2
    rows = []
    for i in range(n):
        buf = io.BytesIO()
        Image.new("RGB", (size, size), (90 + 10 * i, 120, 140)).save(buf, format="JPEG")
        obj = np.full((seg, seg), 3, np.int32)
        obj[: seg // 2, : seg // 2] = 2
        masks = {"category": [], "layer": [], "label": [], "rle": []}
        for cat, m in (("object", obj), ("color", np.ones((seg, seg), np.int32))):
            for label, rle in encode_label_map(m):
                masks["category"].append(cat)
                masks["layer"].append(0)
                masks["label"].append(label)
                masks["rle"].append(rle)
        rows.append({"id": f"tiny/img{i}.jpg", "image": buf.getvalue(), "split": "train", "source": "tiny",
                     "height": size, "width": size, "seg_height": seg, "seg_width": seg,
                     "scene": [4] if i % 2 else [0], "texture": [],
                     "layers": {"color": 1, "object": 1, "part": 0, "material": 0}, "masks": masks})
    return rows, table


def bomb_png() -> bytes:
    """A PNG header claiming 100000 x 100000 pixels (10^10: far over PIL's decompression-bomb limit)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def bomb_jpeg() -> bytes:
    """A baseline JPEG header claiming 65535 x 65535 pixels, with a token scan."""
    sof = bytes.fromhex("FFC0000B08FFFFFFFF01011100")
    sos = bytes.fromhex("FFDA000801010000003F00")
    return bytes.fromhex("FFD8") + sof + sos + b"\0" * 16 + bytes.fromhex("FFD9")
