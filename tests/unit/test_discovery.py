"""``TaskManager()`` without providers: chosen from the environment and the config file, as the
command line chooses them, and said so."""

from __future__ import annotations

from pathlib import Path

import pytest

from sora_tasks import ConfigError, SyncTaskManager, TaskManager, TaskStatus
from sora_tasks.providers import OpenAIVideosProvider, ReplicateProvider
from sora_tasks.testing import create_simulator_app, serve_in_thread

KEY_VARIABLES = (
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "REPLICATE_API_TOKEN",
    "FAL_KEY",
    "RUNWAYML_API_SECRET",
    "GEMINI_API_KEY",
    "GOOGLE_API_KEY",
    "SORA_TASKS_CONFIG",
    "SORA_TASKS_PROVIDER",
)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No key of the developer's, no config file of theirs: only what each test sets."""
    for name in KEY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config-home"))
    monkeypatch.chdir(tmp_path)


def test_openai_key_and_base_url_make_the_openai_provider(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    manager = TaskManager()
    (provider,) = manager.providers.values()
    assert isinstance(provider, OpenAIVideosProvider)
    assert list(manager.providers) == ["openai"]
    assert manager.configuration_notes[0].endswith("config file: openai (default)")


def test_each_conventional_variable_adds_its_provider(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("REPLICATE_API_TOKEN", "r8_from_env")
    manager = TaskManager()
    assert set(manager.providers) == {"openai", "replicate"}
    assert isinstance(manager.providers["replicate"], ReplicateProvider)
    assert "openai (default), replicate" in manager.configuration_notes[0]


def test_an_openai_key_alone_is_refused_because_the_endpoint_is_retired(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")
    with pytest.raises(ConfigError, match=r"shut down on 2026-09-24: set OPENAI_BASE_URL"):
        TaskManager()


def test_an_openai_key_alone_beside_another_provider_is_left_out_with_a_note(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")
    monkeypatch.setenv("REPLICATE_API_TOKEN", "r8_from_env")
    manager = TaskManager()
    assert list(manager.providers) == ["replicate"]
    assert any("shut down" in note for note in manager.configuration_notes)


def test_an_empty_environment_is_an_error_naming_what_to_set() -> None:
    with pytest.raises(ConfigError) as caught:
        TaskManager()
    message = str(caught.value)
    assert "pass providers=" in message
    assert "OPENAI_API_KEY with OPENAI_BASE_URL" in message
    for variable in ("REPLICATE_API_TOKEN", "GEMINI_API_KEY or GOOGLE_API_KEY", "FAL_KEY"):
        assert variable in message


def test_the_config_file_is_read_as_the_command_line_reads_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("RELAY_KEY", "relay-key")
    (tmp_path / "sora-tasks.toml").write_text(
        '[providers.mine]\ntype = "relay"\nbase_url = "http://127.0.0.1:9"\n'
        'api_key_env = "RELAY_KEY"\n',
        encoding="utf-8",
    )
    manager = TaskManager()
    assert list(manager.providers) == ["mine"]
    assert "sk-" not in repr(manager.configuration_notes)


@pytest.mark.anyio
@pytest.mark.timeout(30)
async def test_a_manager_from_the_environment_generates_a_video(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    app = create_simulator_app(render_seconds=0.1, queue_seconds=0, poll_after_ms=None)
    with serve_in_thread(app) as url:
        monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")
        monkeypatch.setenv("OPENAI_BASE_URL", f"{url}/v1")
        async with TaskManager() as manager:
            task = await manager.generate("a cat", output=tmp_path / "cat.mp4", timeout=20)
    assert task.status is TaskStatus.COMPLETED
    assert (tmp_path / "cat.mp4").stat().st_size > 0


def test_sync_task_manager_without_arguments_discovers_too(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("REPLICATE_API_TOKEN", "r8_from_env")
    assert list(SyncTaskManager().providers) == ["replicate"]


def test_fal_runway_and_veo_keys_add_their_providers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAL_KEY", "fal-key")
    monkeypatch.setenv("RUNWAYML_API_SECRET", "rw-key")
    # Veo's second conventional variable is enough on its own
    monkeypatch.setenv("GOOGLE_API_KEY", "google-key")
    assert set(TaskManager().providers) == {"fal", "runway", "veo"}
