"""Fixtures shared by the test modules that run tshark."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def tshark() -> str:
    """The tshark executable; required under CI, the test is skipped elsewhere."""
    path = shutil.which("tshark")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("tshark is required under CI (apt-get install tshark)")
        pytest.skip("tshark not installed")
    return path


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty Wireshark configuration directory: no user preferences."""
    return tmp_path_factory.mktemp("wireshark-home")
