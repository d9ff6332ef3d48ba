"""``sora-tasks`` with an archive (``SORA_TASKS_ARCHIVE``): generate, archive verify, cleanup."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.acceptance.test_cli import CLI, cli, simulator_url

pytestmark = [pytest.mark.acceptance, pytest.mark.timeout(120)]

__all__ = ["cli", "simulator_url"]  # the fixtures, imported for this module's tests


def test_generate_archives_and_verify_finds_what_changed(cli: CLI, tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    archive.mkdir()
    url = f"file://{archive}"
    task = cli(
        "generate", "a short clip", "-o", "clip.mp4", "--json", SORA_TASKS_ARCHIVE=url
    ).json()
    stored = archive / "_anonymous" / f"{task['id']}.mp4"
    assert stored.read_bytes() == (tmp_path / "clip.mp4").read_bytes()
    assert task["result"]["archive_uri"] == f"file://{stored}"
    assert cli("archive", "verify", "--checksum", "--json", SORA_TASKS_ARCHIVE=url).json() == []

    original = stored.read_bytes()
    stored.write_bytes(bytes(reversed(original)))  # same size, other bytes
    assert cli("archive", "verify", "--json", SORA_TASKS_ARCHIVE=url).json() == []
    changed = cli(
        "archive", "verify", "--checksum", "--json", expect=1, SORA_TASKS_ARCHIVE=url
    ).json()
    assert [(p["task_id"], p["problem"]) for p in changed] == [(task["id"], "checksum")]
    stored.write_bytes(original[:100])
    shrunk = cli("archive", "verify", expect=1, SORA_TASKS_ARCHIVE=url)
    assert f"{task['id']}  size" in shrunk.stdout
    stored.unlink()
    missing = cli("archive", "verify", "--json", expect=1, SORA_TASKS_ARCHIVE=url).json()
    assert [p["problem"] for p in missing] == ["missing"]

    stored.write_bytes(original)
    assert (
        cli("cleanup", "--older-than", "0s", "--json", SORA_TASKS_ARCHIVE=url).json()["removed"]
        == 1
    )
    assert not stored.exists(), "cleanup deleted the archived video"


def test_a_bad_archive_is_one_clear_error(cli: CLI, tmp_path: Path) -> None:
    bad = cli("list", expect=2, SORA_TASKS_ARCHIVE="ftp://example/videos")
    assert bad.errors == [
        "error: archive URL scheme 'ftp' is not supported; use one of s3://, gs://, az://, "
        "file://, memory://"
    ]
    none = cli("archive", "verify", expect=2)
    assert "no archive is configured" in none.stderr
