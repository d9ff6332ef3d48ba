"""The retry policy, as pure functions: what to do after a failed call, and how long to wait.

Nothing here performs I/O or reads a clock; callers pass ``now`` and a random source, so every
decision can be checked against a table. ``providers/_http.py`` drives tenacity with these.

A create is treated differently from a read because video jobs are billed per submission: it is
sent again only when the request provably never reached the server (the connection was never
made) or the server said it did nothing (429, or 503 with a retry hint). Anything else that may
have started a job is :attr:`Action.UNCERTAIN` and goes back to the manager to reconcile.
"""

from __future__ import annotations

import enum
import math
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

__all__ = [
    "MAX_RETRY_AFTER",
    "Action",
    "Backoff",
    "Delivery",
    "backoff_delay",
    "classify",
    "parse_retry_after",
    "parse_should_retry",
    "sleep_before_retry",
]

MAX_RETRY_AFTER = 86_400.0
"""Server hints are clamped to one day so ``now + hint`` is always a representable time."""

_RETRYABLE_READ_STATUSES = frozenset({408, 409, 429})


class Action(enum.Enum):
    """What to do after a failed attempt."""

    RETRY = "retry"
    """Trying again is safe and may succeed."""
    FAIL = "fail"
    """Final: report the error; the request did not start anything."""
    UNCERTAIN = "uncertain"
    """A create may have started a job: never resend it blindly."""


class Delivery(enum.Enum):
    """How far a request got before the transport failed."""

    NOT_SENT = "not_sent"
    """No connection was made (connect error, connect or pool timeout): the server saw nothing."""
    MAYBE_SENT = "maybe_sent"
    """Bytes may have reached the server (write or read failure, read timeout, dropped link)."""


@dataclass(frozen=True, slots=True)
class Backoff:
    """The shape of in-call retry waits.

    Attempt ``n`` (0-based) waits ``min(initial * 2**n, maximum)`` less up to ``jitter`` of it.
    A server hint longer than ``max_sleep`` is not slept through in process: the error carries it
    as ``retry_after`` so the manager can store a durable next poll time instead.
    """

    initial: float = 0.5
    maximum: float = 8.0
    jitter: float = 0.25
    max_sleep: float = 60.0

    def __post_init__(self) -> None:
        if not 0 <= self.initial <= self.maximum:
            raise ValueError("Backoff needs 0 <= initial <= maximum")
        if not 0 <= self.jitter <= 1 or self.max_sleep < 0:
            raise ValueError("Backoff needs 0 <= jitter <= 1 and max_sleep >= 0")


def classify(
    *,
    create: bool,
    status_code: int | None = None,
    delivery: Delivery | None = None,
    should_retry: bool | None = None,
    retry_after: float | None = None,
) -> Action:
    """Decide what follows a failed attempt: a non-2xx ``status_code`` or a transport failure.

    ``should_retry`` is the server's ``x-should-retry`` verdict and ``retry_after`` its parsed
    wait hint, both ``None`` when absent. Pass exactly one of ``status_code`` and ``delivery``.
    """
    if delivery is not None:
        if status_code is not None:
            raise ValueError("pass exactly one of status_code and delivery")
        if create and delivery is Delivery.MAYBE_SENT:
            return Action.UNCERTAIN
        return Action.RETRY
    if status_code is None:
        raise ValueError("pass exactly one of status_code and delivery")
    if create:
        return _classify_create(status_code, should_retry, retry_after)
    if should_retry is not None:
        return Action.RETRY if should_retry else Action.FAIL
    if status_code in _RETRYABLE_READ_STATUSES or status_code >= 500:
        return Action.RETRY
    return Action.FAIL


def _classify_create(
    status_code: int, should_retry: bool | None, retry_after: float | None
) -> Action:
    did_nothing = status_code == 429 or (status_code == 503 and retry_after is not None)
    if did_nothing:
        return Action.FAIL if should_retry is False else Action.RETRY
    # 408 and 409 may come from a gateway that forwarded the request, or (409) from a server
    # still working on the same idempotency key; 5xx may follow a job that already started.
    if status_code in (408, 409) or status_code >= 500:
        return Action.UNCERTAIN
    return Action.FAIL


def parse_should_retry(headers: Mapping[str, str]) -> bool | None:
    """Read ``x-should-retry``: ``True``/``False`` for the literal words, ``None`` otherwise."""
    value = headers.get("x-should-retry", "").strip().lower()
    return {"true": True, "false": False}.get(value)


def parse_retry_after(headers: Mapping[str, str], *, now: datetime) -> float | None:
    """The server's wait hint in seconds, or ``None`` when it gave no usable one.

    ``retry-after-ms`` wins over ``Retry-After``; an unusable value (garbage, negative, NaN,
    infinite) is skipped so the other header still counts. ``Retry-After`` is delta seconds or an
    HTTP date measured from ``now`` (a past date means 0). Results are clamped to
    :data:`MAX_RETRY_AFTER`. ``headers`` must look names up case-insensitively, as httpx's do.
    """
    milliseconds = _finite_non_negative(headers.get("retry-after-ms"))
    if milliseconds is not None:
        return min(milliseconds / 1000, MAX_RETRY_AFTER)
    value = headers.get("retry-after")
    if value is None:
        return None
    seconds = _finite_non_negative(value)
    if seconds is None:
        seconds = _seconds_until(value, now)
    return None if seconds is None else min(seconds, MAX_RETRY_AFTER)


def _finite_non_negative(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(value.strip())
    except ValueError:
        return None
    return number if math.isfinite(number) and number >= 0 else None


def _seconds_until(value: str, now: datetime) -> float | None:
    try:
        when = parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return max((_as_utc(when) - _as_utc(now)).total_seconds(), 0.0)


def _as_utc(moment: datetime) -> datetime:
    # HTTP dates are GMT by definition; "-0000" parses naive
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def backoff_delay(
    attempt: int, backoff: Backoff, *, random_source: Callable[[], float] = random.random
) -> float:
    """The wait before retry number ``attempt + 1``, with jitter drawn from ``random_source``."""
    if attempt < 0:
        raise ValueError("attempt counts from 0")
    base = min(math.ldexp(backoff.initial, min(attempt, 64)), backoff.maximum)
    return base * (1 - backoff.jitter * random_source())


def sleep_before_retry(
    attempt: int,
    backoff: Backoff,
    *,
    retry_after: float | None,
    random_source: Callable[[], float] = random.random,
) -> float | None:
    """Seconds to sleep in process before retry ``attempt + 1``.

    The server's hint wins over the computed backoff. ``None`` means the wait is longer than
    ``backoff.max_sleep`` and must become a durable next poll time instead of a sleep.
    """
    if retry_after is None:
        return backoff_delay(attempt, backoff, random_source=random_source)
    return retry_after if retry_after <= backoff.max_sleep else None
