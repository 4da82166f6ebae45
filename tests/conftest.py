"""Shared test set-up: everything offline, and the embedded sample dataset built once per test process."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("BRODEN_PROGRESS", "0")
if "HF_DATASETS_CACHE" not in os.environ:  # the Arrow copies that load_dataset makes of the tests' datasets
    os.environ["HF_DATASETS_CACHE"] = tempfile.mkdtemp(prefix="broden-tests-hf-datasets-")
    atexit.register(shutil.rmtree, os.environ["HF_DATASETS_CACHE"], True)

#: the local HTTP server with fault injection (fixture ``http_server``) for every test that downloads
pytest_plugins = ("tests.helpers.http_fixture",)


@pytest.fixture(scope="session")
def sample_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Path of the embedded sample dataset (``broden sample``), written once per test process."""
    from broden.sample import write_sample

    out = tmp_path_factory.mktemp("sample") / "broden-sample"
    write_sample(out)
    return out
