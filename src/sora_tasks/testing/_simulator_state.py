"""The simulator's memory: its jobs, where each one stands at a given time, and what it has seen.

Jobs advance with the clock alone — no background task moves them — so a test that controls the
clock controls every job.
"""

from __future__ import annotations

import secrets
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from ._simulator_config import SimulatorConfig
from ._simulator_faults import FaultPlan, Faults
from ._simulator_multipart import Upload
from ._simulator_tally import Tally

__all__ = ["JobView", "Pin", "RequestRecord", "SimulatedJob", "SimulatorState"]

Phase = Literal["queued", "in_progress", "completed", "failed", "cancelled"]
"""Where a simulated job stands (a harness maps its API's status words onto these)."""
Shape = Literal["openai", "relay", "replicate", "fal", "runway", "veo"]

_REQUEST_LOG_SIZE = 10_000


@dataclass(frozen=True, slots=True)
class SimulatedJob:
    """One job as it was created. ``fields`` are the request's fields exactly as received."""

    id: str
    shape: Shape
    prompt: str
    model: str
    size: str
    seconds: str
    fields: Mapping[str, object]
    reference: Upload | None
    blocked: bool
    created_clock: float
    created_wall: float


@dataclass(frozen=True, slots=True)
class Pin:
    """A state a test forces on one job, in place of where the clock would have it.

    It is how the conformance kit shows an adapter each of its provider's answers. ``word`` is
    the provider's own status word to answer with verbatim (``None``: the shape's usual word for
    ``phase``); ``progress`` ``None`` means the answer carries no progress; ``error_code`` and
    ``error_message`` describe a failure; ``empty`` makes a finished job carry no output;
    ``expired`` makes its output gone (past retention); ``queue_position``, ``poll_after``
    (seconds) and ``logs`` are hints for the shapes that have them.
    """

    phase: Phase
    progress: int | None = None
    word: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    empty: bool = False
    expired: bool = False
    queue_position: int | None = None
    poll_after: float | None = None
    logs: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class JobView:
    """Where a job stands at one instant. Times are unix seconds (floats).

    ``pin`` is the state a test forced on the job, when it did (see :class:`Pin`); the other
    fields then follow it.
    """

    phase: Phase
    progress: int
    updated_at: float
    completed_at: float | None
    expires_at: float | None
    pin: Pin | None = None

    @property
    def expired(self) -> bool:
        """True once a finished job's assets are past ``expires_at`` (at ``updated_at``)."""
        return self.expires_at is not None and self.updated_at >= self.expires_at


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """One request as the simulator saw it. ``headers`` never include ``authorization``."""

    route: str
    method: str
    path: str
    query: Mapping[str, str]
    headers: Mapping[str, str]
    has_authorization: bool
    status: int
    fault: str | None = None


