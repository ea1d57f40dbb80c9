"""What the distribution carries, and where the tests' tp4emu comes from.

``scripts/check-dist`` runs the sdist's tests against the wheel installed in a
fresh venv, and sets ``TP4EMU_INSTALLED_IN`` to that venv: then the package
under test must be imported from it, not from a source tree.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

import pytest

import tp4emu
from tp4emu.capture import LUA_SCRIPT
from tp4emu.cli import version

ROOT = Path(__file__).resolve().parent.parent


def test_imported_from_the_installed_wheel_under_check_dist() -> None:
    venv = os.environ.get("TP4EMU_INSTALLED_IN")
    if not venv:
        pytest.skip("only under scripts/check-dist")
    here = Path(tp4emu.__file__).resolve()
    assert Path(venv).resolve() in here.parents, here
    assert version() == tp4emu.__version__  # the installed metadata's


def test_package_data_is_there() -> None:
    package = Path(tp4emu.__file__).parent
    assert (package / "py.typed").is_file()
    assert LUA_SCRIPT.is_file() and LUA_SCRIPT.parent == package / "capture"
    assert "tp4emu.ports" in LUA_SCRIPT.read_text()


def test_build_configuration() -> None:
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert meta["build-system"]["requires"] == ["setuptools>=77"]  # SPDX license, license-files
    project = meta["project"]
    assert project["license"] == "MIT" and project["license-files"] == ["LICENSE"]
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")
    assert "version" in project["dynamic"]
    assert meta["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "tp4emu.__version__"}
    assert "tp4emu-udp.lua" in meta["tool"]["setuptools"]["package-data"]["tp4emu.capture"]
    manifest = (ROOT / "MANIFEST.in").read_text().splitlines()
    assert "graft tests" in manifest and "graft docs" in manifest
    assert (ROOT / "CHANGELOG.md").read_text().startswith("# Changelog")
