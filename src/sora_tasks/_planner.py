"""The engine's polling decisions: plan each next poll, and learn from every completion.

The engine and ``benchmarks/bench_schedule.py`` both go through :class:`Planner`, so what the
benchmark measures is what the engine does.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable

from ._models import Task, TaskStatus
from ._priors import JobKind, ProgressCurve, RenderPrior, ScheduleMemory
from ._schedule import Finish, PollSchedule, ProgressFit, Track, next_delay

__all__ = ["Planner", "kind_of"]

# progress readings are kept for this many jobs at once; a job beyond it just teaches no curve
_MAX_TRACKED = 100_000
# a reading narrower than this share of the render places the job well enough to fit through
_PRECISE = 0.05
# no reading places the render closer than a thousandth of it (and the fit's sums stay sound)
_LEAST_VARIANCE = 1e-6


def kind_of(task: Task) -> JobKind:
    """What decides how long ``task`` takes."""
    return JobKind(task.provider, task.model, task.resolution or task.size, task.seconds)


class Planner:
    """Plans polls from what was learned; learns from each job that completes."""

    def __init__(self, memory: ScheduleMemory | None = None) -> None:
        self.memory = memory if memory is not None else ScheduleMemory()
        self._readings: OrderedDict[str, list[tuple[float, int]]] = OrderedDict()
        self._fits: dict[str, _Fit] = {}
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
        prior = self.memory.prior(kind, schedule.fallback())
        curve = self.memory.curve(kind.provider, kind.model)
        finish = None
        if track.status is TaskStatus.PROCESSING:
            self._remember(job_id, track, now)
            finish = self._fit(job_id, before, track.progress, now, prior, curve, schedule)
        delay = next_delay(
            track,
            now,
            prior=prior,
            curve=curve,
            hint=hint,
            hint_is_floor=hint_is_floor,
            min_interval=min_interval,
            schedule=schedule,
            finish=finish,
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
            self._fits.pop(job_id, None)
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
            self._fits.pop(job_id, None)

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
                    dropped, _ = self._readings.popitem(last=False)
                    self._fits.pop(dropped, None)
                if track.anchor_at is not None and track.anchor_at < now:
                    readings.append((track.anchor_at, track.anchor_progress))
            if not readings or readings[-1][1] != track.progress:
                readings.append((now, track.progress))

    def _fit(
        self,
        job_id: str,
        before: Track,
        progress: int,
        now: float,
        prior: RenderPrior,
        curve: ProgressCurve | None,
        schedule: PollSchedule,
    ) -> Finish | None:
        """Add a new figure to the job's points and fit its finish through them all.

        ``progress`` (the highest figure yet, as the curve was learned) says the render was
        between the fraction where it is first reported and where the next reported figure is;
        having just risen, it was also within the span since the last answer, so a coarse
        reporter is placed by when its figure changed. ``None`` until two points are narrow:
        a fit through coarse spans alone (steps of 25 %) is too loose to poll densely around,
        and the track's estimate serves.
        """
        with self._lock:
            fit = self._fits.get(job_id)
            if fit is None:
                # kept, and dropped, with the job's readings (at most _MAX_TRACKED jobs)
                fit = self._fits[job_id] = _Fit()
            if progress != fit.last:
                low, high = _span(progress, curve)
                width = high - low
                if width <= _PRECISE:
                    fit.precise += 1
                risen = progress > before.progress or before.status is not TaskStatus.PROCESSING
                if risen and before.seen_at is not None:
                    rate = fit.finish.rate if fit.finish is not None else 1 / prior.median
                    width = min(width, rate * (now - before.seen_at))
                # a point of progress is worth the curve's average share of the render per point
                slope = low / progress if progress > 0 and low > 0 else 0.01
                variance = (schedule.progress_noise * slope) ** 2 + width**2 / 12
                fit.sums.add(now, low + width / 2, max(variance, _LEAST_VARIANCE))
                fit.last = progress
                fit.finish = fit.sums.finish()
            return fit.finish if fit.precise >= 2 else None


class _Fit:
    """The points one job's progress readings gave, and the finish fitted through them."""

    __slots__ = ("finish", "last", "precise", "sums")

    def __init__(self) -> None:
        self.sums = ProgressFit()
        self.last = -1  # the figure of the last point
        self.precise = 0  # how many points lie in a narrow span
        self.finish: Finish | None = None


def _span(progress: int, curve: ProgressCurve | None) -> tuple[float, float]:
    """The fractions of the render between which a reading of ``progress`` was taken."""
    if curve is None or curve.fraction(progress) is None:
        return progress / 100, min(progress + 1, 100) / 100
    low = curve.fraction(progress) or 0.0
    high = curve.next_reported(progress)
    return low, max(low, high if high is not None else 1.0)
