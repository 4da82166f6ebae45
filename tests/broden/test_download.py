"""broden download: resumable verified fetch, safe extraction, the release flow and the command, all offline."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import socket
import tarfile
import zipfile
from collections import namedtuple
from pathlib import Path

import pytest

from broden.cli import main
from broden.download.extract import extract
from broden.download.fetch import fetch
from broden.download.releases import RELEASES, ReleasePaths, download_release, get_release
from broden.errors import BrodenError
from tests.helpers.archives import make_zip, zip_folder
from tests.helpers.http_fixture import Reply

FAST = {"backoff": 0.001, "timeout": 5.0}


@pytest.fixture(scope="module")
def payload() -> bytes:
    """A zip of incompressible bytes, large enough to span several network chunks (~300 kB)."""
    return make_zip({"broden1_224/blob.bin": os.urandom(300_000), "broden1_224/index.csv": b"image\n"})


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/broden1_224.zip"


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


# -- fetch: resume, retry, fall back ---------------------------------------------------------------------------


def test_dropped_connection_resumes_with_range_and_is_byte_identical(http_server, payload, tmp_path):
    url = http_server.serve("/f.zip", payload, replies=[Reply(drop_after=150_000)])
    out = fetch([url], tmp_path / "f.zip", sha256=sha(payload), **FAST)
    assert out.read_bytes() == payload
    first, second = http_server.requests_for("/f.zip")
    assert "Range" not in first.headers
    start = int(second.headers["Range"].removeprefix("bytes=").rstrip("-"))
    assert 0 < start <= 150_000
    assert second.headers["If-Range"]  # a changed file would be sent whole instead of spliced
    assert leftovers(tmp_path) == ["f.zip"]


def test_interrupted_run_is_resumed_by_the_next_run(http_server, payload, tmp_path):
    url = http_server.serve("/f.zip", payload, replies=[Reply(drop_after=150_000)])
    with pytest.raises(BrodenError, match="gave up after 1 tries"):
        fetch([url], tmp_path / "f.zip", retries=0, **FAST)
    assert not (tmp_path / "f.zip").exists()
    kept = (tmp_path / "f.zip.part").stat().st_size
    assert kept > 0
    fetch([url], tmp_path / "f.zip", **FAST)
    assert (tmp_path / "f.zip").read_bytes() == payload
    assert http_server.requests_for("/f.zip")[-1].headers["Range"] == f"bytes={kept}-"
    assert leftovers(tmp_path) == ["f.zip"]


def test_server_error_then_success(http_server, payload, tmp_path):
    url = http_server.serve("/f.zip", payload, replies=[Reply(status=500), Reply(status=503)])
    assert fetch([url], tmp_path / "f.zip", **FAST).read_bytes() == payload
    assert len(http_server.requests_for("/f.zip")) == 3


def test_repeated_server_errors_give_a_one_line_error(http_server, payload, tmp_path):
    url = http_server.serve("/f.zip", payload, replies=[Reply(status=500)] * 10)
    with pytest.raises(BrodenError) as err:
        fetch([url], tmp_path / "f.zip", retries=2, **FAST)
    msg = str(err.value)
    assert url in msg and "HTTP 500" in msg and "gave up after 3 tries" in msg
    assert "--url file:///" in msg and "\n" not in msg
    assert len(http_server.requests_for("/f.zip")) == 3


def test_unreachable_host_then_mirror(http_server, payload, tmp_path):
    dead = closed_port_url()
    mirror = http_server.serve("/mirror/f.zip", payload)
    missing = http_server.url("/gone/f.zip")
    assert fetch([dead, missing, mirror], tmp_path / "f.zip", retries=1, **FAST).read_bytes() == payload
    assert len(http_server.requests_for("/gone/f.zip")) == 1  # 404 is not retried


def test_unreachable_host_error_names_url_and_reason(tmp_path):
    dead = closed_port_url()
    with pytest.raises(BrodenError, match=r"could not download f\.zip \(http://127\.0\.0\.1:\d+/\S+: Connection "
                                          r"refused \(gave up after 2 tries\)\)"):
        fetch([dead], tmp_path / "f.zip", retries=1, **FAST)


def test_redirect_is_followed(http_server, payload, tmp_path):
    target = http_server.serve("/web/2024id_/f.zip", payload)
    url = http_server.serve("/f.zip", b"", replies=[Reply(status=302, headers={"Location": target})])
    assert fetch([url], tmp_path / "f.zip", **FAST).read_bytes() == payload


def test_timeout_is_retried(http_server, payload, tmp_path):
    url = http_server.serve("/f.zip", payload, replies=[Reply(delay=0.6)])
    out = fetch([url], tmp_path / "f.zip", backoff=0.001, timeout=0.2)
    assert out.read_bytes() == payload


def test_server_ignoring_range_restarts_cleanly(http_server, payload, tmp_path):
    (tmp_path / "f.zip.part").write_bytes(payload[:100_000])
    url = http_server.serve("/f.zip", payload, replies=[Reply(ignore_range=True)])
    assert fetch([url], tmp_path / "f.zip", sha256=sha(payload), **FAST).read_bytes() == payload
    (only,) = http_server.requests_for("/f.zip")
    assert only.headers["Range"] == "bytes=100000-"


def test_part_from_a_changed_file_is_not_spliced(http_server, payload, tmp_path):
    (tmp_path / "f.zip.part").write_bytes(b"PK\x03\x04" + b"x" * 50_000)
    (tmp_path / "f.zip.part.json").write_text(json.dumps({"url": "old", "etag": '"old-version"'}))
    url = http_server.serve("/f.zip", payload)
    assert fetch([url], tmp_path / "f.zip", **FAST).read_bytes() == payload
    (only,) = http_server.requests_for("/f.zip")
    assert only.headers["If-Range"] == '"old-version"'


def test_stale_part_without_validator_is_refetched_when_checksum_fails(http_server, payload, tmp_path):
    (tmp_path / "f.zip.part").write_bytes(b"PK\x03\x04" + b"x" * 50_000)
    url = http_server.serve("/f.zip", payload)
    assert fetch([url], tmp_path / "f.zip", sha256=sha(payload), **FAST).read_bytes() == payload
    ranges = [r.headers.get("Range") for r in http_server.requests_for("/f.zip")]
    assert ranges == ["bytes=50004-", None]


def test_rerun_after_success_makes_no_request(http_server, payload, tmp_path):
    url = http_server.serve("/f.zip", payload)
    fetch([url], tmp_path / "f.zip", sha256=sha(payload), **FAST)
    fetch([url], tmp_path / "f.zip", sha256=sha(payload), **FAST)
    fetch([url], tmp_path / "f.zip", **FAST)
    assert len(http_server.requests) == 1
    fetch([url], tmp_path / "f.zip", force=True, **FAST)
    assert len(http_server.requests) == 2


def test_existing_file_failing_its_checksum_is_downloaded_again(http_server, payload, tmp_path):
    (tmp_path / "f.zip").write_bytes(b"PK\x03\x04corrupt")
    url = http_server.serve("/f.zip", payload)
    assert fetch([url], tmp_path / "f.zip", sha256=sha(payload), **FAST).read_bytes() == payload


# -- fetch: bad content is never kept ---------------------------------------------------------------------------


def test_wrong_checksum_removes_the_file(http_server, payload, tmp_path):
    url = http_server.serve("/f.zip", payload)
    wrong = "0" * 32
    with pytest.raises(BrodenError) as err:
        fetch([url], tmp_path / "f.zip", md5=wrong, **FAST)
    msg = str(err.value)
    actual = hashlib.md5(payload).hexdigest()
    assert f"expected md5 {wrong}, got {actual}" in msg and url in msg and "removed" in msg
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize(
    "reply",
    [
        Reply(body=b"<!DOCTYPE html><html><body>Service unavailable</body></html>", content_type="text/html"),
        Reply(body=b"\n  <html><head><title>moved</title></head></html>", content_type="application/zip"),
    ],
    ids=["html-content-type", "html-body-labelled-zip"],
)
def test_html_page_instead_of_zip(http_server, payload, tmp_path, reply):
    url = http_server.serve("/f.zip", payload, replies=[reply])
    with pytest.raises(BrodenError, match="sent a web page instead of the file"):
        fetch([url], tmp_path / "f.zip", retries=3, **FAST)
    assert leftovers(tmp_path) == []
    assert len(http_server.requests_for("/f.zip")) == 1  # not retried: the same URL would send the same page


def test_html_page_does_not_destroy_a_resumable_part(http_server, payload, tmp_path):
    (tmp_path / "f.zip.part").write_bytes(payload[:100_000])
    url = http_server.serve("/f.zip", payload, replies=[Reply(status=200, body=b"<html>down</html>",
                                                              content_type="text/html")])
    with pytest.raises(BrodenError, match="web page"):
        fetch([url], tmp_path / "f.zip", **FAST)
    assert (tmp_path / "f.zip.part").read_bytes() == payload[:100_000]


def test_wrong_file_type_is_rejected(http_server, tmp_path):
    url = http_server.serve("/f.zip", b"GIF89a" + b"\0" * 1000, content_type="image/gif")
    with pytest.raises(BrodenError, match=r"not a \.zip file \(it starts with b'GIF89a"):
        fetch([url], tmp_path / "f.zip", **FAST)
    assert leftovers(tmp_path) == []


def test_size_mismatch_is_rejected_before_downloading(http_server, payload, tmp_path):
    url = http_server.serve("/f.zip", payload)
    with pytest.raises(BrodenError, match=f"offers {len(payload)} bytes, expected 10"):
        fetch([url], tmp_path / "f.zip", size=10, **FAST)


def test_not_enough_disk_for_the_download(http_server, payload, tmp_path, monkeypatch):
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 10**9 - 1000, 1000))
    url = http_server.serve("/f.zip", payload)
    with pytest.raises(BrodenError, match=r"not enough disk space for f\.zip: needs about 300\.\d kB, only "
                                          r"1\.0 kB free"):
        fetch([url], tmp_path / "f.zip", **FAST)
    assert leftovers(tmp_path) == []


def test_bad_checksum_argument(tmp_path):
    with pytest.raises(BrodenError, match="not a sha256 checksum"):
        fetch(["http://127.0.0.1:9/x"], tmp_path / "x", sha256="abc")


# -- fetch: local files ------------------------------------------------------------------------------------------


def test_file_url_and_local_path(payload, tmp_path):
    src = tmp_path / "elsewhere" / "my copy.zip"
    src.parent.mkdir()
    src.write_bytes(payload)
    a = fetch([src.as_uri()], tmp_path / "a" / "f.zip", sha256=sha(payload))
    b = fetch([str(src)], tmp_path / "b" / "f.zip", sha256=sha(payload))
    assert a.read_bytes() == b.read_bytes() == payload
    assert src.read_bytes() == payload


def test_missing_local_file(tmp_path):
    with pytest.raises(BrodenError, match=r"nope\.zip does not exist"):
        fetch([(tmp_path / "nope.zip").as_uri()], tmp_path / "f.zip")


def test_local_file_with_wrong_checksum_leaves_the_source_alone(payload, tmp_path):
    src = tmp_path / "src.zip"
    src.write_bytes(payload)
    with pytest.raises(BrodenError, match="checksum mismatch"):
        fetch([str(src)], tmp_path / "out" / "f.zip", sha256="0" * 64)
    assert src.read_bytes() == payload
    assert leftovers(tmp_path / "out") == []


# -- extract ---------------------------------------------------------------------------------------------------


def write_tar(path: Path, members: list[tarfile.TarInfo], data: dict[str, bytes] | None = None) -> Path:
    data = data or {}
    with tarfile.open(path, "w:gz") as t:
        for info in members:
            body = data.get(info.name)
            if body is not None:
                info.size = len(body)
            t.addfile(info, io.BytesIO(body) if body is not None else None)
    return path


def tar_link(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info


def test_extract_zip_and_tar(tmp_path):
    files = {"top/a.txt": b"a", "top/sub/b.bin": os.urandom(5000)}
    (tmp_path / "x.zip").write_bytes(make_zip(files))
    out = extract(tmp_path / "x.zip", tmp_path / "from-zip")
    assert {str(p.relative_to(out)): p.read_bytes() for p in out.rglob("*") if p.is_file()} == files

    infos = [tarfile.TarInfo(n) for n in files] + [tar_link("top/link", "sub/b.bin")]
    write_tar(tmp_path / "x.tar.gz", infos, files)
    out = extract(tmp_path / "x.tar.gz", tmp_path / "from-tar")
    assert (out / "top" / "link").is_symlink() and (out / "top" / "link").read_bytes() == files["top/sub/b.bin"]
    assert leftovers(tmp_path) == ["from-tar", "from-zip", "x.tar.gz", "x.zip"]


@pytest.mark.parametrize(
    ("member", "reason"),
    [("../evil.txt", "contains '..'"), ("ok/../../evil.txt", "contains '..'"), ("/tmp/evil.txt", "absolute path"),
     ("C:\\evil.txt", "absolute path")],
)
def test_zip_with_escaping_member_is_refused(tmp_path, member, reason):
    (tmp_path / "bad.zip").write_bytes(make_zip({"good/first.txt": b"1", member: b"evil"}))
    dest = tmp_path / "deep" / "out"
    with pytest.raises(BrodenError) as err:
        extract(tmp_path / "bad.zip", dest)
    msg = str(err.value)
    assert "bad.zip" in msg and repr(member) in msg and reason in msg and "nothing was extracted" in msg
    assert leftovers(tmp_path) == ["bad.zip"]  # nothing written anywhere, not even a temporary directory


@pytest.mark.parametrize(
    ("member", "reason"),
    [
        (tar_link("root/escape", "../../outside"), "outside the destination"),
        (tar_link("root/abs", "/etc/passwd"), "absolute path"),
        (tar_link("root/hard", "../outside", tarfile.LNKTYPE), "outside the destination"),
    ],
    ids=["symlink-up", "symlink-absolute", "hardlink-up"],
)
def test_tar_link_escaping_the_destination_is_refused(tmp_path, member, reason):
    write_tar(tmp_path / "bad.tar.gz", [tarfile.TarInfo("root/ok.txt"), member], {"root/ok.txt": b"ok"})
    with pytest.raises(BrodenError, match=reason) as err:
        extract(tmp_path / "bad.tar.gz", tmp_path / "out")
    assert repr(member.name) in str(err.value)
    assert leftovers(tmp_path) == ["bad.tar.gz"]


def test_zip_symlink_escaping_the_destination_is_refused(tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("root/ok.txt", b"ok")
        link = zipfile.ZipInfo("root/escape")
        link.create_system = 3  # Unix: the mode bits say symlink, the content is the target
        link.external_attr = (0o120777 << 16)
        z.writestr(link, "../../etc")
    (tmp_path / "bad.zip").write_bytes(buf.getvalue())
    with pytest.raises(BrodenError, match=r"member 'root/escape': it is a link to '\.\./\.\./etc', outside"):
        extract(tmp_path / "bad.zip", tmp_path / "out")
    assert leftovers(tmp_path) == ["bad.zip"]


def test_tar_link_chain_escaping_through_another_link_is_refused(tmp_path):
    # 'here' -> '.' is harmless and 'up' -> 'here/..' looks harmless on paper, but resolves to the parent.
    members = [tar_link("here", "."), tar_link("up", "here/.."), tarfile.TarInfo("up/evil.txt")]
    write_tar(tmp_path / "bad.tar.gz", members, {"up/evil.txt": b"evil"})
    with pytest.raises(BrodenError, match="outside the destination"):
        extract(tmp_path / "bad.tar.gz", tmp_path / "out")
    assert leftovers(tmp_path) == ["bad.tar.gz"]


def test_tar_device_file_is_refused(tmp_path):
    dev = tarfile.TarInfo("dev/null")
    dev.type = tarfile.CHRTYPE
    write_tar(tmp_path / "bad.tar.gz", [dev])
    with pytest.raises(BrodenError, match="device, pipe or other special file"):
        extract(tmp_path / "bad.tar.gz", tmp_path / "out")


def test_damaged_and_foreign_archives(payload, tmp_path):
    (tmp_path / "cut.zip").write_bytes(payload[: len(payload) // 2])
    with pytest.raises(BrodenError, match="cut.zip (is damaged|is neither a zip nor a tar)"):
        extract(tmp_path / "cut.zip", tmp_path / "out")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(BrodenError, match="notes.txt is neither a zip nor a tar archive"):
        extract(tmp_path / "notes.txt", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_extract_checks_free_space(tmp_path, monkeypatch):
    (tmp_path / "x.zip").write_bytes(make_zip({"big.bin": os.urandom(20_000)}))
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 10**9, 5_000))
    with pytest.raises(BrodenError, match=r"not enough disk space for extracting x\.zip: needs about 20\.0 kB"):
        extract(tmp_path / "x.zip", tmp_path / "out")


# -- the release table and flow ----------------------------------------------------------------------------------


def test_release_table():
    assert sorted(RELEASES) == [224, 227, 384]
    r = get_release(224)
    assert r.filename == "broden1_224.zip" and r.md5 == "be13c292eaef3300da03f8d0e48eab1c"
    assert r.urls[0] == "http://netdissect.csail.mit.edu/data/broden1_224.zip"
    assert r.urls[1].startswith("https://web.archive.org/web/") and r.urls[1].endswith(r.urls[0])
    assert all(get_release(s).md5 is None for s in (227, 384))
    with pytest.raises(BrodenError, match="choose one of 224, 227, 384"):
        get_release(225)


def test_release_refuses_without_disk_space_before_any_request(http_server, payload, tmp_path, monkeypatch):
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**12, 10**12, 2 * 10**9))
    url = http_server.serve("/broden1_224.zip", payload)
    with pytest.raises(BrodenError, match=r"not enough disk space for broden1_224 \(download ~1\.0 GB, extracted"):
        download_release(224, tmp_path / "data", urls=[url], sha256=sha(payload))
    assert http_server.requests == []


def test_release_with_wrong_checksum_extracts_nothing(http_server, payload, tmp_path):
    url = http_server.serve("/broden1_224.zip", payload)
    with pytest.raises(BrodenError, match="checksum mismatch: expected md5 be13c292"):
        download_release(224, tmp_path / "data", urls=[url], backoff=0.001)  # the known md5 applies
    paths = ReleasePaths(tmp_path / "data", get_release(224))
    assert not paths.archive.exists() and not paths.legacy.exists() and not paths.dataset.exists()
    assert leftovers(paths.archive.parent) == []


def test_release_archive_without_index_is_not_a_release(http_server, tmp_path):
    data = make_zip({"something/else.txt": b"x"})
    url = http_server.serve("/broden1_227.zip", data)
    with pytest.raises(BrodenError, match="has no index.csv .*not a Broden release"):
        download_release(227, tmp_path / "data", urls=[url], backoff=0.001)
    assert not (tmp_path / "data" / "broden1_227").exists()


# -- the command -------------------------------------------------------------------------------------------------


def test_command_help(capsys):
    with pytest.raises(SystemExit) as done:
        main(["download", "--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    for text in ("--size {224,227,384}", "--url URL", "--sha256 HEX", "--md5 HEX", "--force", "--dest DEST",
                 "file:///tmp/broden1_224.zip", "Wayback"):
        assert text in out


def test_command_errors_are_one_line(tmp_path, capsys):
    dead = closed_port_url()
    code = main(["download", "--dest", str(tmp_path), "--url", dead, "--retries", "0"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err[-1].startswith("error: could not download broden1_224.zip (") and dead in err[-1]
    assert "pass --url file:///path/to/broden1_224.zip" in err[-1]
    assert main(["download", "--dest", str(tmp_path), "--sha256", "xyz"]) == 2
    assert capsys.readouterr().err.strip() == "error: --sha256 'xyz' is not a sha256 checksum (64 hexadecimal digits)"
    with pytest.raises(SystemExit) as done:
        main(["download", "--size", "225"])
    assert done.value.code == 2


# -- end to end: a zipped release in the original layout ---------------------------------------------------------


@pytest.fixture(scope="module")
def legacy_zip(tmp_path_factory) -> bytes:
    """The synthetic release in the original layout, zipped like the real one (top-level ``broden1_224/``)."""
    from tests.helpers.legacy_fixture import write_legacy_fixture

    root = write_legacy_fixture(tmp_path_factory.mktemp("legacy"), 224)
    return zip_folder(root)


@pytest.fixture
def plenty_of_disk(monkeypatch):
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**13, 0, 10**13))


def test_download_convert_validate_then_rerun_does_nothing(http_server, legacy_zip, tmp_path, plenty_of_disk):
    from broden.dataset import load

    url = http_server.serve("/broden1_224.zip", legacy_zip, replies=[Reply(drop_after=len(legacy_zip) // 2)])
    dataset = download_release(224, tmp_path, urls=[closed_port_url(), url], sha256=sha(legacy_zip),
                               retries=1, backoff=0.001)
    paths = ReleasePaths(tmp_path, get_release(224))
    assert dataset == paths.dataset
    ds = load(dataset)
    assert len(ds) == 12 and len(ds.labels) > 0
    assert (paths.legacy / "index.csv").is_file() and paths.archive.read_bytes() == legacy_zip
    assert leftovers(paths.archive.parent) == ["broden1_224.validated.json", "broden1_224.zip"]
    assert leftovers(tmp_path) == ["broden1_224", "broden1_224-hf", "downloads"]
    requests = len(http_server.requests)
    assert requests == 2

    assert download_release(224, tmp_path, urls=[url], sha256=sha(legacy_zip)) == dataset
    assert len(http_server.requests) == requests  # finished: no request, nothing redone

    # Interrupted after extracting (the tree still in staging, no dataset yet; the zip deleted to save space):
    # the next run carries on from the extracted tree, without the network.
    shutil.rmtree(paths.dataset)
    paths.archive.unlink()
    paths.unpacked.mkdir()
    paths.legacy.rename(paths.unpacked / "broden1_224")
    assert download_release(224, tmp_path, urls=[url], sha256=sha(legacy_zip)) == dataset
    assert len(http_server.requests) == requests and load(dataset).fingerprint == ds.fingerprint
    assert not paths.unpacked.exists() and (paths.legacy / "index.csv").is_file()

    assert download_release(224, tmp_path, urls=[url], sha256=sha(legacy_zip), force=True) == dataset
    assert len(http_server.requests) == requests + 1 and load(dataset).fingerprint == ds.fingerprint
    assert leftovers(paths.archive.parent) == ["broden1_224.validated.json", "broden1_224.zip"]


def test_command_end_to_end(http_server, legacy_zip, tmp_path, plenty_of_disk, capsys):
    src = tmp_path / "fetched by hand" / "broden1_224.zip"
    src.parent.mkdir()
    src.write_bytes(legacy_zip)
    dest = tmp_path / "data"
    assert main(["download", "--dest", str(dest), "--url", src.as_uri(), "--sha256", sha(legacy_zip)]) == 0
    captured = capsys.readouterr()
    assert captured.out.strip() == str(dest / "broden1_224-hf")
    assert f"sha256 {sha(legacy_zip)}" in captured.err


def test_release_failing_validation_exits_1(legacy_zip, tmp_path, plenty_of_disk, capsys, monkeypatch):
    from broden.download import releases
    from broden.validate import Violation

    monkeypatch.setattr(releases, "validate_dataset", lambda path: [Violation("ade20k/x.jpg", "masks", "bad")] * 3)
    src = tmp_path / "broden1_224.zip"
    src.write_bytes(legacy_zip)
    code = main(["download", "--dest", str(tmp_path / "data"), "--url", str(src), "--sha256", sha(legacy_zip)])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert code == 1
    assert err == (f"error: {tmp_path / 'data' / 'broden1_224-hf'} failed validation with 3 problem(s), first: "
                   f"ade20k/x.jpg: [masks] bad; run 'broden validate {tmp_path / 'data' / 'broden1_224-hf'}' "
                   "for the full list")
    assert not (tmp_path / "data" / "downloads" / "broden1_224.validated.json").exists()
