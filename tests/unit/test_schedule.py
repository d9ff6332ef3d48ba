"""The polling schedule: pure functions, checked case by case and by property."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sora_tasks import TaskStatus
from sora_tasks._schedule import PollSchedule, Track, next_delay

S = PollSchedule()


def rendering(progress: int, *, anchor_at: float = 100.0, anchor_progress: int = 0) -> Track:
    return Track(
        submitted_at=0.0,
        status=TaskStatus.PROCESSING,
        progress=progress,
        anchor_at=anchor_at,
        anchor_progress=anchor_progress,
        moved_at=anchor_at,
    )


def test_queued_waits_grow_with_the_time_queued() -> None:
    track = Track(submitted_at=0.0)
    assert next_delay(track, 0.0) == S.first_interval
    assert next_delay(track, 40.0) == 40.0
    assert next_delay(track, 1000.0) == S.max_interval


def test_far_from_the_end_it_approaches_by_a_fraction_of_the_time_left() -> None:
    track = rendering(20, anchor_at=100.0)  # 20 % in 20 s: 80 s left at t=120
    assert track.remaining(120.0) == pytest.approx(80.0)
    assert next_delay(track, 120.0) == pytest.approx(S.approach * 80.0)


def test_near_the_end_it_polls_densely() -> None:
    track = rendering(98, anchor_at=0.0)
    assert next_delay(track, 98.0) == S.dense_interval


def test_a_stalled_render_backs_off() -> None:
    stalled = Track(
        submitted_at=0.0,
        status=TaskStatus.PROCESSING,
        progress=50,
        anchor_at=0.0,
        anchor_progress=50,
        moved_at=0.0,
    )
    assert next_delay(stalled, 10.0) == S.first_interval
    assert next_delay(stalled, 100.0) == pytest.approx(S.stall_factor * 100.0)


def test_first_rendering_answer_anchors_in_the_middle_of_the_unseen_span() -> None:
    queued = Track(submitted_at=0.0).advance(TaskStatus.QUEUED, 0, 10.0)
    started = queued.advance(TaskStatus.PROCESSING, 10, 30.0)
    assert (started.anchor_at, started.anchor_progress) == (20.0, 0)
    assert started.remaining(30.0) == pytest.approx(90.0)


def test_progress_never_goes_back_in_the_track() -> None:
    track = rendering(40).advance(TaskStatus.PROCESSING, 30, 200.0)
    assert track.progress == 40
    assert track.moved_at == 100.0


@given(
    status=st.sampled_from([TaskStatus.QUEUED, TaskStatus.PROCESSING, None]),
    progress=st.integers(0, 100),
    now=st.floats(0, 10_000),
    hint=st.none() | st.floats(0, 1_000),
    floor=st.floats(0, 100),
)
def test_every_delay_honours_the_hint_and_the_floor_and_is_finite(
    status: TaskStatus | None, progress: int, now: float, hint: float | None, floor: float
) -> None:
    track = Track(
        submitted_at=0.0,
        status=status,
        progress=progress,
        anchor_at=now / 2,
        anchor_progress=progress // 2,
        moved_at=now / 3,
    )
    delay = next_delay(track, now, hint=hint, min_interval=floor)
    assert delay >= floor and delay >= (hint or 0.0)
    assert delay <= max(S.max_interval, floor, hint or 0.0)
    assert delay > 0
