"""When to ask a provider again: pure functions of what the answers showed and what was learned.

Two sources say when a job will finish, and the schedule weighs them by how sure each is:

- the **prior**: how long jobs of this kind (provider, model, resolution, seconds) took before,
  a lognormal belief learned from completions (see :mod:`sora_tasks._priors`), or the provider's
  declared expectation, or a wide default;
- the **progress** the provider reports, read through the model's learned progress curve (a
  model that sits at 99 % for the last third is not "almost done" at 99 %), or as linear until
  the curve is known; its weight grows with the progress seen.

While the job is queued, or renders without reporting progress, the next poll is where the prior
gives the job a ``prior_step`` chance of having finished since the last look: sparse while
finishing is unlikely, dense where most jobs of its kind finish. While progress moves, a line is
fitted through all the job's readings (each placed on the learned curve, weighed by how narrowly
it places the render; :class:`ProgressFit`), which gives the end and its uncertainty; the
schedule waits ``approach`` of the time left while the end is far, and polls every
``window_interval`` from ``window_sigmas`` sds before the fitted end. Without a fit (a coarse
reporter, a job whose readings this process did not see) the estimate is the track's first and
last readings combined with the prior, discounted by its uncertainty. A provider's hint is a
floor only where the provider means it as one; the provider's minimum interval always is.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

from ._models import TaskStatus
from ._priors import ProgressCurve, RenderPrior

__all__ = ["Finish", "PollSchedule", "ProgressFit", "Track", "next_delay"]


class PollSchedule(BaseModel):
    """The shape of the polling schedule, in seconds.

    ``expected_seconds`` and ``expected_spread`` (log-sd) are the belief about a job's total time
    before any job of its kind has finished (a provider declares its own; the default is wide).
    ``first_interval`` caps every wait while that belief is only declared, so an unknown fast
    model is still seen within seconds. The defaults were tuned with
    ``benchmarks/bench_schedule.py`` on renders from 20 s to 10 minutes.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    expected_seconds: float = Field(60.0, gt=0, description="median total time, before learning")
    expected_spread: float = Field(1.2, gt=0, description="log-sd of the total time, likewise")
    first_interval: float = Field(
        20.0, gt=0, description="no wait is longer until this kind of job has been learned"
    )
    prior_step: float = Field(
        0.15, gt=0, lt=1, description="chance of having finished between two prior-led polls"
    )
    prior_delay: float = Field(
        0.5, gt=0, description="expected lateness a prior-led poll may risk (or 1/200 of the job)"
    )
    progress_spread: float = Field(
        0.35, gt=0, description="log-sd of a progress estimate from 10 points of progress"
    )
    progress_noise: float = Field(
        2.0, ge=0, description="points by which one progress reading may be off"
    )
    caution: float = Field(5.5, ge=0, description="how far an uncertain estimate is discounted")
    dense_window: float = Field(3.0, ge=0, description="poll densely once this close to the end")
    dense_interval: float = Field(2.0, gt=0, description="the dense polling interval")
    stall_factor: float = Field(
        0.2, ge=0, description="wait as a fraction of the time past the estimated end"
    )
    max_interval: float = Field(
        60.0, gt=0, description="no wait is longer, unless a quarter of the expected time is"
    )
    approach: float = Field(
        0.65, gt=0, lt=1, description="share of the fitted time left waited while far from the end"
    )
    window_sigmas: float = Field(
        1.8, ge=0, description="the dense window opens this many fitted sds before the end"
    )
    window_interval: float | None = Field(
        None,
        gt=0,
        description="the polling interval around a fitted end; 1.25 x dense_interval if unset",
    )

    def window(self) -> float:
        """The polling interval around a fitted end.

        Unset, it is a little longer than ``dense_interval``: the fitted window is wider than
        ``dense_window``, so a poll less often there saves more than it costs in lateness.
        """
        return (
            self.window_interval if self.window_interval is not None else 1.25 * self.dense_interval
        )

    def fallback(self) -> RenderPrior:
        """The belief before learning: the declared expectation."""
        return RenderPrior(self.expected_seconds, self.expected_spread)


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
            if self.seen_at is not None and self.status is not TaskStatus.PROCESSING:
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

    def remaining(self, now: float, curve: ProgressCurve | None = None) -> float | None:
        """Seconds until the job should finish by its progress; ``None`` if progress says nothing.

        With a learned ``curve`` the render's length is read from when the current figure was
        first reported; otherwise progress is taken to grow in proportion to time.
        """
        if self.anchor_at is None or self.progress <= self.anchor_progress:
            return None
        reached = self.moved_at if self.moved_at is not None else now
        fraction = curve.fraction(self.progress) if curve is not None else None
        start = curve.fraction(self.anchor_progress) if curve is not None else None
        if fraction is not None and start is not None and fraction > start:
            render = (reached - self.anchor_at) / (fraction - start)
            return self.anchor_at - start * render + render - now
        elapsed = now - self.anchor_at
        if elapsed <= 0:
            return None
        return (100 - self.progress) * elapsed / (self.progress - self.anchor_progress)


