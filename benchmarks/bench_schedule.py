"""Polling efficiency of the real schedule code on a virtual clock, against fixed intervals.

Each simulated job waits in a queue for 0-40 s, then renders for a lognormal time (median 150 s,
sigma 0.6) while reporting progress roughly in proportion to time, with noise. A strategy decides
when to poll; the table reports polls per task and how late completion was noticed.

    python benchmarks/bench_schedule.py --tasks 10000 --seed 1
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
from collections.abc import Callable
from dataclasses import dataclass

from sora_tasks import TaskStatus
from sora_tasks._schedule import PollSchedule, Track, next_delay

DEADLINE = 3600.0


@dataclass(frozen=True)
class Job:
    queue: float
    render: float

    def report(self, t: float, rng: random.Random) -> tuple[TaskStatus, int]:
        if t < self.queue:
            return TaskStatus.QUEUED, 0
        if t >= self.queue + self.render:
            return TaskStatus.COMPLETED, 100
        fraction = (t - self.queue) / self.render
        noisy = 100 * fraction + rng.gauss(0, 2)
        return TaskStatus.PROCESSING, max(0, min(99, int(noisy)))

    @property
    def done_at(self) -> float:
        return self.queue + self.render


@dataclass
class Outcome:
    polls: int
    delay: float | None  # None: given up


Strategy = Callable[[Job, random.Random], Outcome]


def adaptive(tuning: PollSchedule) -> Strategy:
    def run(job: Job, rng: random.Random) -> Outcome:
        track = Track(submitted_at=0.0)
        t, polls = 0.0, 0
        while t < DEADLINE:
            t += next_delay(track, t, min_interval=1.0, schedule=tuning)
            polls += 1
            status, progress = job.report(t, rng)
            if status is TaskStatus.COMPLETED:
                return Outcome(polls, t - job.done_at)
            track = track.advance(status, progress, t)
        return Outcome(polls, None)

    return run


def fixed(interval: float, attempts: int | None = None) -> Strategy:
    def run(job: Job, rng: random.Random) -> Outcome:
        polls = 0
        while attempts is None or polls < attempts:
            polls += 1
            t = polls * interval
            if t >= DEADLINE:
                break
            if job.report(t, rng)[0] is TaskStatus.COMPLETED:
                return Outcome(polls, t - job.done_at)
        return Outcome(polls, None)

    return run


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    jobs = [
        Job(queue=rng.uniform(0, 40), render=150 * math.exp(rng.gauss(0, 0.6)))
        for _ in range(args.tasks)
    ]
    strategies: dict[str, Strategy] = {
        "sora_tasks adaptive (default)": adaptive(PollSchedule()),
        "fixed 1 s (official SDK)": fixed(1.0),
        "fixed 10 s": fixed(10.0),
        "fixed 30 s, 20 attempts (original backend)": fixed(30.0, 20),
    }
    print(
        f"{args.tasks} jobs, queue U(0,40) s, render lognormal(median 150 s, sigma 0.6), "
        f"seed {args.seed}\n"
    )
    print(
        "| strategy | polls p50 | polls p90 | polls mean | delay p50 (s) | delay p90 (s) "
        "| given up |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, strategy in strategies.items():
        outcomes = [strategy(job, random.Random(rng.random())) for job in jobs]
        polls = [float(o.polls) for o in outcomes]
        delays = [o.delay for o in outcomes if o.delay is not None]
        given_up = sum(o.delay is None for o in outcomes)
        print(
            f"| {name} | {percentile(polls, 0.5):.0f} | {percentile(polls, 0.9):.0f} | "
            f"{statistics.fmean(polls):.1f} | {percentile(delays, 0.5):.2f} | "
            f"{percentile(delays, 0.9):.2f} | {given_up} ({100 * given_up / len(jobs):.1f}%) |"
        )


if __name__ == "__main__":
    main()
