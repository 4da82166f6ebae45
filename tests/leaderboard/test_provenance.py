"""Measured entries on real releases can be ranked: the dataset records the archive it came from and the converter.

A fake "release" is registered in the release table for the test only (size 99, its zip's md5 known), served from a
local HTTP server and taken through the whole path a user's data takes: ``broden download`` (fetch, verify,
extract, convert) -> ``benchmark score`` (a small random-weight network) -> ``leaderboard validate`` and the site.
The same files re-zipped (other bytes, other checksum, same content and so the same fingerprint) are not a known
release archive: that entry is "other protocol".
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path
from typing import Any

import pytest

from benchmark.models.loader import load_model
from benchmark.scorer import Settings, score_model
from broden.dataset import load
from broden.download.releases import RELEASES, Release, download_release
from leaderboard import protocol
from leaderboard.site import load as load_site
from leaderboard.validate import validate_submission
from tests.helpers.archives import zip_folder
from tests.helpers.legacy_fixture import write_legacy_fixture

MODEL = '''
import torch

NAME = "Tiny conv ({tag})"
LAYERS = ["conv"]


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 16, 7, stride=4)

    def forward(self, x):
        return self.conv(x)


def build_model():
    torch.manual_seed(0)
    return Net()
'''


def scored(tmp: Path, dataset: Path, tag: str) -> Path:
    """Score the tiny network on ``dataset``; returns the results file."""
    model_file = tmp / f"model_{tag}.py"
    model_file.write_text(MODEL.replace("{tag}", tag))
    outcome = score_model(load_model(str(model_file)), load(dataset), tmp / f"scored-{tag}",
                          Settings(batch_size=6, workers=0))
    return outcome.path


@pytest.fixture(scope="module")
def release_zips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    root = write_legacy_fixture(tmp_path_factory.mktemp("legacy"), 224)
    return {"release": zip_folder(root, zipfile.ZIP_DEFLATED), "rezipped": zip_folder(root, zipfile.ZIP_STORED)}


@pytest.mark.slow
def test_a_known_release_archive_gives_a_ranked_entry_and_a_rezip_does_not(
        release_zips: dict[str, bytes], http_server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    release, rezipped = release_zips["release"], release_zips["rezipped"]
    md5 = hashlib.md5(release, usedforsecurity=False).hexdigest()
    fake = Release(size=99, urls=(), md5=md5, sha256=None, approx_zip_bytes=len(release),
                   approx_extracted_bytes=len(release))
    monkeypatch.setitem(RELEASES, 99, fake)  # the test-only table entry: a release whose checksum is known

    known = download_release(99, tmp_path / "a", urls=[http_server.serve("/broden1_99.zip", release)])
    provenance = load(known).meta["provenance"]
    assert provenance["archive"] == {"name": "broden1_99.zip", "bytes": len(release), "md5": md5,
                                     "sha256": hashlib.sha256(release).hexdigest()}
    assert provenance["converter"] == {"name": "broden.legacy", "version": "0.1.0"}
    ranked = scored(tmp_path, known, "release")
    results = json.loads(ranked.read_text())
    assert results["dataset"]["provenance"] == provenance
    verdict = validate_submission(ranked)
    assert verdict.ok and verdict.protocol == protocol.LEADERBOARD, verdict.warnings

    other = download_release(99, tmp_path / "b", urls=[http_server.serve("/b/broden1_99.zip", rezipped)],
                             md5=hashlib.md5(rezipped, usedforsecurity=False).hexdigest())  # pinned by the user
    assert load(other).fingerprint == load(known).fingerprint  # the same images and masks
    unranked = validate_submission(scored(tmp_path, other, "rezipped"))
    assert unranked.ok and unranked.protocol == protocol.OTHER_PROTOCOL
    assert any("names no release archive with a known checksum" in w for w in unranked.warnings)

    subs = tmp_path / "subs"
    subs.mkdir()
    (subs / "ranked.json").write_text(ranked.read_text())
    claims = dict(results, name="Same archive, other data", created="2099-01-01T00:00:00Z",
                  dataset=dict(results["dataset"], fingerprint="sha256:" + "0" * 64))
    (subs / "claims.json").write_text(json.dumps(claims))
    site = load_site(subs)
    assert [(d.archive, d.fingerprint, d.first.file) for d in site.datasets] == [
        ("broden1_99.zip", results["dataset"]["fingerprint"], "ranked.json")]
    by_file = {e.file: e for e in site.entries}
    assert by_file["ranked.json"].rank == 1
    assert not by_file["claims.json"].ranked and "first seen for broden1_99.zip" in by_file["claims.json"].deviations[0]