@dataclass(frozen=True, slots=True)
class Finish:
    """When a job should finish by a fit of all its progress readings: ``at`` and its sd.

    ``rate`` is the fitted share of the render done per second.
    """

    at: float
    sd: float
    rate: float


@dataclass(slots=True)
class ProgressFit:
    """Weighted sums of one job's progress points: enough to fit a line, in constant memory.

    Each point is (time, fraction of the render done, variance of that fraction); times are
    kept relative to the first point so the sums stay well-conditioned.
    """

    origin: float | None = None
    count: int = 0
    weight: float = 0.0
    t: float = 0.0
    f: float = 0.0
    tt: float = 0.0
    tf: float = 0.0
    ff: float = 0.0

    def add(self, at: float, fraction: float, variance: float) -> None:
        """Fold in one point."""
        if self.origin is None:
            self.origin = at
        at -= self.origin
        weight = 1 / variance
        self.count += 1
        self.weight += weight
        self.t += weight * at
        self.f += weight * fraction
        self.tt += weight * at * at
        self.tf += weight * at * fraction
        self.ff += weight * fraction * fraction

    def finish(self) -> Finish | None:
        """When the fitted line reaches the whole render, and the sd of that time.

        The sd grows with the points' scatter and with how far the end lies beyond them, and
        falls with their number. ``None`` while the line is not determined or does not rise.
        """
        if self.count < 2 or self.origin is None:
            return None
        mean_t, mean_f = self.t / self.weight, self.f / self.weight
        sxx = self.tt - self.weight * mean_t * mean_t
        sxy = self.tf - self.weight * mean_t * mean_f
        if sxx <= 0 or sxy <= 0:
            return None
        rate = sxy / sxx
        end = mean_t + (1 - mean_f) / rate
        misfit = max(0.0, self.ff - self.weight * mean_f * mean_f - rate * sxy)
        # the stated variances may be too small (a curve learned from other jobs): trust the scatter
        scale = max(1.0, misfit / (self.count - 2)) if self.count > 2 else 1.0
        sd = math.sqrt(scale * (1 / self.weight + (end - mean_t) ** 2 / sxx)) / rate
        return Finish(self.origin + end, sd, rate)


_DEFAULT = PollSchedule()


