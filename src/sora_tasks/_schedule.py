"""When to ask a provider again: pure functions, driven by what the last answers showed.

Renders take minutes and report progress roughly in proportion to time, so the finish time can be
estimated from the progress rate. The schedule polls sparsely while the finish is far, halves the
distance as it nears, and polls densely only around the estimate:

- queued (or a status nobody knows): wait in proportion to how long the job has waited already;
- rendering with a measurable rate: wait ``approach`` times the estimated time left, and only
  ``dense_interval`` once that falls under ``dense_window``;
- rendering with no movement: back off in proportion to how long nothing has moved.

A provider's hint (``openai-poll-after-ms``, ``Retry-After``) is a floor, as is the provider's
minimum interval; ``max_interval`` is a ceiling for everything but the provider's own hint.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

from ._models import TaskStatus

__all__ = ["PollSchedule", "Track", "next_delay"]


class PollSchedule(BaseModel):
    """The shape of the polling schedule, in seconds.

    The defaults suit renders of minutes (tuned with ``benchmarks/bench_schedule.py``: renders of
    median 150 s are noticed within about a second of finishing, in about 8 polls). A provider
    may declare its own in its capabilities (the fake provider's is fast); a
    :class:`PollingPolicy` may override both.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    first_interval: float = Field(20.0, gt=0, description="least wait while queued or stalled")
    queued_factor: float = Field(1.0, ge=0, description="wait as a fraction of the time queued")
    approach: float = Field(0.55, gt=0, le=1, description="fraction of the estimated time left")
    dense_window: float = Field(3.0, ge=0, description="poll densely once this close to the end")
    dense_interval: float = Field(2.0, gt=0, description="the dense polling interval")
    stall_factor: float = Field(0.5, ge=0, description="wait as a fraction of the time stalled")
    max_interval: float = Field(
        60.0, gt=0, description="no wait is longer, except a provider's hint"
    )


@dataclass(frozen=True, slots=True)
class Track:
    """What is known of one job's progress. Times are seconds on one clock.

    ``anchor_at``/``anchor_progress`` is when rendering began (as well as answers can tell) and
    the progress then; ``moved_at`` is the last time the status or the progress changed;
    ``seen_at`` the time of the last answer.
    """

    submitted_at: float
    status: TaskStatus | None = TaskStatus.QUEUED
    progress: int = 0
    anchor_at: float | None = None
    anchor_progress: int = 0
    moved_at: float | None = None
    seen_at: float | None = None

    def advance(self, status: TaskStatus | None, progress: int, now: float) -> Track:
        """The track after an answer that said ``status`` and ``progress`` at ``now``."""
        progress = max(self.progress, progress)
        moved = status is not self.status or progress != self.progress
        anchor_at, anchor_progress = self.anchor_at, self.anchor_progress
        if anchor_at is None and status is TaskStatus.PROCESSING:
            if progress > 0 and self.seen_at is not None:
                # rendering began at some point since the last answer: take the middle of that span
                anchor_at, anchor_progress = (self.seen_at + now) / 2, self.progress
            else:
                anchor_at, anchor_progress = now, progress
        return Track(
            submitted_at=self.submitted_at,
            status=status,
            progress=progress,
            anchor_at=anchor_at,
            anchor_progress=anchor_progress,
            moved_at=now if moved else self.moved_at,
            seen_at=now,
        )

    def remaining(self, now: float) -> float | None:
        """Seconds until the job should finish, from its progress rate; ``None`` if unknown."""
        if self.anchor_at is None:
            return None
        elapsed = now - self.anchor_at
        gained = self.progress - self.anchor_progress
        if elapsed <= 0 or gained <= 0:
            return None
        return (100 - self.progress) * elapsed / gained


_DEFAULT = PollSchedule()


def next_delay(
    track: Track,
    now: float,
    *,
    hint: float | None = None,
    min_interval: float = 0.0,
    schedule: PollSchedule = _DEFAULT,
) -> float:
    """Seconds to wait before the next poll of this job."""
    waited = now - track.submitted_at
    still = now - (track.moved_at if track.moved_at is not None else track.submitted_at)
    if track.status is TaskStatus.PROCESSING:
        remaining = track.remaining(now)
        if remaining is None:
            delay = max(schedule.first_interval, schedule.stall_factor * still)
        elif remaining > schedule.dense_window:
            delay = schedule.approach * remaining
        else:
            # past the estimate, back off gently so a stuck "99%" does not cost a poll a second
            delay = min(
                max(schedule.dense_interval, schedule.stall_factor * still),
                max(schedule.dense_interval, remaining),
            )
    else:
        delay = max(schedule.first_interval, schedule.queued_factor * waited)
    delay = min(delay, schedule.max_interval)
    return max(delay, min_interval, hint or 0.0)
