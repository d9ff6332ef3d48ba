"""The polling schedule and what it learns: case by case, by property, and on each render shape."""

from __future__ import annotations

import math
import random
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sora_tasks import PollingPolicy, TaskManager, TaskStatus
from sora_tasks._models import TaskPage, TaskQuery
from sora_tasks._planner import Planner
from sora_tasks._priors import JobKind, ProgressCurve, RenderPrior, ScheduleMemory
from sora_tasks._schedule import Finish, PollSchedule, ProgressFit, Track, next_delay
from sora_tasks.storage import InMemoryStore
from sora_tasks.testing import FakeBehaviour, FakeProvider

S = PollSchedule()
KIND = JobKind("p", "m", "720p", 8)


def rendering(progress: int, *, anchor_at: float = 100.0, anchor_progress: int = 0) -> Track:
    return Track(
        submitted_at=0.0,
        status=TaskStatus.PROCESSING,
        progress=progress,
        anchor_at=anchor_at,
        anchor_progress=anchor_progress,
        moved_at=anchor_at,
    )


def test_an_unlearned_kind_is_first_polled_within_first_interval() -> None:
    queued = Track(submitted_at=0.0)
    assert 0 < next_delay(queued, 0.0) <= S.first_interval
    slow = RenderPrior(600.0, 0.5)
    assert next_delay(queued, 0.0, prior=slow) == S.first_interval


def test_a_learned_prior_sets_the_first_poll_fast_models_early_slow_ones_late() -> None:
    queued = Track(submitted_at=0.0)
    fast = next_delay(queued, 0.0, prior=RenderPrior(20.0, 0.3, count=50))
    slow = next_delay(queued, 0.0, prior=RenderPrior(600.0, 0.3, count=50))
    assert 5 < fast < 20
    assert slow > 100


def test_prior_led_polls_are_densest_where_jobs_of_the_kind_finish() -> None:
    prior = RenderPrior(70.0, 0.2, count=50)
    queued = Track(submitted_at=0.0, status=TaskStatus.PROCESSING)
    early, middle = next_delay(queued, 10.0, prior=prior), next_delay(queued, 70.0, prior=prior)
    assert middle < early
    assert middle <= 6.0  # a silent provider is still noticed within seconds of the typical end


def test_far_from_the_end_it_waits_a_discounted_share_of_the_time_left() -> None:
    track = rendering(50, anchor_at=100.0)  # 50 % in 50 s: 50 s left at t=150
    assert track.remaining(150.0) == pytest.approx(50.0)
    prior = RenderPrior(200.0, 0.6, count=50)
    delay = next_delay(track, 150.0, prior=prior)
    assert 10.0 < delay < 50.0


def test_near_the_end_it_polls_densely_and_past_it_backs_off_gently() -> None:
    near = Track(
        submitted_at=0.0, status=TaskStatus.PROCESSING, progress=98, anchor_at=0.0, moved_at=98.0
    )
    assert next_delay(near, 98.0) <= S.dense_window
    curve = linear_curve()
    overdue = Track(
        submitted_at=0.0, status=TaskStatus.PROCESSING, progress=90, anchor_at=0.0, moved_at=90.0
    )
    assert overdue.remaining(200.0, curve) == pytest.approx(-100.0)
    assert next_delay(overdue, 200.0, curve=curve) == pytest.approx(S.stall_factor * 100.0)


def linear_curve() -> ProgressCurve:
    curve = ProgressCurve()
    for _ in range(5):
        curve.learn([(p / 100, p) for p in range(0, 100, 10)] + [(1.0, 100)])
    return curve


def test_a_learned_curve_reads_a_stuck_99_as_far_from_done() -> None:
    curve = ProgressCurve()
    for _ in range(5):  # reaches 99 % at 60 % of the render, then sits there
        curve.learn([(0.0, 0), (0.3, 50), (0.6, 99), (0.9, 99), (1.0, 100)])
    assert curve.fraction(99) == pytest.approx(0.6)
    track = Track(
        submitted_at=0.0, status=TaskStatus.PROCESSING, progress=99, anchor_at=0.0, moved_at=60.0
    )
    assert track.remaining(60.0, curve) == pytest.approx(40.0)
    assert track.remaining(60.0) == pytest.approx(60.0 / 99)  # linear: "almost done"


def test_a_curve_places_figures_passed_between_readings_in_proportion() -> None:
    curve = ProgressCurve()
    for _ in range(3):
        curve.learn([(0.0, 0), (0.5, 50), (1.0, 100)])
    assert curve.fraction(25) == pytest.approx(0.25)
    assert ProgressCurve().fraction(25) is None  # too few samples: progress read as linear