def next_delay(
    track: Track,
    now: float,
    *,
    prior: RenderPrior | None = None,
    curve: ProgressCurve | None = None,
    hint: float | None = None,
    hint_is_floor: bool = True,
    min_interval: float = 0.0,
    schedule: PollSchedule = _DEFAULT,
    finish: Finish | None = None,
) -> float:
    """Seconds to wait before the next poll of this job.

    ``finish`` is the fit of the job's progress readings (see :class:`ProgressFit`) where they
    were kept; without it the estimate comes from the track's first and last readings.
    """
    prior = prior if prior is not None else schedule.fallback()
    elapsed = max(0.0, now - track.submitted_at)
    ceiling = max(schedule.max_interval, prior.median / 2)
    rendering = track.status is TaskStatus.PROCESSING
    remaining = track.remaining(now, curve) if rendering and finish is None else None
    if rendering and finish is not None:
        # approach the fitted end geometrically (each reading sharpens the fit), then poll
        # densely from where the end becomes likely, for as long as the job runs
        opens = finish.at - schedule.window_sigmas * finish.sd
        if now < opens:
            delay = min(opens - now, schedule.approach * (finish.at - now))
        elif now > finish.at + schedule.window_sigmas * finish.sd:
            delay = schedule.stall_factor * (now - finish.at)
        else:
            delay = 0.0
        delay = max(delay, schedule.window())
    elif remaining is None:
        outlived = elapsed - prior.quantile(0.99)
        if outlived > 0:
            # slower than nearly every job of its kind: the belief is no guide, back off gently
            delay = schedule.stall_factor * outlived
        else:
            # lateness is judged against the job's length: 3 s late on a 10-minute render is fine
            cost = max(schedule.prior_delay, prior.median / 200)
            delay = _prior_step(prior, elapsed, schedule.prior_step, cost)
        if prior.count == 0:
            delay = min(delay, schedule.first_interval)
        delay = max(delay, schedule.dense_interval)
    else:
        estimate, spread = _weigh(remaining, track, prior, elapsed, schedule)
        if remaining > 0 and estimate > schedule.dense_window:
            delay = estimate * math.exp(-schedule.caution * spread)
        elif remaining > 0:
            delay = estimate
        else:
            # past the estimate: back off in proportion to how late the job is
            delay = schedule.stall_factor * -remaining
        if curve is None or curve.fraction(track.progress) is None:
            # progress read as linear: back off gently while nothing moves, so a stuck "99%"
            # does not cost a poll a second (a learned curve knows where progress sits)
            still = now - (track.moved_at if track.moved_at is not None else now)
            delay = max(delay, schedule.stall_factor * still)
        delay = max(delay, schedule.dense_interval)
    delay = min(delay, ceiling)
    return max(delay, min_interval, hint if hint is not None and hint_is_floor else 0.0)


def _prior_step(prior: RenderPrior, elapsed: float, step: float, cost: float) -> float:
    """Seconds to the next prior-led poll.

    The wait ``d`` is the longest whose expected lateness cost, the chance of finishing within it
    times ``d``, stays under ``cost`` seconds (polls are dense where jobs of this kind finish,
    sparse elsewhere), and never skips more than a ``step`` chance of finishing.
    """
    done = prior.cdf(elapsed)
    alive = max(1 - done, 1e-9)
    longest = max(0.0, prior.quantile(done + step * alive) - elapsed)
    low, high = 0.0, longest
    for _ in range(30):
        middle = (low + high) / 2
        chance = (prior.cdf(elapsed + middle) - done) / alive
        if chance * middle > cost:
            high = middle
        else:
            low = middle
    return low


def _weigh(
    remaining: float, track: Track, prior: RenderPrior, elapsed: float, schedule: PollSchedule
) -> tuple[float, float]:
    """The time left from progress and from the prior, weighed by certainty (in log space)."""
    gained = max(1, track.progress - track.anchor_progress)
    # the rate is surer the more progress it spans; the last few points are as noisy as any
    rate = schedule.progress_spread / math.sqrt(gained / 10)
    noise = min(schedule.progress_noise / max(1, 100 - track.progress), 0.5)
    progress_spread = math.hypot(rate, noise)
    done = prior.cdf(elapsed)
    prior_left = max(1.0, prior.quantile(done + 0.5 * (1 - done)) - elapsed)
    weights = (1 / progress_spread**2, 1 / prior.spread**2)
    logs = (math.log(max(remaining, 0.1)), math.log(prior_left))
    mean = (weights[0] * logs[0] + weights[1] * logs[1]) / sum(weights)
    return math.exp(mean), 1 / math.sqrt(sum(weights))
