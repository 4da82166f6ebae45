"""A local stand-in for the Hugging Face Hub, for testing broden's thin wrappers of ``huggingface_hub`` offline.

``LocalHub(cache)`` replaces the two upload calls broden makes (``HfApi.create_repo``, ``HfApi.upload_folder``):
an upload lays the folder out in ``cache`` exactly as ``huggingface_hub`` lays out a downloaded repo
(``datasets--ORG--NAME/snapshots/<commit>/`` and ``refs/<branch>`` holding the commit), with a commit hash made
from the files' contents. Pointing ``huggingface_hub.constants.HF_HUB_CACHE`` at ``cache`` with ``HF_HUB_OFFLINE=1``
then lets the real ``snapshot_download`` (and so ``broden.load("hf://...")`` and ``broden download --hub``) fetch
those commits through the library's own offline code path; :class:`LocalHubFileSystem` stands in for the
``HfFileSystem`` that streaming reads remote shards with.
"""

from __future__ import annotations

import fnmatch
import hashlib
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pytest


@dataclass
class Commit:
    commit_url: str
    oid: str


@dataclass
class LocalHub:
    cache: Path
    repos: dict[str, dict] = field(default_factory=dict)
    commits: list[dict] = field(default_factory=list)

    def repo_dir(self, repo_id: str) -> Path:
        return self.cache / f"datasets--{repo_id.replace('/', '--')}"

    def create_repo(self, repo_id: str, *, repo_type: str | None = None, private: bool = False,
                    exist_ok: bool = False, **_: object) -> str:
        assert repo_type == "dataset", repo_type
        if repo_id in self.repos and not exist_ok:
            raise FileExistsError(repo_id)
        self.repos.setdefault(repo_id, {"private": private})
        return f"https://huggingface.co/datasets/{repo_id}"

    def upload_folder(self, *, repo_id: str, folder_path: str, repo_type: str | None = None,
                      revision: str | None = None, commit_message: str | None = None,
                      ignore_patterns: list[str] | None = None, **_: object) -> Commit:
        assert repo_type == "dataset" and repo_id in self.repos, (repo_type, repo_id)
        root = Path(folder_path)
        files = sorted(p for p in root.rglob("*") if p.is_file() and not any(
            fnmatch.fnmatch(p.relative_to(root).as_posix(), pat) for pat in ignore_patterns or ()))
        h = hashlib.sha1()
        for p in files:
            h.update(p.relative_to(root).as_posix().encode() + b"\0" + p.read_bytes())
        oid = h.hexdigest()
        snap = self.repo_dir(repo_id) / "snapshots" / oid
        for p in files:
            (snap / p.relative_to(root)).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(p, snap / p.relative_to(root))
        ref = self.repo_dir(repo_id) / "refs" / (revision or "main")
        ref.parent.mkdir(parents=True, exist_ok=True)
        ref.write_text(oid)
        self.commits.append({"repo_id": repo_id, "oid": oid, "message": commit_message,
                             "files": [p.relative_to(root).as_posix() for p in files]})
        return Commit(f"https://huggingface.co/datasets/{repo_id}/commit/{oid}", oid)


@dataclass
class LocalHubFileSystem:
    """What broden uses of ``huggingface_hub.HfFileSystem`` (``glob``, ``open``) over a :class:`LocalHub`'s commits:
    ``datasets/ORG/NAME@COMMIT/path`` is the file ``path`` of that commit's snapshot."""

    hub: LocalHub

    def _split(self, path: str) -> tuple[str, Path]:
        assert path.startswith("datasets/"), path
        repo_rev, _, rest = path[len("datasets/"):].partition("/")
        repo, _, rest2 = (repo_rev + "/" + rest).partition("@")
        rev, _, inner = rest2.partition("/")
        return f"datasets/{repo}@{rev}", self.hub.repo_dir(repo) / "snapshots" / rev / inner

    def glob(self, pattern: str) -> list[str]:
        prefix, local = self._split(pattern)
        base = self.hub.repo_dir(prefix[len("datasets/"):].split("@")[0]) / "snapshots" / prefix.split("@")[1]
        return sorted(f"{prefix}/{p.relative_to(base).as_posix()}" for p in base.glob(str(local.relative_to(base))))

    def open(self, path: str, mode: str = "rb"):
        return open(self._split(path)[1], mode)


@pytest.fixture
def local_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> LocalHub:
    """A :class:`LocalHub` that broden's push uploads to and whose cache snapshot_download reads, offline."""
    import huggingface_hub
    from huggingface_hub import constants

    hub = LocalHub(tmp_path / "hub-cache")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(hub.cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", lambda self, *a, **k: hub.create_repo(*a, **k))
    monkeypatch.setattr(huggingface_hub.HfApi, "upload_folder", lambda self, *a, **k: hub.upload_folder(*a, **k))
    monkeypatch.setattr(huggingface_hub, "HfFileSystem", lambda *a, **k: LocalHubFileSystem(hub))
    return hub