def test_a_prior_learns_the_median_and_follows_a_provider_that_slows_down() -> None:
    prior = RenderPrior(60.0, 1.2)
    for _ in range(200):
        prior.learn(30.0)
    assert prior.median == pytest.approx(30.0, rel=0.01)
    assert prior.spread == pytest.approx(0.05)
    for _ in range(100):
        prior.learn(90.0)
    assert prior.median == pytest.approx(90.0, rel=0.05)


def test_memory_keeps_one_belief_per_kind_of_job() -> None:
    memory = ScheduleMemory()
    fallback = S.fallback()
    other = JobKind("p", "m", "1080p", 8)
    memory.learn(KIND, 20.0, fallback)
    assert memory.prior(KIND, fallback).median == 20.0
    assert memory.prior(other, fallback) is fallback
    assert set(memory.snapshot()) == {KIND}


def test_a_hint_is_a_floor_only_where_the_provider_means_it() -> None:
    track = Track(
        submitted_at=0.0, status=TaskStatus.PROCESSING, progress=98, anchor_at=0.0, moved_at=98.0
    )
    assert next_delay(track, 98.0, hint=30.0, hint_is_floor=True) == 30.0
    assert next_delay(track, 98.0, hint=30.0, hint_is_floor=False) < 30.0


def test_first_rendering_answer_anchors_in_the_middle_of_the_unseen_span() -> None:
    queued = Track(submitted_at=0.0).advance(TaskStatus.QUEUED, 0, 10.0)
    started = queued.advance(TaskStatus.PROCESSING, 10, 30.0)
    assert (started.anchor_at, started.anchor_progress) == (20.0, 0)
    assert started.remaining(30.0) == pytest.approx(90.0)


def test_a_job_seen_rendering_at_zero_after_queued_began_in_the_middle_of_the_gap() -> None:
    queued = Track(submitted_at=0.0).advance(TaskStatus.QUEUED, 0, 10.0)
    started = queued.advance(TaskStatus.PROCESSING, 0, 30.0)
    assert (started.anchor_at, started.anchor_progress) == (20.0, 0)
    # with no answer before, nothing says it began earlier
    direct = Track(submitted_at=0.0).advance(TaskStatus.PROCESSING, 0, 5.0)
    assert direct.anchor_at == 5.0


def fit_finish(points: list[tuple[float, float, float]]) -> Finish | None:
    fit = ProgressFit()
    for point in points:
        fit.add(*point)
    return fit.finish()


def test_a_fit_through_all_readings_finds_the_end_and_grows_surer_with_more_of_them() -> None:
    def points(times: list[float], noise: float) -> list[tuple[float, float, float]]:
        rng = random.Random(3)
        # a 500 s render that began at t=100: done at 600
        return [(t, (t - 100) / 500 + rng.gauss(0, noise), noise**2 + 1e-6) for t in times]

    exact = fit_finish(points([150.0, 300.0], 0.0))
    assert exact is not None
    assert exact.at == pytest.approx(600.0)
    assert exact.rate == pytest.approx(1 / 500)
    few = fit_finish(points([150.0, 250.0, 350.0], 0.02))
    many = fit_finish(points([150.0 + 20 * i for i in range(20)], 0.02))
    assert few is not None and many is not None
    assert many.sd < few.sd
    assert abs(many.at - 600.0) < 3 * many.sd
    assert fit_finish(points([150.0], 0.0)) is None
    assert fit_finish([(1.0, 0.5, 0.01), (2.0, 0.4, 0.01)]) is None  # progress that falls


def test_around_a_fitted_end_it_approaches_in_shares_then_polls_densely_then_backs_off() -> None:
    track = rendering(60, anchor_at=0.0)
    finish = Finish(at=1000.0, sd=5.0, rate=0.001)
    prior = RenderPrior(1000.0, 0.5, count=50)  # long jobs: waits up to 500 s are allowed
    far = next_delay(track, 400.0, prior=prior, finish=finish)
    assert far == pytest.approx(S.approach * 600.0)
    # the last approach lands where the window opens
    opens = finish.at - S.window_sigmas * finish.sd
    assert next_delay(track, opens - 5.0, prior=prior, finish=finish) == pytest.approx(5.0)
    assert next_delay(track, 1000.0, prior=prior, finish=finish) == S.window()
    quick = PollSchedule(dense_interval=0.1)  # a quick schedule is quick around the end too
    assert next_delay(track, 1000.0, prior=prior, finish=finish, schedule=quick) < 0.2
    late = next_delay(track, 1100.0, prior=prior, finish=finish)
    assert late == pytest.approx(S.stall_factor * 100.0)


