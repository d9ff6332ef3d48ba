"""How the engine treats tasks: intervals, deadlines, failure budgets, uncertain submits."""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["PollingPolicy", "SubmitUncertainPolicy"]

SubmitUncertainPolicy = Literal["fail", "reconcile", "resubmit"]


class PollingPolicy(BaseModel):
    """Knobs of the polling engine. The defaults suit OpenAI-shaped providers.

    - ``interval`` is the poll interval used when the provider gives no hint; ``max_interval``
      caps every wait, and no wait is shorter than the provider's ``min_poll_interval``.
    - ``deadline`` bounds every task (a task may set its own): past it the task ends FAILED with
      ``error.code == "timeout"``, whatever the provider says.
    - ``max_poll_failures`` consecutive failed polls end a task FAILED with the last error.
    - ``submit_uncertain`` decides what happens when a create may or may not have reached the
      provider: ``"fail"`` (the default) never risks a second charge; ``"reconcile"`` looks the job
      up at the provider; ``"resubmit"`` reconciles, then sends again with the same idempotency key.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    interval: float = Field(5.0, gt=0)
    max_interval: float = Field(60.0, gt=0)
    deadline: timedelta = timedelta(minutes=60)
    max_poll_failures: int = Field(10, ge=1)
    submit_uncertain: SubmitUncertainPolicy = "fail"
    reconcile_delay: float = Field(5.0, ge=0)
    lease_seconds: float = Field(120.0, gt=0)
    batch_size: int = Field(100, ge=1)
    max_concurrent_polls: int = Field(32, ge=1)
    idle_wait: float = Field(1.0, gt=0)

    def backoff(self, failures: int) -> float:
        """The wait after ``failures`` consecutive failures: doubling from ``interval``, capped."""
        return float(min(self.max_interval, self.interval * 2 ** max(0, failures - 1)))
