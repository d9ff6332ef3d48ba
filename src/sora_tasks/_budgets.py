"""Budgets: spending limits per user and overall, over a rolling window, kept at admission.

A task's estimated cost counts against every limit that applies to it from its creation on (its
actual cost once known; nothing once it ends having started no job). The store checks the limits
and inserts the task in one atomic step (:meth:`TaskStore.insert_within_budget`), so workers and
API processes admitting at once cannot overspend together.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta

from ._logging import logger

__all__ = ["BudgetAlert", "BudgetCheck", "BudgetLimit", "Budgets", "describe_window"]


@dataclass(frozen=True, slots=True)
class BudgetLimit:
    """At most ``amount`` of ``currency`` over any rolling ``window`` (a day by default)."""

    amount: float
    window: timedelta = timedelta(days=1)
    currency: str = "USD"

    def __post_init__(self) -> None:
        if not (math.isfinite(self.amount) and self.amount > 0):
            raise ValueError(f"a budget limit must be a positive amount, got {self.amount!r}")
        if self.window <= timedelta(0):
            raise ValueError(f"a budget window must be positive, got {self.window}")


@dataclass(frozen=True, slots=True)
class BudgetCheck:
    """One limit the store checks an insert against: ``user_id``'s tasks, or everyone's
    (``None``)."""

    user_id: str | None
    limit: BudgetLimit


@dataclass(frozen=True, slots=True)
class BudgetAlert:
    """A user's (or, with ``user_id`` ``None``, everyone's) spending passed ``share`` of a
    limit: ``spent`` now counts the task ``task_id`` that passed it."""

    user_id: str | None
    limit: BudgetLimit
    share: float
    spent: float
    task_id: str


@dataclass(frozen=True, slots=True)
class Budgets:
    """The spending limits a manager keeps.

    ``per_user`` applies to each user on their own (``users`` sets some users' own limits
    instead), ``overall`` to all tasks together. Tasks without a user count only towards
    ``overall``. ``alert_at`` are the shares of a limit whose passing raises a
    :class:`BudgetAlert` (logged, and handed to the manager's ``on_budget_alert``).
    """

    per_user: BudgetLimit | None = None
    overall: BudgetLimit | None = None
    users: Mapping[str, BudgetLimit] = field(default_factory=dict)
    alert_at: tuple[float, ...] = (0.8,)

    def __post_init__(self) -> None:
        for share in self.alert_at:
            if not 0 < share <= 1:
                raise ValueError(f"alert_at shares must be within (0, 1], got {share!r}")

    def checks(self, user_id: str | None) -> list[BudgetCheck]:
        """The limits a task of ``user_id`` must fit in."""
        found: list[BudgetCheck] = []
        if user_id is not None:
            own = self.users.get(user_id, self.per_user)
            if own is not None:
                found.append(BudgetCheck(user_id, own))
        if self.overall is not None:
            found.append(BudgetCheck(None, self.overall))
        return found

    def alerts(
        self, checks: Sequence[BudgetCheck], spent: Sequence[float], cost: float, task_id: str
    ) -> list[BudgetAlert]:
        """The alerts an admitted task of ``cost`` raises, given what was ``spent`` before it."""
        raised = []
        for check, before in zip(checks, spent, strict=True):
            after = before + cost
            for share in self.alert_at:
                mark = share * check.limit.amount
                if before < mark <= after:
                    raised.append(BudgetAlert(check.user_id, check.limit, share, after, task_id))
        return raised


def describe_window(window: timedelta) -> str:
    """``1 day``, ``12 hours``, ``90 minutes``: the window in words."""
    seconds = int(window.total_seconds())
    for unit, size in (("day", 86_400), ("hour", 3_600), ("minute", 60)):
        if seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds} seconds"


def announce(alerts: Sequence[BudgetAlert], hook: Callable[[BudgetAlert], object] | None) -> None:
    """Log each alert and hand it to ``hook``; a failing hook is logged, never raised."""
    for alert in alerts:
        who = f"user {alert.user_id}" if alert.user_id is not None else "all users"
        logger.warning(
            "budget alert: %s passed %.0f%% of %.2f %s per %s (%.2f spent)",
            who,
            alert.share * 100,
            alert.limit.amount,
            alert.limit.currency,
            describe_window(alert.limit.window),
            alert.spent,
            extra={"action": "budget", "task_id": alert.task_id},
        )
        if hook is None:
            continue
        try:
            hook(alert)
        except Exception:
            logger.exception("the budget alert hook failed")