@dataclass(slots=True)
class SimulatorState:
    """Jobs, counters and the request log, open to tests for inspection.

    ``creates`` counts jobs created (both shapes, dropped answers included); ``hits`` counts
    requests per route as they arrive; ``requests`` keeps the last 10,000 answered requests (a
    slow one is logged when its answer goes out); ``faults`` is the live fault plan
    (``faults.set(route, Faults(...))`` changes it between requests); ``tally`` counts per job
    (creates per prompt, requests in flight, faults received).
    """

    config: SimulatorConfig
    faults: FaultPlan
    jobs: dict[str, SimulatedJob] = field(default_factory=dict)
    deleted: set[str] = field(default_factory=set)
    creates: int = 0
    hits: Counter[str] = field(default_factory=Counter)
    requests: deque[RequestRecord] = field(default_factory=lambda: deque(maxlen=_REQUEST_LOG_SIZE))
    tally: Tally = field(default_factory=Tally)
    pins: dict[str, Pin] = field(default_factory=dict)
    uploads: dict[str, Upload] = field(default_factory=dict)
    upload_tokens: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def new(
        cls, config: SimulatorConfig, faults: Mapping[str, Faults] | None = None
    ) -> SimulatorState:
        """An empty state for ``config`` with ``faults`` in force."""
        return cls(config, FaultPlan(faults))

    def records(self, route: str | None = None) -> list[RequestRecord]:
        """A copy of the request log, optionally only one route's requests."""
        with self._lock:
            return [r for r in self.requests if route is None or r.route == route]

    def arrived(self, route: str) -> None:
        """Count a request on ``route`` as soon as it is read, before any delay or answer."""
        with self._lock:
            self.hits[route] += 1

    def record(self, entry: RequestRecord) -> None:
        """Log one answered request, before the answer is sent so a client never outruns the log."""
        with self._lock:
            self.requests.append(entry)

    def create_job(
        self,
        *,
        shape: Shape,
        prompt: str,
        model: str,
        size: str,
        seconds: str,
        fields: Mapping[str, object],
        reference: Upload | None,
    ) -> SimulatedJob:
        """Create and remember a job that starts now."""
        job = SimulatedJob(
            id=_new_id(shape),
            shape=shape,
            prompt=prompt,
            model=model,
            size=size,
            seconds=seconds,
            fields=dict(fields),
            reference=reference,
            blocked=any(p.search(prompt) for p in self.config.fail_prompts),
            created_clock=self.config.clock(),
            created_wall=time.time(),
        )
        with self._lock:
            self.jobs[job.id] = job
            self.creates += 1
        self.tally.created(prompt)
        return job

    def delete(self, job_id: str) -> None:
        """Forget a job for every route (it stays in ``jobs`` for inspection)."""
        with self._lock:
            self.deleted.add(job_id)

    def get(self, job_id: str, shape: Shape) -> SimulatedJob | None:
        """The job with that id and shape, unless it was deleted."""
        job = self.jobs.get(job_id)
        return (
            job if job is not None and job.shape == shape and job_id not in self.deleted else None
        )

    def pin(self, job_id: str, pin: Pin | None) -> None:
        """Force ``job_id`` into ``pin``'s state until pinned again (``None`` releases it)."""
        with self._lock:
            if pin is None:
                self.pins.pop(job_id, None)
            else:
                self.pins[job_id] = pin

    def view(self, job: SimulatedJob) -> JobView:
        """Where ``job`` stands now: queued, then rendering along the curve, then finished."""
        config = self.config
        elapsed = max(0.0, config.clock() - job.created_clock)
        now = job.created_wall + elapsed
        pin = self.pins.get(job.id)
        if pin is not None:
            return _pinned(pin, now, config.asset_ttl_seconds)
        if elapsed < config.queue_seconds:
            return JobView("queued", 0, now, None, None)
        if job.blocked:
            return JobView("failed", 0, now, job.created_wall + config.queue_seconds, None)
        rendering = elapsed - config.queue_seconds
        if rendering < config.render_seconds:
            fraction = min(1.0, max(0.0, config.progress_curve(rendering / config.render_seconds)))
            return JobView("in_progress", min(99, int(fraction * 100)), now, None, None)
        completed_at = job.created_wall + config.queue_seconds + config.render_seconds
        return JobView("completed", 100, now, completed_at, completed_at + config.asset_ttl_seconds)


def _pinned(pin: Pin, now: float, ttl: float) -> JobView:
    finished = pin.phase in ("completed", "failed", "cancelled")
    progress = pin.progress if pin.progress is not None else (100 if finished else 0)
    completed_at = now if finished else None
    if pin.expired:
        expires_at: float | None = now
    else:
        expires_at = now + ttl if pin.phase == "completed" else None
    return JobView(pin.phase, progress, now, completed_at, expires_at, pin)


def _new_id(shape: Shape) -> str:
    # fal's request ids are UUIDs; the other shapes are random hex, prefixed as each API does
    if shape == "fal":
        return str(uuid.uuid4())
    return {"openai": "video_", "relay": "task_"}.get(shape, "") + secrets.token_hex(16)
