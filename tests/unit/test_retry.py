"""The pure retry policy: classification, server wait hints and backoff, as tables."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx2
import pytest

from sora_tasks._retry import (
    MAX_RETRY_AFTER,
    Action,
    Backoff,
    Delivery,
    backoff_delay,
    classify,
    parse_retry_after,
    parse_should_retry,
    sleep_before_retry,
)

NOW = datetime(2026, 11, 28, 12, 0, 0, tzinfo=UTC)

RETRY_AFTER_CASES = [
    # (headers, expected seconds)
    pytest.param({}, None, id="no-headers"),
    pytest.param({"retry-after-ms": "1500"}, 1.5, id="ms"),
    pytest.param({"retry-after-ms": "0"}, 0.0, id="ms-zero"),
    pytest.param({"retry-after-ms": "0.5"}, 0.0005, id="ms-fraction"),
    pytest.param({"retry-after-ms": " 250 "}, 0.25, id="ms-padded"),
    pytest.param({"retry-after-ms": "-5"}, None, id="ms-negative"),
    pytest.param({"retry-after-ms": "NaN"}, None, id="ms-nan"),
    pytest.param({"retry-after-ms": "inf"}, None, id="ms-inf"),
    pytest.param({"retry-after-ms": "-inf"}, None, id="ms-minus-inf"),
    pytest.param({"retry-after-ms": "soon"}, None, id="ms-garbage"),
    pytest.param({"retry-after-ms": ""}, None, id="ms-empty"),
    pytest.param({"retry-after-ms": "1e12"}, MAX_RETRY_AFTER, id="ms-huge-clamped"),
    pytest.param({"retry-after": "3"}, 3.0, id="seconds"),
    pytest.param({"retry-after": "0"}, 0.0, id="seconds-zero"),
    pytest.param({"retry-after": "2.5"}, 2.5, id="seconds-fractional"),
    pytest.param({"retry-after": "120"}, 120.0, id="seconds-over-sleep-cap-kept"),
    pytest.param({"retry-after": "-1"}, None, id="seconds-negative"),
    pytest.param({"retry-after": "nan"}, None, id="seconds-nan"),
    pytest.param({"retry-after": "Infinity"}, None, id="seconds-inf"),
    pytest.param({"retry-after": "1e400"}, None, id="seconds-overflow-is-inf"),
    pytest.param({"retry-after": "99999999999"}, MAX_RETRY_AFTER, id="seconds-huge-clamped"),
    pytest.param({"retry-after": "later please"}, None, id="seconds-garbage"),
    pytest.param({"retry-after": ""}, None, id="seconds-empty"),
    pytest.param({"retry-after": "0x10"}, None, id="seconds-hex"),
    pytest.param({"retry-after": "Sat, 28 Nov 2026 12:00:30 GMT"}, 30.0, id="date-future"),
    pytest.param({"retry-after": "Sat, 28 Nov 2026 12:00:00 GMT"}, 0.0, id="date-now"),
    pytest.param({"retry-after": "Sat, 28 Nov 2026 11:00:00 GMT"}, 0.0, id="date-past"),
    pytest.param({"retry-after": "Thu, 01 Jan 1970 00:00:00 GMT"}, 0.0, id="date-epoch"),
    pytest.param({"retry-after": "Sat, 28 Nov 2026 12:02:00 -0000"}, 120.0, id="date-minus-zero"),
    pytest.param({"retry-after": "Sat, 28 Nov 2026 13:00:10 +0100"}, 10.0, id="date-offset"),
    pytest.param({"retry-after": "Sun, 28 Nov 2027 12:00:00 GMT"}, MAX_RETRY_AFTER, id="date-far"),
    pytest.param({"retry-after": "Sat, 99 Nov 2026 12:00:00 GMT"}, None, id="date-invalid-day"),
    pytest.param({"retry-after": "Sat, 28 Foo 2026 12:00:00 GMT"}, None, id="date-bad-month"),
    pytest.param({"retry-after-ms": "200", "retry-after": "7"}, 0.2, id="both-ms-wins"),
    pytest.param({"retry-after-ms": "junk", "retry-after": "7"}, 7.0, id="both-ms-garbage"),
    pytest.param({"retry-after-ms": "-1", "retry-after": "7"}, 7.0, id="both-ms-negative"),
    pytest.param({"retry-after-ms": "nan", "retry-after": "junk"}, None, id="both-garbage"),
    pytest.param(
        {"retry-after-ms": "inf", "retry-after": "Sat, 28 Nov 2026 12:00:05 GMT"},
        5.0,
        id="both-ms-inf-date",
    ),
    pytest.param({"Retry-After": "4"}, 4.0, id="header-name-case"),
]


@pytest.mark.parametrize(("headers", "expected"), RETRY_AFTER_CASES)
def test_parse_retry_after(headers: dict[str, str], expected: float | None) -> None:
    result = parse_retry_after(httpx2.Headers(headers), now=NOW)
    if expected is None:
        assert result is None
    else:
        assert result == pytest.approx(expected)


def test_parse_retry_after_accepts_a_naive_now_as_utc() -> None:
    headers = httpx2.Headers({"retry-after": "Sat, 28 Nov 2026 12:00:30 GMT"})
    assert parse_retry_after(headers, now=NOW.replace(tzinfo=None)) == pytest.approx(30.0)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("true", True),
        ("TRUE", True),
        (" true ", True),
        ("false", False),
        ("False", False),
        ("yes", None),
        ("1", None),
        ("", None),
    ],
)
def test_parse_should_retry(value: str, expected: bool | None) -> None:
    assert parse_should_retry(httpx2.Headers({"x-should-retry": value})) is expected


def test_parse_should_retry_absent() -> None:
    assert parse_should_retry(httpx2.Headers()) is None


R, F, U = Action.RETRY, Action.FAIL, Action.UNCERTAIN

STATUS_CASES = [
    # (status, should_retry, retry_after, read verdict, create verdict)
    pytest.param(400, None, None, F, F, id="400"),
    pytest.param(401, None, None, F, F, id="401"),
    pytest.param(403, None, None, F, F, id="403"),
    pytest.param(404, None, None, F, F, id="404"),
    pytest.param(408, None, None, R, U, id="408"),
    pytest.param(409, None, None, R, U, id="409"),
    pytest.param(413, None, None, F, F, id="413"),
    pytest.param(422, None, None, F, F, id="422"),
    pytest.param(429, None, None, R, R, id="429"),
    pytest.param(429, None, 2.0, R, R, id="429-hint"),
    pytest.param(429, False, None, F, F, id="429-should-retry-false"),
    pytest.param(500, None, None, R, U, id="500"),
    pytest.param(500, None, 1.0, R, U, id="500-hint"),
    pytest.param(500, True, None, R, U, id="500-should-retry-true-create-still-uncertain"),
    pytest.param(500, False, None, F, U, id="500-should-retry-false"),
    pytest.param(502, None, None, R, U, id="502"),
    pytest.param(503, None, None, R, U, id="503-no-hint"),
    pytest.param(503, None, 5.0, R, R, id="503-hint"),
    pytest.param(503, False, 5.0, F, F, id="503-hint-should-retry-false"),
    pytest.param(504, None, None, R, U, id="504"),
    pytest.param(504, None, 5.0, R, U, id="504-hint"),
    pytest.param(599, None, None, R, U, id="599"),
    pytest.param(400, True, None, R, F, id="400-should-retry-true"),
    pytest.param(404, True, None, R, F, id="404-should-retry-true"),
    pytest.param(302, None, None, F, F, id="302-unexpected-redirect"),
]


@pytest.mark.parametrize(("status", "should_retry", "retry_after", "read", "create"), STATUS_CASES)
def test_classify_status(
    status: int, should_retry: bool | None, retry_after: float | None, read: Action, create: Action
) -> None:
    for create_flag, expected in ((False, read), (True, create)):
        verdict = classify(
            create=create_flag,
            status_code=status,
            should_retry=should_retry,
            retry_after=retry_after,
        )
        assert verdict is expected, f"create={create_flag}"


@pytest.mark.parametrize(
    ("delivery", "read", "create"),
    [
        pytest.param(Delivery.NOT_SENT, R, R, id="not-sent"),
        pytest.param(Delivery.MAYBE_SENT, R, U, id="maybe-sent"),
    ],
)
def test_classify_transport(delivery: Delivery, read: Action, create: Action) -> None:
    assert classify(create=False, delivery=delivery) is read
    assert classify(create=True, delivery=delivery) is create


def test_classify_needs_exactly_one_outcome() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        classify(create=False)
    with pytest.raises(ValueError, match="exactly one"):
        classify(create=False, status_code=500, delivery=Delivery.NOT_SENT)


@pytest.mark.parametrize(
    ("attempt", "rand", "expected"),
    [
        (0, 0.0, 0.5),
        (1, 0.0, 1.0),
        (2, 0.0, 2.0),
        (3, 0.0, 4.0),
        (4, 0.0, 8.0),
        (5, 0.0, 8.0),
        (1000, 0.0, 8.0),
        (0, 1.0, 0.375),
        (3, 0.5, 3.5),
        (10, 1.0, 6.0),
    ],
)
def test_backoff_delay_is_deterministic_with_a_random_source(
    attempt: int, rand: float, expected: float
) -> None:
    assert backoff_delay(attempt, Backoff(), random_source=lambda: rand) == pytest.approx(expected)


def test_backoff_delay_stays_within_bounds_with_real_jitter() -> None:
    backoff = Backoff(initial=1.0, maximum=4.0, jitter=0.5)
    delays = [backoff_delay(2, backoff) for _ in range(200)]
    assert all(2.0 <= delay <= 4.0 for delay in delays)
    assert len(set(delays)) > 1


def test_backoff_delay_rejects_negative_attempts() -> None:
    with pytest.raises(ValueError, match="from 0"):
        backoff_delay(-1, Backoff())


@pytest.mark.parametrize(
    "kwargs",
    [
        {"initial": -1.0},
        {"initial": 10.0, "maximum": 1.0},
        {"jitter": 1.5},
        {"jitter": -0.1},
        {"max_sleep": -1.0},
    ],
)
def test_backoff_rejects_nonsense(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="Backoff needs"):
        Backoff(**kwargs)


@pytest.mark.parametrize(
    ("retry_after", "max_sleep", "expected"),
    [
        pytest.param(None, 60.0, 0.5, id="no-hint-uses-backoff"),
        pytest.param(0.0, 60.0, 0.0, id="zero-hint"),
        pytest.param(3.0, 60.0, 3.0, id="hint-wins-over-backoff"),
        pytest.param(60.0, 60.0, 60.0, id="hint-at-cap"),
        pytest.param(60.5, 60.0, None, id="hint-over-cap-is-durable"),
        pytest.param(MAX_RETRY_AFTER, 60.0, None, id="huge-hint-is-durable"),
        pytest.param(5.0, 1.0, None, id="custom-cap"),
    ],
)
def test_sleep_before_retry(
    retry_after: float | None, max_sleep: float, expected: float | None
) -> None:
    backoff = Backoff(max_sleep=max_sleep)
    result = sleep_before_retry(0, backoff, retry_after=retry_after, random_source=lambda: 0.0)
    assert result == expected
