"""The webhook sender: delivers the outbox, signed with Standard Webhooks, at least once.

It runs beside the polling engine in every worker that has the deployment's secret. Each turn it
claims due deliveries under a lease (:meth:`TaskStore.claim_webhooks`, which keeps a task's
deliveries in order), POSTs each to the address its host resolves to right now (refused ones
fail the attempt), and records the outcome: a 2xx is delivered; anything else (a 3xx, whose
redirect is never followed, an error status, a timeout, a refused address) is retried after an
exponential, jittered wait until the policy's budget is spent, then given up with the error kept.
A worker killed mid-delivery leaves the lease to run out; the next claimant sends the same
``webhook-id`` again, so receivers can drop the duplicate.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from datetime import UTC, datetime
from typing import Final
from urllib.parse import urlsplit

import anyio
import httpx2
from pydantic import SecretStr
from standardwebhooks import Webhook

from ._exceptions import ConflictError
from ._logging import logger
from ._notify_url import NotifyTargetRefused, pinned_url, resolve_target
from ._outbox import WebhookDelivery, WebhookPolicy, WebhookState, backoff, clip_error
from ._secrets import register_secret
from ._version import __version__
from .storage._base import TaskStore

__all__ = ["WebhookSender", "check_webhook_secret"]

_PREFIX: Final = "whsec_"
_MIN_KEY_BYTES: Final = 24
_MAX_KEY_BYTES: Final = 64


def check_webhook_secret(secret: str | SecretStr) -> SecretStr:
    """The deployment's signing secret, checked and registered with the log scrubber.

    It must be ``whsec_`` followed by the base64 of 24 to 64 random bytes, as Standard Webhooks
    asks (``"whsec_" + base64.b64encode(os.urandom(32)).decode()`` makes one).
    """
    value = secret.get_secret_value() if isinstance(secret, SecretStr) else secret
    problem = None
    if not value.startswith(_PREFIX):
        problem = f"it must start with {_PREFIX!r}"
    else:
        try:
            key = base64.b64decode(value[len(_PREFIX) :], validate=True)
        except (binascii.Error, ValueError):
            problem = f"what follows {_PREFIX!r} must be base64"
        else:
            if not _MIN_KEY_BYTES <= len(key) <= _MAX_KEY_BYTES:
                problem = (
                    f"it holds {len(key)} bytes; {_MIN_KEY_BYTES} to {_MAX_KEY_BYTES} are needed"
                )
    if problem is not None:
        # the value itself stays out of the message
        raise ValueError(f"webhook_secret is not a Standard Webhooks secret: {problem}")
    register_secret(value)
    register_secret(value[len(_PREFIX) :])
    return SecretStr(value)


class WebhookSender:
    """Delivers due outbox rows until :meth:`stop`; see the module docstring."""

    def __init__(
        self, *, store: TaskStore, secret: SecretStr, policy: WebhookPolicy, owner: str
    ) -> None:
        self._store = store
        self._signer = Webhook(secret.get_secret_value())
        self._policy = policy
        self._owner = owner
        self._stopped = False
        self._idle: anyio.CancelScope | None = None
        self._failures = 0
        self._busy = 0
        # anyio primitives need a running event loop: made on each idle wait
        self._freed: anyio.Event | None = None

    def stop(self) -> None:
        """Claim nothing more; deliveries under way finish (each within the policy's timeout)."""
        self._stopped = True
        if self._idle is not None:
            self._idle.cancel()

    def reset(self) -> None:
        """Forget an earlier :meth:`stop`, so the sender can run again."""
        self._stopped = False

    async def run(self) -> None:
        """Claim and deliver until stopped, up to ``batch_size`` deliveries at once.

        Each finished delivery frees its place for the next claim, so one slow receiver holds
        one place (for at most the policy's ``timeout``), not the whole batch.
        """
        policy = self._policy
        timeout = httpx2.Timeout(policy.timeout, connect=policy.connect_timeout)
        async with (
            httpx2.AsyncClient(timeout=timeout, follow_redirects=False, trust_env=False) as client,
            anyio.create_task_group() as group,
        ):
            while not self._stopped:
                free = policy.batch_size - self._busy
                claimed = await self._claim(free) if free > 0 else []
                for delivery, now in claimed:
                    self._busy += 1
                    group.start_soon(self._deliver_freeing, client, delivery, now)
                if (len(claimed) < free or free <= 0) and not self._stopped:
                    wait = policy.idle_wait * 2 ** min(self._failures, 6)
                    freed = self._freed = anyio.Event()
                    with anyio.move_on_after(wait) as self._idle:
                        await freed.wait()
                    self._idle = None

    async def turn(self, client: httpx2.AsyncClient) -> list[WebhookDelivery]:
        """One round: claim up to ``batch_size`` due deliveries, send them concurrently and
        wait for every outcome; return those claimed."""
        claimed = await self._claim(self._policy.batch_size)
        async with anyio.create_task_group() as group:
            for delivery, now in claimed:
                group.start_soon(self._deliver, client, delivery, now)
        return [delivery for delivery, _ in claimed]

    async def _claim(self, limit: int) -> list[tuple[WebhookDelivery, datetime]]:
        try:
            claimed = await self._store.claim_webhooks(
                owner=self._owner, limit=limit, lease_seconds=self._policy.lease_seconds
            )
            now = await self._store.now() if claimed else None
        except Exception as exc:
            self._failures += 1
            logger.log(
                logging.ERROR if self._failures == 1 else logging.WARNING,
                "claiming webhook deliveries failed (%s: %s)",
                type(exc).__name__,
                exc,
                extra={"action": "webhook_claim", "attempt": self._failures},
            )
            return []
        self._failures = 0
        return [(delivery, now) for delivery in claimed if now is not None]

    async def _deliver_freeing(
        self, client: httpx2.AsyncClient, delivery: WebhookDelivery, now: datetime
    ) -> None:
        try:
            await self._deliver(client, delivery, now)
        finally:
            self._busy -= 1
            if self._freed is not None:
                self._freed.set()

    async def _deliver(
        self, client: httpx2.AsyncClient, delivery: WebhookDelivery, now: datetime
    ) -> None:
        error = await self._post(client, delivery)
        state, retry_in = WebhookState.DELIVERED, 0.0
        if error is not None:
            error = clip_error(error)
            spent = delivery.attempts >= self._policy.max_attempts
            expired = now - delivery.armed_at >= self._policy.max_age
            if spent or expired:
                state = WebhookState.FAILED
            else:
                state, retry_in = WebhookState.PENDING, backoff(delivery.attempts, self._policy)
        level = logging.INFO if state is WebhookState.DELIVERED else logging.WARNING
        logger.log(
            level,
            "webhook %s %s for task %s: %s after attempt %d%s",
            delivery.id,
            delivery.type,
            delivery.task_id,
            state.value,
            delivery.attempts,
            f" ({error})" if error else "",
            extra={"action": "webhook", "task_id": delivery.task_id, "attempt": delivery.attempts},
        )
        try:
            with anyio.CancelScope(shield=True):
                await self._store.settle_webhook(
                    delivery.id, owner=self._owner, state=state, error=error, retry_in=retry_in
                )
        except (ConflictError, LookupError) as exc:
            logger.warning("webhook %s was not recorded: %s", delivery.id, exc)
        except Exception as exc:
            # the lease runs out and the delivery is claimed again: at least once still holds
            logger.warning(
                "webhook %s outcome could not be stored (%s: %s)",
                delivery.id,
                type(exc).__name__,
                exc,
            )

    async def _post(self, client: httpx2.AsyncClient, delivery: WebhookDelivery) -> str | None:
        """Send one attempt; ``None`` when the receiver took it, else why not."""
        try:
            # a resolver that hangs holds this place no longer than a receiver may
            with anyio.fail_after(self._policy.connect_timeout):
                address = await resolve_target(
                    delivery.url, allow_private=self._policy.allow_private
                )
        except TimeoutError:
            return f"the host did not resolve within {self._policy.connect_timeout:g} s"
        except (NotifyTargetRefused, ValueError) as exc:
            return str(exc)
        url, host = pinned_url(delivery.url, address)
        body = json.dumps(delivery.payload, separators=(",", ":"), ensure_ascii=False)
        sent_at = datetime.now(UTC)
        headers = {
            "content-type": "application/json",
            "host": host,
            "user-agent": f"sora-tasks/{__version__}",
            "webhook-id": delivery.id,
            "webhook-timestamp": str(int(sent_at.timestamp())),
            "webhook-signature": self._signer.sign(delivery.id, sent_at, body),
        }
        # TLS checks the certificate against the URL's host name, not the pinned address
        hostname = urlsplit(delivery.url).hostname or ""
        extensions = {"sni_hostname": hostname} if url.startswith("https:") else {}
        try:
            with anyio.fail_after(self._policy.timeout):
                async with client.stream(
                    "POST",
                    url,
                    content=body.encode(),
                    headers=headers,
                    extensions=extensions,
                ) as response:
                    status = response.status_code
        except TimeoutError:
            return f"no answer within {self._policy.timeout:g} s"
        except Exception as exc:
            # whatever one receiver does ends its attempt, never the sender (and the engine)
            return f"{type(exc).__name__}: {exc}"
        if 200 <= status < 300:
            return None
        if 300 <= status < 400:
            return f"HTTP {status}: redirects are not followed"
        return f"HTTP {status}"