def test_a_stepped_curve_knows_which_figures_are_reported() -> None:
    curve = ProgressCurve()
    for _ in range(3):
        curve.learn([(0.0, 0), (0.26, 25), (0.51, 50), (0.76, 75), (1.0, 100)])
    assert curve.next_reported(25) == pytest.approx(0.51)
    assert curve.next_reported(75) is None  # the next change is the end
    assert curve.next_reported(24) == pytest.approx(0.26)


def test_a_narrow_span_outweighs_a_wide_one_in_the_curve() -> None:
    curve = ProgressCurve()
    for _ in range(3):  # dense readings around where 99 % is reached
        curve.learn([(0.0, 0), (0.3, 50), (0.59, 97), (0.61, 99), (1.0, 100)])
    for _ in range(3):  # sparse ones: 99 % first seen long after it was reached
        curve.learn([(0.0, 0), (0.3, 50), (0.9, 99), (1.0, 100)])
    fraction = curve.fraction(99)
    assert fraction is not None and fraction < 0.63


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
    median=st.floats(1, 5_000),
    spread=st.floats(0.05, 2),
    finish=st.none()
    | st.builds(Finish, st.floats(-1_000, 20_000), st.floats(0, 5_000), st.floats(1e-6, 1)),
)
def test_every_delay_honours_the_floors_and_the_ceiling_and_is_finite(
    status: TaskStatus | None,
    progress: int,
    now: float,
    hint: float | None,
    floor: float,
    median: float,
    spread: float,
    finish: Finish | None,
) -> None:
    track = Track(
        submitted_at=0.0,
        status=status,
        progress=progress,
        anchor_at=now / 2,
        anchor_progress=progress // 2,
        moved_at=now / 3,
    )
    prior = RenderPrior(median, spread, count=10)
    delay = next_delay(track, now, prior=prior, hint=hint, min_interval=floor, finish=finish)
    ceiling = max(S.max_interval, median / 2)
    assert delay >= floor and delay >= (hint or 0.0)
    assert delay <= max(ceiling, floor, hint or 0.0)
    assert 0 < delay < math.inf


Shape = Callable[[float], int | None]

SHAPES: dict[str, Shape] = {
    "linear": lambda f: min(99, int(100 * f)),
    "jumps to 50 % then slows": lambda f: min(99, int(500 * f if f < 0.1 else 50 + 50 * f)),
    "sits at 99 % for the last 40 %": lambda f: min(99, int(99 * f / 0.6)),
    "steps of 25 %": lambda f: 25 * int(4 * f),
    "no progress": lambda f: None,
}


