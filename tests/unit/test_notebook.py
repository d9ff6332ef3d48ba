"""Notebooks: top-level await, the progress bar helper and the inline card of a task."""

from __future__ import annotations

import asyncio
import sys
import types
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import anyio
import pytest

from sora_tasks import (
    MediaType,
    PollingPolicy,
    Task,
    TaskError,
    TaskManager,
    TaskResult,
    TaskStatus,
)
from sora_tasks._progress import follow
from sora_tasks.notebook import card, progress_bar, task_html
from sora_tasks.testing import FakeBehaviour, FakeProvider

FAST = PollingPolicy(retry_interval=0.01, idle_wait=0.05, reconcile_delay=0)
QUICK = FakeBehaviour(render_for=0.2, progress_step=10, poll_after=0.01)
NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def manager() -> TaskManager:
    return TaskManager(providers={"fake": FakeProvider(behaviour=QUICK)}, policy=FAST)


def make_task(**changes: Any) -> Task:
    fields: dict[str, Any] = {
        "provider": "fake",
        "prompt": "a calico cat playing piano",
        "model": "sora-2",
        "size": "1280x720",
        "seconds": 4,
        "created_at": NOW,
        "updated_at": NOW,
    }
    return Task(**{**fields, **changes})


class FakeTqdm:
    """Records what a ``tqdm.auto.tqdm`` bar is told."""

    made: ClassVar[list[FakeTqdm]] = []

    def __init__(self, *, total: int, desc: str, unit: str, file: Any = None) -> None:
        self.total, self.desc, self.n = total, desc, 0
        self.postfixes: list[str] = []
        self.positions: list[int] = []
        self.closed = False
        FakeTqdm.made.append(self)

    def set_postfix_str(self, text: str, refresh: bool = True) -> None:
        self.postfixes.append(text)

    def refresh(self) -> None:
        self.positions.append(self.n)

    def close(self) -> None:
        self.closed = True


class FakeWidgetTqdm(FakeTqdm):
    """Stands for ``tqdm.notebook.tqdm``, the widget bar."""


@pytest.fixture
def fake_tqdm(monkeypatch: pytest.MonkeyPatch) -> type[FakeTqdm]:
    text = types.ModuleType("tqdm.std")
    text.tqdm = FakeTqdm  # type: ignore[attr-defined]
    widget = types.ModuleType("tqdm.notebook")
    widget.tqdm = FakeWidgetTqdm  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "tqdm", types.ModuleType("tqdm"))
    monkeypatch.setitem(sys.modules, "tqdm.std", text)
    monkeypatch.setitem(sys.modules, "tqdm.notebook", widget)
    FakeTqdm.made = []
    return FakeTqdm


def test_the_async_api_runs_on_a_plain_running_asyncio_loop_as_in_jupyter(
    tmp_path: Path,
) -> None:
    # Jupyter awaits cells on its own asyncio loop: nothing may need anyio.run
    async def cell() -> Task:
        async with manager() as tasks:
            return await tasks.generate("a calico cat", output=tmp_path / "cat.mp4")

    task = asyncio.run(cell())
    assert task.status is TaskStatus.COMPLETED
    assert (tmp_path / "cat.mp4").stat().st_size > 0


@pytest.mark.anyio
async def test_progress_bar_drives_a_tqdm_bar_to_the_end_and_closes_it(
    fake_tqdm: type[FakeTqdm], tmp_path: Path
) -> None:
    async with manager() as tasks, progress_bar(tasks, description="cat"):
        await tasks.generate("a calico cat", output=tmp_path / "cat.mp4")
    (bar,) = fake_tqdm.made
    assert (bar.total, bar.desc) == (100, "cat")
    assert bar.positions[-1] == 100
    assert bar.positions == sorted(bar.positions)
    assert bar.postfixes[-1] == "completed"
    assert bar.closed


@pytest.mark.anyio
async def test_progress_bar_follows_only_its_task(fake_tqdm: type[FakeTqdm]) -> None:
    async with manager() as tasks:
        other = await tasks.create("another job")
        mine = await tasks.create("my job")
        async with progress_bar(tasks, task_id=mine.id):
            await tasks.wait(mine.id, timeout=10)
            await tasks.wait(other.id, timeout=10)
    (bar,) = fake_tqdm.made
    assert bar.positions[-1] == 100
    assert len(bar.positions) < 20


@pytest.mark.anyio
async def test_without_tqdm_or_rich_a_plain_text_bar_is_drawn(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "tqdm.std", None)
    monkeypatch.setitem(sys.modules, "rich.progress", None)
    async with manager() as tasks, progress_bar(tasks, description="cat"):
        task = await tasks.generate("a calico cat", output=tmp_path / "cat.mp4")
    assert task.status is TaskStatus.COMPLETED
    drawn = capsys.readouterr().err
    assert drawn.endswith("cat: [" + "#" * 30 + "] 100% completed\n")


