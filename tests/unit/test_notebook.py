"""Notebooks: top-level await, the progress bar helper and the inline HTML view of a task."""

from __future__ import annotations

import asyncio
import sys
import types
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import pytest

from sora_tasks import PollingPolicy, Task, TaskError, TaskManager, TaskResult, TaskStatus
from sora_tasks._display import task_html
from sora_tasks._progress import follow
from sora_tasks.notebook import progress_bar
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

    def __init__(self, *, total: int, desc: str, unit: str) -> None:
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


@pytest.fixture
def fake_tqdm(monkeypatch: pytest.MonkeyPatch) -> type[FakeTqdm]:
    module = types.ModuleType("tqdm.auto")
    module.tqdm = FakeTqdm  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "tqdm", types.ModuleType("tqdm"))
    monkeypatch.setitem(sys.modules, "tqdm.auto", module)
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
async def test_without_tqdm_or_rich_there_is_simply_no_bar(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    monkeypatch.setitem(sys.modules, "rich.progress", None)
    async with manager() as tasks, progress_bar(tasks):
        task = await tasks.generate("a calico cat", output=tmp_path / "cat.mp4")
    assert task.status is TaskStatus.COMPLETED


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


def test_a_task_renders_inline_in_notebooks_as_its_html_view() -> None:
    task = make_task(prompt="<b>bold</b> cat")
    assert task._repr_html_() == task_html(task)
    assert "&lt;b&gt;bold&lt;/b&gt; cat" in task._repr_html_()
