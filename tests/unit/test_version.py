"""The version is written once, in ``sora_tasks/_version.py``: the build, ``__version__``, the
User-Agent and ``sora-tasks --version`` all read it from there."""

from __future__ import annotations

import tomllib
from importlib import metadata
from pathlib import Path

import pytest

import sora_tasks
from sora_tasks.providers._http import ProviderClient

ROOT = Path(__file__).parents[2]


def test_the_build_reads_the_version_from_the_package() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert "version" not in pyproject["project"]
    assert "version" in pyproject["project"]["dynamic"]
    assert pyproject["tool"]["hatch"]["version"]["path"] == "src/sora_tasks/_version.py"


def test_the_installed_distribution_has_the_packages_version() -> None:
    assert metadata.version("sora-tasks") == sora_tasks.__version__


@pytest.mark.anyio
async def test_the_user_agent_carries_it() -> None:
    client = ProviderClient(provider="p", base_url="http://127.0.0.1:9", api_key=None)
    try:
        assert client._foreign_headers["User-Agent"] == f"sora-tasks/{sora_tasks.__version__}"
    finally:
        await client.aclose()