@pytest.mark.anyio
async def test_in_a_notebook_with_widgets_the_bar_is_the_tqdm_widget(
    fake_tqdm: type[FakeTqdm], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sora_tasks.notebook._in_notebook", lambda: True)
    monkeypatch.setitem(sys.modules, "ipywidgets", types.ModuleType("ipywidgets"))
    async with manager() as tasks, progress_bar(tasks):
        await tasks.wait((await tasks.create("a cat")).id, timeout=10)
    (bar,) = fake_tqdm.made
    assert isinstance(bar, FakeWidgetTqdm)
    assert bar.positions[-1] == 100


@pytest.mark.anyio
async def test_in_a_notebook_without_widgets_the_bar_is_text_not_a_failing_widget(
    fake_tqdm: type[FakeTqdm], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sora_tasks.notebook._in_notebook", lambda: True)
    monkeypatch.setitem(sys.modules, "ipywidgets", None)
    async with manager() as tasks, progress_bar(tasks):
        await tasks.wait((await tasks.create("a cat")).id, timeout=10)
    (bar,) = fake_tqdm.made
    assert type(bar) is FakeTqdm
    assert bar.positions[-1] == 100


@pytest.mark.anyio
async def test_in_a_notebook_without_tqdm_rich_is_not_used_it_would_warn(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sora_tasks.notebook._in_notebook", lambda: True)
    monkeypatch.setitem(sys.modules, "tqdm.std", None)
    async with manager() as tasks, progress_bar(tasks):
        await tasks.wait((await tasks.create("a cat")).id, timeout=10)
    assert "100% completed" in capsys.readouterr().err


@pytest.mark.anyio
async def test_errors_in_the_block_come_out_unwrapped(fake_tqdm: type[FakeTqdm]) -> None:
    async with manager() as tasks:
        with pytest.raises(LookupError):
            async with progress_bar(tasks):
                await tasks.get("video_00000000-0000-0000-0000-000000000000")
    assert fake_tqdm.made[0].closed


@pytest.mark.anyio
async def test_follow_sees_the_first_task_created_in_the_block() -> None:
    seen: list[Task] = []
    async with manager() as tasks:
        await tasks.create("made before: not followed")
        async with follow(tasks, seen.append):
            task = await tasks.create("followed")
            await tasks.wait(task.id, timeout=10)
    assert seen
    assert {snapshot.id for snapshot in seen} == {task.id}
    assert seen[0].status is TaskStatus.QUEUED
    assert seen[-1].status is TaskStatus.COMPLETED


def test_task_html_escapes_the_prompt_and_the_error() -> None:
    task = make_task(
        prompt='<script>alert("x")</script> & a cat',
        status=TaskStatus.FAILED,
        error=TaskError(code="moderation<b>", message="blocked <img src=x onerror=alert(1)>"),
    )
    page = task_html(task)
    assert "<script>" not in page
    assert "<img" not in page
    assert "<b>" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; a cat" in page
    assert "blocked &lt;img src=x onerror=alert(1)&gt;" in page
    assert ">FAILED</span>" in page


def test_task_html_shows_timings_and_a_player_once_the_file_is_on_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    video = tmp_path / "my cat#1.mp4"
    done = make_task(
        status=TaskStatus.COMPLETED,
        progress=100,
        completed_at=NOW + timedelta(seconds=42),
        result=TaskResult(local_path=str(video)),
    )
    assert "<video" not in task_html(done)
    video.write_bytes(b"mp4")
    page = task_html(done)
    assert '<video controls width="480" src="my%20cat%231.mp4"></video>' in page
    assert "42.0 s" in page
    assert "2026-11-28 12:00:00 UTC" in page


def test_task_html_points_outside_the_working_directory_with_a_file_uri(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "here").mkdir()
    monkeypatch.chdir(tmp_path / "here")
    video = tmp_path / "elsewhere.mp4"
    video.write_bytes(b"mp4")
    page = task_html(
        make_task(status=TaskStatus.COMPLETED, result=TaskResult(local_path=str(video)))
    )
    assert f'src="{video.as_uri()}"' in page


def test_task_html_plays_a_relative_path_relative_to_the_notebook(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "videos").mkdir()
    (tmp_path / "videos" / "cat.mp4").write_bytes(b"mp4")
    done = make_task(status=TaskStatus.COMPLETED, result=TaskResult(local_path="videos/cat.mp4"))
    assert 'src="videos/cat.mp4"' in task_html(done)


def test_an_image_task_shows_an_image_not_a_video_player(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "cat.png").write_bytes(b"png")
    done = make_task(
        status=TaskStatus.COMPLETED,
        media_type=MediaType.IMAGE,
        result=TaskResult(local_path="cat.png"),
    )
    page = task_html(done)
    assert '<img width="480" src="cat.png"' in page
    assert "<video" not in page


@pytest.mark.anyio
async def test_the_card_plays_the_archived_copy_from_its_presigned_url(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def sign(key: str, expires_in: timedelta) -> str:
        return f"https://cdn.example/{key}?X-Amz-Expires={int(expires_in.total_seconds())}&s=1"

    async with TaskManager(
        providers={"fake": FakeProvider(behaviour=QUICK)}, policy=FAST, archive="memory://"
    ) as tasks:
        assert tasks.archive is not None
        monkeypatch.setattr(tasks.archive, "sign", sign)
        task = await tasks.create("a cat")
        with anyio.fail_after(10):
            while (task := await tasks.get(task.id)).result is None or (
                task.result.archive_uri is None
            ):
                await tasks.wait(task.id, timeout=10)
                await anyio.sleep(0.01)
        shown = await card(tasks, task.id, expires_in=timedelta(minutes=5))
    expected = f"https://cdn.example/_anonymous/{task.id}.mp4?X-Amz-Expires=300&amp;s=1"
    assert f'<video controls width="480" src="{expected}"></video>' in shown.html
    assert shown._repr_html_() == shown.html


@pytest.mark.anyio
async def test_a_card_without_a_file_or_an_url_has_no_player() -> None:
    async with manager() as tasks:
        task = await tasks.create("a cat")
        shown = await card(tasks, task.id)
    assert "<video" not in shown.html
    assert task.id in shown.html


def test_a_task_renders_inline_in_notebooks_as_its_html_view() -> None:
    task = make_task(prompt="<b>bold</b> cat")
    assert task._repr_html_() == task_html(task)
    assert "&lt;b&gt;bold&lt;/b&gt; cat" in task._repr_html_()
