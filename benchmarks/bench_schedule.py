"""Polling efficiency of the engine's schedule on a virtual clock, on several render mixes.

Each simulated job waits in a queue, then renders for a lognormal time while reporting progress
in the mix's way (in proportion to time with noise, in jumps, stuck at 99 %, in steps, or not at
all). The engine's own planner (``sora_tasks._planner.Planner``) decides when to poll, starting
from the submit answer exactly as the engine does, and learns from each completion; jobs run one
after another, so later jobs benefit from earlier ones. The table reports polls per job and how
late completion was noticed, over all jobs after the first ``--warmup``.

    python benchmarks/bench_schedule.py --mix all --jobs 4000 --seed 1
    python benchmarks/bench_schedule.py --mix long --schedule window_sigmas=1.5
"""

from __future__ import annotations

import argparse
import math
import random
from collections.abc import Callable
from dataclasses import dataclass

from sora_tasks import TaskStatus
from sora_tasks._planner import Planner
from sora_tasks._priors import JobKind
from sora_tasks._schedule import PollSchedule, Track

DEADLINE = 3 * 3600.0
FLOOR = 1.0  # the provider's minimum poll interval

Progress = Callable[[float, random.Random], int | None]


def linear(fraction: float, rng: random.Random) -> int | None:
    return max(0, min(99, int(100 * fraction + rng.gauss(0, 2))))


def jumps(fraction: float, rng: random.Random) -> int | None:
    # 50 % within the first tenth, then slowly
    value = 500 * fraction if fraction < 0.1 else 50 + 50 * (fraction - 0.1) / 0.9
    return min(99, int(value))


def stuck(fraction: float, rng: random.Random) -> int | None:
    # reaches 99 % at 60 % of the render and sits there
    return min(99, int(99 * fraction / 0.6))


def steps(fraction: float, rng: random.Random) -> int | None:
    return 25 * int(4 * fraction)


def silent(fraction: float, rng: random.Random) -> int | None:
    return None


@dataclass(frozen=True)
class Mix:
    description: str
    # (queue seconds, render seconds, progress, kind) for one job
    draw: Callable[[random.Random], tuple[float, float, Progress, JobKind]]


def simple(
    queue: float, median: float, sigma: float, progress: Progress, model: str = "m"
) -> Callable[[random.Random], tuple[float, float, Progress, JobKind]]:
    kind = JobKind("p", model, "720p", 8)

    def draw(rng: random.Random) -> tuple[float, float, Progress, JobKind]:
        return rng.uniform(0, queue), median * math.exp(rng.gauss(0, sigma)), progress, kind

    return draw


def half_and_half(rng: random.Random) -> tuple[float, float, Progress, JobKind]:
    if rng.random() < 0.5:
        return simple(5, 20, 0.6, linear, "fast")(rng)
    return simple(120, 600, 0.6, linear, "slow")(rng)


MIXES = {
    "tuning": Mix(
        "queue 0-40 s, render median 150 s (sigma 0.6), linear", simple(40, 150, 0.6, linear)
    ),
    "fast": Mix("queue 0-5 s, render median 20 s, linear", simple(5, 20, 0.6, linear)),
    "long": Mix("queue 0-120 s, render median 600 s, linear", simple(120, 600, 0.6, linear)),
    "mixed": Mix("half fast, half long (two models)", half_and_half),
    "silent": Mix("no progress, render median 150 s (sigma 0.6)", simple(40, 150, 0.6, silent)),
    "silent-known": Mix(
        "no progress, queue 0-5 s, render median 70 s (sigma 0.2)", simple(5, 70, 0.2, silent)
    ),
    "jumps": Mix("50 % at once, then slowly; median 150 s", simple(40, 150, 0.6, jumps)),
    "stuck": Mix("99 % for the last 40 %; median 150 s", simple(40, 150, 0.6, stuck)),
    "steps": Mix("steps of 25 %; median 150 s", simple(40, 150, 0.6, steps)),
}


@dataclass
class Outcome:
    polls: int
    delay: float | None  # None: given up


def run_job(
    planner: Planner,
    schedule: PollSchedule,
    job_id: str,
    queue: float,
    render: float,
    progress: Progress,
    kind: JobKind,
    rng: random.Random,
) -> Outcome:
    done_at = queue + render

    def answer(t: float) -> tuple[TaskStatus, int | None]:
        if t >= done_at:
            return TaskStatus.COMPLETED, 100
        if t < queue:
            return TaskStatus.QUEUED, 0
        return TaskStatus.PROCESSING, progress((t - queue) / render, rng)

    # the submit answer is the first observation, as in the engine
    status, value = answer(0.0)
    track, delay = planner.plan(
        job_id, kind, Track(submitted_at=0.0), status, value or 0, 0.0,
        schedule=schedule, min_interval=FLOOR,
    )  # fmt: skip
    t, polls = 0.0, 0
    while t < DEADLINE:
        t += delay
        polls += 1
        status, value = answer(t)
        if status is TaskStatus.COMPLETED:
            planner.completed(
                job_id, kind, submitted_at=0.0, started_at=track.anchor_at, completed_at=t,
                schedule=schedule,
            )  # fmt: skip
            return Outcome(polls, t - done_at)
        track, delay = planner.plan(
            job_id, kind, track, status, value or 0, t, schedule=schedule, min_interval=FLOOR
        )
    planner.forget(job_id)
    return Outcome(polls, None)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def measure(mix: Mix, jobs: int, warmup: int, seed: int, schedule: PollSchedule) -> list[Outcome]:
    rng = random.Random(seed)
    planner = Planner()
    outcomes = []
    for number in range(jobs + warmup):
        queue, render, progress, kind = mix.draw(rng)
        outcome = run_job(
            planner, schedule, f"job{number}", queue, render, progress, kind,
            random.Random(rng.random()),
        )  # fmt: skip
        if number >= warmup:
            outcomes.append(outcome)
    return outcomes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mix", choices=["all", *MIXES], default="all")
    parser.add_argument("--jobs", type=int, default=4000)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--schedule",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="a PollSchedule field to change from its default, e.g. window_sigmas=1.5",
    )
    args = parser.parse_args()
    changes = dict(item.split("=", 1) for item in args.schedule)
    schedule = PollSchedule.model_validate(changes)
    chosen = MIXES if args.mix == "all" else {args.mix: MIXES[args.mix]}
    print(f"{args.jobs} jobs per mix after {args.warmup} warm-up jobs, seed {args.seed}")
    print(f"schedule: {changes or 'the defaults'}\n")
    print("| mix | polls p50 | polls p90 | delay p50 (s) | delay p90 (s) | given up |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, mix in chosen.items():
        outcomes = measure(mix, args.jobs, args.warmup, args.seed, schedule)
        polls = [float(o.polls) for o in outcomes]
        delays = [o.delay for o in outcomes if o.delay is not None]
        given_up = sum(o.delay is None for o in outcomes)
        print(
            f"| {name}: {mix.description} | {percentile(polls, 0.5):.0f} | "
            f"{percentile(polls, 0.9):.0f} | {percentile(delays, 0.5):.2f} | "
            f"{percentile(delays, 0.9):.2f} | {given_up} |"
        )


if __name__ == "__main__":
    main()
