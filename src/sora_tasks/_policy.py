"""How the engine treats tasks: intervals, deadlines, failure budgets, uncertain submits."""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from ._schedule import PollSchedule

__all__ = ["PollingPolicy", "SubmitUncertainPolicy"]

SubmitUncertainPolicy = Literal["fail", "reconcile", "resubmit"]


class PollingPolicy(BaseModel):
    """Knobs of the polling engine. The defaults suit OpenAI-shaped providers.

    - ``schedule``, when set, replaces every provider's own :class:`PollSchedule` (how polls are
      spaced); no wait is ever shorter than a provider's ``min_poll_interval`` or its hint.
    - ``retry_interval`` is the first wait after a failed poll; it doubles with each further
      failure up to ``max_retry_interval``.
    - ``deadline`` bounds every task (a task may set its own): past it the task ends FAILED with
      ``error.code == "timeout"``, whatever the provider says.
    - ``max_poll_failures`` consecutive failed polls end a task FAILED with the last error.
    - ``submit_uncertain`` decides what happens when a create may or may not have reached the
      provider: ``"fail"`` (the default) never risks a second charge; ``"reconcile"`` looks the job
      up at the provider; ``"resubmit"`` reconciles, then sends again with the same idempotency key.
      A create the client gave up on may still be running at the provider, so the job is looked
      for again every ``reconcile_delay`` until ``reconcile_window`` seconds after the create was
      sent; only then does the policy's end (FAILED, or a resubmit) apply.
    - ``lease_seconds`` is how long a claimed task stays reserved to one worker: a dead worker's
      tasks are taken over after it. ``shutdown_grace`` is how long a stopping engine lets
      in-flight calls finish before it cancels them and hands their tasks back.
    - ``batch_size`` is how many tasks one engine works on at once (its workers); up to as many
      again wait claimed, so a worker that finishes starts its next call at once.
      ``max_concurrent_polls`` caps the calls in flight to any one provider.
    - ``max_in_flight`` caps, per provider name, the jobs running at once (it overrides the
      provider's own ``max_in_flight``); further tasks wait locally, QUEUED, highest priority
      first, then oldest.
    - ``call_timeout`` bounds each provider call the engine makes (connect, send and the whole
      answer), and so does what is left of the task's lease (less a tenth of it, at least a
      second, at most half) and of its deadline,
      whichever ends first: no job is polled twice at once, and no task outlives its deadline
      by more than a call's few seconds of grace.
    - ``link_lifetime`` is how long a finished video is assumed to stay downloadable when the
      provider does not say (OpenAI-shaped APIs keep it about an hour); the engine keeps trying
      to save it until then.
    - ``store_retry_interval`` is the first wait after the store failed to answer a claim; it
      doubles up to ``max_retry_interval`` while the store stays away.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    schedule: PollSchedule | None = None
    retry_interval: float = Field(5.0, gt=0)
    max_retry_interval: float = Field(300.0, gt=0)
    deadline: timedelta = timedelta(minutes=60)
    max_poll_failures: int = Field(10, ge=1)
    submit_uncertain: SubmitUncertainPolicy = "fail"
    reconcile_delay: float = Field(5.0, ge=0)
    reconcile_window: float = Field(120.0, ge=0)
    lease_seconds: float = Field(120.0, gt=0)
    batch_size: int = Field(100, ge=1)
    max_in_flight: dict[str, int] = Field(default_factory=dict)
    max_concurrent_polls: int = Field(32, ge=1)
    idle_wait: float = Field(1.0, gt=0)
    shutdown_grace: float = Field(10.0, ge=0)
    call_timeout: float = Field(90.0, gt=0)
    link_lifetime: timedelta = timedelta(hours=1)
    store_retry_interval: float = Field(0.5, gt=0)

    @property
    def lease_margin(self) -> float:
        """How long before its lease runs out a call must have ended (clock skew, the write)."""
        return min(max(1.0, self.lease_seconds / 10), self.lease_seconds / 2)

    def backoff(self, failures: int) -> float:
        """The wait after ``failures`` consecutive failures: doubling from ``retry_interval``."""
        return float(min(self.max_retry_interval, self.retry_interval * 2 ** max(0, failures - 1)))
