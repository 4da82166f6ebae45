"""Shared test set-up: everything offline, and the embedded sample dataset built once per test process."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("BRODEN_PROGRESS", "0")

#: the local HTTP server with fault injection (fixture ``http_server``) for every test that downloads
pytest_plugins = ("tests.helpers.http_fixture",)


@pytest.fixture(scope="session")
def sample_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Path of the embedded sample dataset (``broden sample``), written once per test process."""
    from broden.sample import write_sample

    out = tmp_path_factory.mktemp("sample") / "broden-sample"
    write_sample(out)
    return out
