"""Every SQL statement of the webhook outbox, built in one place (as :mod:`._sql_queries`).

Claims work as the task claims do: PostgreSQL locks the chosen rows with ``FOR UPDATE SKIP
LOCKED``, SQLite's ``BEGIN IMMEDIATE`` serialises claimers, and the outer lease check keeps the
write conditional either way. All times are the database's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Insert, Select, Update, exists, literal, or_, select

from .._outbox import WebhookDelivery, WebhookState
from ._sql_queries import db_now
from ._sql_schema import webhooks

__all__ = [
    "claim_webhooks",
    "delivery_from_row",
    "exists_webhook",
    "insert_webhooks",
    "list_webhooks",
    "retry_webhooks",
    "settle_webhook",
]

_PENDING = WebhookState.PENDING.value


def insert_webhooks(deliveries: Sequence[WebhookDelivery]) -> Insert:
    """Insert outbox rows."""
    return webhooks.insert().values(
        [
            delivery.model_dump(mode="python") | {"state": delivery.state.value}
            for delivery in deliveries
        ]
    )


def delivery_from_row(row: Mapping[Any, Any]) -> WebhookDelivery:
    """Rebuild a :class:`WebhookDelivery` from an outbox row."""
    return WebhookDelivery.model_validate(
        {name: row[name] for name in WebhookDelivery.model_fields}
    )


def claim_webhooks(dialect: str, *, owner: str, limit: int, lease_seconds: float) -> Update:
    """Lease up to ``limit`` due deliveries, each the earliest pending one of its task."""
    now = db_now(dialect)
    lease_free = or_(webhooks.c.lease_expires_at.is_(None), webhooks.c.lease_expires_at <= now)
    earlier = webhooks.alias("earlier")
    blocked = exists().where(
        earlier.c.task_id == webhooks.c.task_id,
        earlier.c.state == _PENDING,
        earlier.c.seq < webhooks.c.seq,
    )
    due = (
        select(webhooks.c.id)
        .where(
            webhooks.c.state == _PENDING,
            webhooks.c.next_attempt_at <= now,
            lease_free,
            ~blocked,
        )
        .order_by(webhooks.c.next_attempt_at, webhooks.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return (
        webhooks.update()
        .where(webhooks.c.id.in_(due), lease_free, webhooks.c.state == _PENDING)
        .values(
            lease_owner=owner,
            lease_expires_at=db_now(dialect, plus_seconds=lease_seconds),
            attempts=webhooks.c.attempts + 1,
        )
        .returning(*webhooks.c)
    )


def settle_webhook(
    dialect: str,
    delivery_id: str,
    *,
    owner: str,
    state: WebhookState,
    error: str | None,
    retry_in: float,
) -> Update:
    """End an attempt of a delivery ``owner`` still holds (zero rows otherwise)."""
    pending = state is WebhookState.PENDING
    return (
        webhooks.update()
        .where(
            webhooks.c.id == delivery_id,
            webhooks.c.state == _PENDING,
            webhooks.c.lease_owner == owner,
        )
        .values(
            state=state.value,
            last_error=error,
            next_attempt_at=db_now(dialect, plus_seconds=retry_in) if pending else None,
            delivered_at=db_now(dialect) if state is WebhookState.DELIVERED else None,
            lease_owner=None,
            lease_expires_at=None,
        )
    )


def exists_webhook(delivery_id: str) -> Select[Any]:
    """One column of the delivery's row, if there is one."""
    return select(literal(1)).where(webhooks.c.id == delivery_id)


def list_webhooks(state: WebhookState | None, task_id: str | None, limit: int) -> Select[Any]:
    """Deliveries, newest first."""
    stmt = select(webhooks)
    if state is not None:
        stmt = stmt.where(webhooks.c.state == state.value)
    if task_id is not None:
        stmt = stmt.where(webhooks.c.task_id == task_id)
    order = (webhooks.c.created_at.desc(), webhooks.c.seq.desc(), webhooks.c.id.desc())
    return stmt.order_by(*order).limit(limit)


def retry_webhooks(dialect: str, delivery_ids: Sequence[str] | None) -> Update:
    """Make failed deliveries pending again, due now, with a fresh budget."""
    now = db_now(dialect)
    stmt = webhooks.update().where(webhooks.c.state == WebhookState.FAILED.value)
    if delivery_ids is not None:
        stmt = stmt.where(webhooks.c.id.in_(list(delivery_ids)))
    return stmt.values(
        state=_PENDING,
        attempts=0,
        next_attempt_at=now,
        armed_at=now,
        lease_owner=None,
        lease_expires_at=None,
    )
