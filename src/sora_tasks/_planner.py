"""The engine's polling decisions: plan each next poll, and learn from every completion.

The engine and ``benchmarks/bench_schedule.py`` both go through :class:`Planner`, so what the
benchmark measures is what the engine does.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable

from ._models import Task, TaskStatus
from ._priors import JobKind, RenderPrior, ScheduleMemory
from ._schedule import PollSchedule, Track, next_delay

__all__ = ["Planner", "kind_of"]

# progress readings are kept for this many jobs at once; a job beyond it just teaches no curve
_MAX_TRACKED = 100_000


def kind_of(task: Task) -> JobKind:
    """What decides how long ``task`` takes."""
    return JobKind(task.provider, task.model, task.resolution or task.size, task.seconds)


class Planner:
    """Plans polls from what was learned; learns from each job that completes."""

    def __init__(self, memory: ScheduleMemory | None = None) -> None:
        self.memory = memory if memory is not None else ScheduleMemory()
        self._readings: OrderedDict[str, list[tuple[float, int]]] = OrderedDict()
        self._lock = threading.Lock()

    def plan(
        self,
        job_id: str,
        kind: JobKind,
        before: Track,
        status: TaskStatus | None,
        progress: int,
        now: float,
        *,
        schedule: PollSchedule,
        hint: float | None = None,
        hint_is_floor: bool = True,
        min_interval: float = 0.0,
    ) -> tuple[Track, float]:
        """The track after an answer at ``now``, and the seconds until the next poll."""
        track = before.advance(status, progress, now)
        if track.status is TaskStatus.PROCESSING:
            self._remember(job_id, track, now)
        delay = next_delay(
            track,
            now,
            prior=self.memory.prior(kind, schedule.fallback()),
            curve=self.memory.curve(kind.provider, kind.model),
            hint=hint,
            hint_is_floor=hint_is_floor,
            min_interval=min_interval,
            schedule=schedule,
        )
        return track, delay

    def completed(
        self,
        job_id: str,
        kind: JobKind,
        *,
        submitted_at: float,
        started_at: float | None,
        completed_at: float,
        schedule: PollSchedule,
    ) -> None:
        """Learn from a job that completed: its total time, and how its progress ran."""
        with self._lock:
            seen = self._readings.pop(job_id, [])
        readings: list[tuple[float, int]] = []
        if started_at is not None and completed_at > started_at and seen:
            span = completed_at - started_at
            readings = [(max(0.0, (at - started_at) / span), value) for at, value in seen]
            readings.append((1.0, 100))
        self.memory.learn(kind, completed_at - submitted_at, schedule.fallback(), readings)

    def forget(self, job_id: str) -> None:
        """Drop what was kept of a job that ended without completing."""
        with self._lock:
            self._readings.pop(job_id, None)

    def seed(self, tasks: Iterable[Task], schedule_for: dict[str, PollSchedule]) -> int:
        """Learn the total times of completed ``tasks`` (oldest first); returns how many."""
        learned = 0
        for task in tasks:
            schedule = schedule_for.get(task.provider)
            if (
                schedule is None
                or task.status is not TaskStatus.COMPLETED
                or task.completed_at is None
                or task.submitted_at is None
            ):
                continue
            total = (task.completed_at - task.submitted_at).total_seconds()
            self.memory.learn(kind_of(task), total, schedule.fallback())
            learned += 1
        return learned

    def prior(self, kind: JobKind, schedule: PollSchedule) -> RenderPrior:
        """The current belief about ``kind``."""
        return self.memory.prior(kind, schedule.fallback())

    def _remember(self, job_id: str, track: Track, now: float) -> None:
        with self._lock:
            readings = self._readings.get(job_id)
            if readings is None:
                readings = self._readings[job_id] = []
                if len(self._readings) > _MAX_TRACKED:
                    self._readings.popitem(last=False)
                if track.anchor_at is not None and track.anchor_at < now:
                    readings.append((track.anchor_at, track.anchor_progress))
            if not readings or readings[-1][1] != track.progress:
                readings.append((now, track.progress))