@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
@pytest.mark.parametrize("median", [20.0, 150.0, 600.0])
def test_every_render_shape_is_followed_to_its_end_with_few_polls(
    shape: Shape, median: float
) -> None:
    """The planner, as the engine drives it, learns each shape: none is lost or polled wildly."""
    rng = random.Random(7)
    planner = Planner()
    polls, delays = [], []
    for number in range(120):
        render = median * math.exp(rng.gauss(0, 0.3))
        queue = rng.uniform(0, median / 10)
        done_at = queue + render

        def answer(t: float) -> tuple[TaskStatus, int]:
            if t >= done_at:  # noqa: B023 - read within the loop body only
                return TaskStatus.COMPLETED, 100
            if t < queue:  # noqa: B023
                return TaskStatus.QUEUED, 0
            return TaskStatus.PROCESSING, shape((t - queue) / render) or 0  # noqa: B023

        job = f"job{number}"
        track, delay = planner.plan(job, KIND, Track(0.0), *answer(0.0), 0.0, schedule=S)
        t, count = 0.0, 0
        while (state := answer(t + delay))[0] is not TaskStatus.COMPLETED:
            t, count = t + delay, count + 1
            assert count < 100, "never noticed the end"
            track, delay = planner.plan(job, KIND, track, *state, t, schedule=S)
        t += delay
        planner.completed(
            job, KIND, submitted_at=0.0, started_at=track.anchor_at, completed_at=t, schedule=S
        )
        if number >= 20:
            polls.append(count + 1)
            delays.append(t - done_at)
    polls.sort()
    delays.sort()
    assert polls[len(polls) // 2] <= 16
    # without progress only the learned prior guides: lateness is judged against the length
    assert delays[len(delays) // 2] <= max(3.0, median / (25 if shape(0.5) is None else 50))


@pytest.mark.anyio
async def test_a_store_that_cannot_list_past_tasks_does_not_stop_the_worker() -> None:
    class Broken(InMemoryStore):
        async def list(self, query: TaskQuery) -> TaskPage:
            raise RuntimeError("a custom store's own failure")

    fake = FakeProvider(behaviour=FakeBehaviour(render_for=0.05, poll_after=0.01))
    policy = PollingPolicy(retry_interval=0.01, idle_wait=0.05, reconcile_delay=0)
    async with TaskManager(providers={"fake": fake}, store=Broken(), policy=policy) as manager:
        task = await manager.create("a cat")
        done = await manager.wait(task.id, timeout=10)
    assert done.status is TaskStatus.COMPLETED


def _noisy(shape: Shape) -> Callable[[float, random.Random], int | None]:
    def read(fraction: float, rng: random.Random) -> int | None:
        value = shape(fraction)
        if value is None:
            return None
        return max(0, min(99, int(value + rng.gauss(0, 2))))

    return read


def _quiet(shape: Shape) -> Callable[[float, random.Random], int | None]:
    return lambda fraction, rng: shape(fraction)


STUCK = "sits at 99 % for the last 40 %"
MIXES = {
    # (queue up to, render median, progress, polls p50 at most, delay p50 and p90 at most)
    "tuning: 150 s, linear with noise": (40.0, 150.0, _noisy(SHAPES["linear"]), 9, 1.5, 3.0),
    "fast: 20 s, linear with noise": (5.0, 20.0, _noisy(SHAPES["linear"]), 6, 1.5, 3.0),
    "long: 600 s, linear with noise": (120.0, 600.0, _noisy(SHAPES["linear"]), 12, 1.5, 3.0),
    "stuck at 99 % for the last 40 %": (40.0, 150.0, _quiet(SHAPES[STUCK]), 13, 1.5, 3.0),
    "jumps to 50 %": (40.0, 150.0, _quiet(SHAPES["jumps to 50 % then slows"]), 8, 1.5, 3.0),
    "steps of 25 %": (40.0, 150.0, _quiet(SHAPES["steps of 25 %"]), 11, 2.0, 9.0),
}


@pytest.mark.parametrize("mix", MIXES.values(), ids=MIXES.keys())
def test_each_benchmark_mix_keeps_its_figures(
    mix: tuple[float, float, Callable[[float, random.Random], int | None], int, float, float],
) -> None:
    """The shapes of ``bench_schedule.py`` (fewer jobs): the fitted end keeps lateness low."""
    queue_max, median, read, most_polls, p50, p90 = mix
    rng = random.Random(11)
    planner = Planner()
    polls, delays = [], []
    for number in range(400):
        queue, render = rng.uniform(0, queue_max), median * math.exp(rng.gauss(0, 0.6))
        done_at = queue + render

        def answer(t: float) -> tuple[TaskStatus, int]:
            if t >= done_at:  # noqa: B023 - read within the loop body only
                return TaskStatus.COMPLETED, 100
            if t < queue:  # noqa: B023
                return TaskStatus.QUEUED, 0
            return TaskStatus.PROCESSING, read((t - queue) / render, rng) or 0  # noqa: B023

        job = f"job{number}"
        track, delay = planner.plan(
            job, KIND, Track(0.0), *answer(0.0), 0.0, schedule=S, min_interval=1.0
        )
        t, count = 0.0, 0
        while (state := answer(t + delay))[0] is not TaskStatus.COMPLETED:
            t, count = t + delay, count + 1
            assert count < 200, "never noticed the end"
            track, delay = planner.plan(job, KIND, track, *state, t, schedule=S, min_interval=1.0)
        t += delay
        planner.completed(
            job, KIND, submitted_at=0.0, started_at=track.anchor_at, completed_at=t, schedule=S
        )
        if number >= 50:
            polls.append(count + 1)
            delays.append(t - done_at)
    polls.sort()
    delays.sort()
    assert polls[len(polls) // 2] <= most_polls
    assert delays[len(delays) // 2] <= p50
    assert delays[9 * len(delays) // 10] <= p90


def test_a_worker_that_takes_a_job_over_midway_fits_from_the_readings_it_sees() -> None:
    """Another worker's planner (same beliefs, none of the job's readings) still finds the end."""
    memory = ScheduleMemory()
    memory.learn(KIND, 320.0, S.fallback())
    first, second = Planner(memory), Planner(memory)

    def answer(t: float) -> tuple[TaskStatus, int]:  # renders 20 s .. 320 s, linearly
        if t >= 320.0:
            return TaskStatus.COMPLETED, 100
        return TaskStatus.PROCESSING, max(0, int((t - 20.0) / 3))

    track, delay = first.plan("job", KIND, Track(0.0), TaskStatus.QUEUED, 0, 0.0, schedule=S)
    t = 0.0
    while t + delay < 170.0:
        t += delay
        track, delay = first.plan("job", KIND, track, *answer(t), t, schedule=S)
    polls = 0
    while (state := answer(t + delay))[0] is not TaskStatus.COMPLETED:
        t, polls = t + delay, polls + 1
        track, delay = second.plan("job", KIND, track, *state, t, schedule=S)
        assert polls < 30, "never noticed the end"
    assert t + delay - 320.0 <= S.window()
    assert polls <= 10
