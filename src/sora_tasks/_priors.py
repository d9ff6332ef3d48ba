"""What the schedule learns: how long each kind of job takes, and how its progress runs over time.

Render times differ by two orders of magnitude between a fast model at 480p and a 1080p clip of a
slow one, and progress means different things to different models (it may jump to 50 % at once,
sit at 99 % for the last third, or move in steps of 25). So the schedule keeps, per kind of job, a
lognormal belief of its total time (submit to completion), updated on every completion, and per
model a curve of when each progress figure is first reported, as a fraction of the render.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from statistics import NormalDist

__all__ = ["JobKind", "ProgressCurve", "RenderPrior", "ScheduleMemory"]

_NORMAL = NormalDist()
# how fast a belief forgets: each completion weighs at least this much, so a provider that slows
# down under load is followed within a few dozen jobs
_MIN_WEIGHT = 0.05
_MIN_CURVE_SAMPLES = 3
# the narrowest span a figure is placed in counts as this wide (a share of the render)
_SPAN_FLOOR = 0.01


@dataclass(frozen=True, slots=True)
class JobKind:
    """What decides how long a job takes: who renders it, which model, how big and how long."""

    provider: str
    model: str
    resolution: str | None
    seconds: int


@dataclass(slots=True)
class RenderPrior:
    """A lognormal belief of a job's total time, submit to completion: its median and log-spread.

    ``count`` is how many completions taught it (0 for a declared or default belief).
    """

    median: float
    spread: float
    count: int = 0

    def learn(self, seconds: float) -> None:
        """Move the belief towards one more observed total time (log-space moving estimate)."""
        if seconds <= 0:
            return
        weight = max(1.0 / (self.count + 1), _MIN_WEIGHT)
        if self.count == 0:
            self.median, self.count = seconds, 1
            return
        mu, value = math.log(self.median), math.log(seconds)
        shifted = mu + weight * (value - mu)
        variance = (1 - weight) * (self.spread**2 + weight * (value - mu) ** 2)
        self.median = math.exp(shifted)
        # a few completions of identical length must not make the belief certain
        self.spread = max(math.sqrt(variance), 0.05)
        self.count += 1

    def cdf(self, seconds: float) -> float:
        """The probability that the job is done ``seconds`` after its submit."""
        ratio = seconds / self.median
        if ratio <= 0:
            return 0.0
        return _NORMAL.cdf(math.log(ratio) / self.spread)

    def quantile(self, probability: float) -> float:
        """The total time by which the job is done with ``probability``."""
        probability = min(max(probability, 1e-6), 1 - 1e-6)
        return self.median * math.exp(self.spread * _NORMAL.inv_cdf(probability))


@dataclass(slots=True)
class ProgressCurve:
    """When a model's progress first reaches each figure, as a fraction of its render time.

    ``fractions[p]`` is the fraction of the render elapsed when progress was first seen at ``p``
    or more; ``None`` until a job got there. A linear reporter has ``fractions[p] == p / 100``;
    one that sits at 99 % for the last 40 % has ``fractions[99] == 0.6``. ``reported[p]`` says
    whether any job reported ``p`` itself (a model that moves in steps of 25 % never does 30).
    """

    fractions: list[float | None] = field(default_factory=lambda: [None] * 100)
    samples: int = 0
    reported: list[bool] = field(default_factory=lambda: [False] * 100)
    weights: list[float] = field(default_factory=lambda: [0.0] * 100)

    def learn(self, readings: Iterable[tuple[float, int]]) -> None:
        """Fold in one finished job's readings: (fraction of its render elapsed, progress).

        Polls are sparse, so a figure passed between two readings is placed between them in
        proportion (it was first reached somewhere in that span, not at the later reading), and
        weighs by how narrow that span is: a jump from 60 % to 99 % over a third of the render
        says little about where 99 % is, two readings a few seconds apart say much.
        """
        first: dict[int, tuple[float, float]] = {}
        last: tuple[float, int] | None = None
        for fraction, progress in sorted(readings):
            if 0 <= progress < 100:  # 100 is the completion, not a figure the model reported
                self.reported[progress] = True
            progress = min(max(progress, 0), 99)
            if last is None:
                first.setdefault(progress, (fraction, 0.0))
            elif progress > last[1]:
                span, gained = fraction - last[0], progress - last[1]
                for figure in range(last[1] + 1, progress + 1):
                    first[figure] = (last[0] + span * (figure - last[1]) / gained, span)
            if last is None or progress > last[1]:
                last = (fraction, progress)
        if not first:
            return
        for figure, (fraction, span) in first.items():
            old = self.fractions[figure]
            weight = 1 / (span * span + _SPAN_FLOOR**2)
            # older jobs fade, so a model whose progress changes is followed
            total = self.weights[figure] * (1 - _MIN_WEIGHT) + weight
            self.weights[figure] = total
            self.fractions[figure] = (
                fraction if old is None else old + weight / total * (fraction - old)
            )
        self.samples += 1

    def fraction(self, progress: int) -> float | None:
        """The learned fraction of the render elapsed when ``progress`` is first reported.

        ``None`` while the curve knows too little: the schedule then reads progress as linear.
        """
        if self.samples < _MIN_CURVE_SAMPLES:
            return None
        for figure in range(min(max(progress, 0), 99), -1, -1):
            value = self.fractions[figure]
            if value is not None:
                return value
        return None

    def next_reported(self, progress: int) -> float | None:
        """The learned fraction of the first figure above ``progress`` that a job reported.

        A reading of ``progress`` was taken between :meth:`fraction` and this (``None``: the
        figure is the last one reported before the end).
        """
        for figure in range(min(max(progress, 0), 99) + 1, 100):
            if self.reported[figure]:
                return self.fractions[figure]
        return None


class ScheduleMemory:
    """The beliefs one engine has learned, by kind of job and by model. Safe across threads.

    ``fallback(kind)`` is the belief before any completion (from the provider's declared
    expectation or the global default); :meth:`seed` loads figures from elsewhere (a previous
    run's stored tasks, another deployment).
    """

    def __init__(self) -> None:
        self._priors: dict[JobKind, RenderPrior] = {}
        self._curves: dict[tuple[str, str], ProgressCurve] = {}
        self._lock = threading.Lock()

    def prior(self, kind: JobKind, fallback: RenderPrior) -> RenderPrior:
        """The belief for ``kind``: learned if any job of that kind finished, else ``fallback``."""
        with self._lock:
            learned = self._priors.get(kind)
            if learned is not None:
                return RenderPrior(learned.median, learned.spread, learned.count)
        return fallback

    def curve(self, provider: str, model: str) -> ProgressCurve | None:
        """The progress curve of ``model``, once learned."""
        with self._lock:
            return self._curves.get((provider, model))

    def learn(
        self,
        kind: JobKind,
        total_seconds: float,
        fallback: RenderPrior,
        readings: Iterable[tuple[float, int]] = (),
    ) -> None:
        """Fold in one completed job: its total time and, if known, its progress readings."""
        with self._lock:
            prior = self._priors.get(kind)
            if prior is None:
                prior = self._priors[kind] = RenderPrior(fallback.median, fallback.spread)
            prior.learn(total_seconds)
            readings = list(readings)
            if readings:
                key = (kind.provider, kind.model)
                self._curves.setdefault(key, ProgressCurve()).learn(readings)

    def seed(self, totals: Mapping[JobKind, Iterable[float]], fallback: RenderPrior) -> None:
        """Learn past total times per kind of job, oldest first."""
        for kind, seconds in totals.items():
            for value in seconds:
                self.learn(kind, value, fallback)

    def snapshot(self) -> dict[JobKind, RenderPrior]:
        """A copy of every learned belief."""
        with self._lock:
            return {
                kind: RenderPrior(prior.median, prior.spread, prior.count)
                for kind, prior in self._priors.items()
            }
