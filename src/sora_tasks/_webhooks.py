"""Standard Webhooks: verify a provider's signed event, drop repeats, re-read the job it names.

The signature check is the ``standardwebhooks`` reference implementation: HMAC-SHA256 over
``"{webhook-id}.{webhook-timestamp}.{raw body}"`` with the key base64-decoded from a
``whsec_<base64>`` secret, every ``v1,<base64>`` entry of ``webhook-signature`` compared in
constant time (``hmac.compare_digest``), and timestamps more than 300 s off either way refused.
In front of it this module parses the headers strictly and bounds the body (its size before the
signature is checked, its JSON nesting before it is parsed), so malformed or hostile input is a
clear refusal and never a crash; after it, it de-duplicates on ``webhook-id`` and asks the
provider for the job's real state, since an event is a hint and the provider's status is the
truth. A provider with no configured secret may tell its own (``Provider.webhook_secret``:
Replicate serves it from its API); it is asked once and kept.

A provider that signs its webhooks its own way (fal: Ed25519 against published keys) verifies
them itself: an adapter with a ``verify_webhook`` method (:class:`SignedWebhooks`) is asked
instead, when no Standard Webhooks secret is configured for it.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol, runtime_checkable

import anyio
import standardwebhooks
from pydantic import SecretStr

from ._exceptions import TaskNotFoundError, UnknownProviderError, WebhookVerificationError
from ._logging import log_task, logger
from ._models import Task
from ._secrets import register_secret
from .providers._json import DEFAULT_MAX_JSON_BYTES, DEFAULT_MAX_JSON_DEPTH, JSONLimitError, loads

if TYPE_CHECKING:
    from ._manager import TaskManager

__all__ = [
    "MemoryDeduplicator",
    "SignedWebhooks",
    "VerifiedWebhook",
    "WebhookDeduplicator",
    "WebhookReceiver",
    "WebhookResult",
    "WebhookVerificationError",
]

TOLERANCE_SECONDS = 300  # fixed by standardwebhooks.Webhook.verify
_HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")
_TIMESTAMP = re.compile(r"^[0-9]{1,12}$")
_MAX_ID_CHARS = 255
_SECRET_PREFIX = "whsec_"  # noqa: S105 - the format marker, not a secret


@dataclass(frozen=True, slots=True)
class WebhookResult:
    """What became of a verified event.

    ``outcome`` is ``"processed"`` (the job was re-read; ``task`` is the result), ``"duplicate"``
    (this ``webhook_id`` was handled before) or ``"ignored"`` (the event names no job we know).
    Each deserves a 2xx answer, so the provider stops delivering it.
    """

    outcome: Literal["processed", "duplicate", "ignored"]
    webhook_id: str
    event_type: str | None = None
    task: Task | None = None


@dataclass(frozen=True, slots=True)
class VerifiedWebhook:
    """An authentic delivery, as a provider's own verifier reads it.

    ``webhook_id`` is what repeats are recognised by; ``external_ids`` are the ids the job may
    be stored under (the first one a task has is re-read); ``event_type`` is for the record.
    """

    webhook_id: str
    external_ids: tuple[str, ...]
    event_type: str | None = None


@runtime_checkable
class SignedWebhooks(Protocol):
    """An adapter that verifies its provider's webhooks itself."""

    async def verify_webhook(self, headers: Mapping[str, str], body: bytes) -> VerifiedWebhook:
        """The delivery's job, or :class:`WebhookVerificationError` when it is not authentic."""
        ...


class WebhookDeduplicator(Protocol):
    """Remembers which deliveries were handled. ``claim`` is True only the first time for a key."""

    async def claim(self, key: str) -> bool:
        """Mark ``key`` as being handled; False when it was claimed already."""
        ...

    async def release(self, key: str) -> None:
        """Forget ``key``, so a redelivery is handled again (after a failure)."""
        ...


class MemoryDeduplicator:
    """A :class:`WebhookDeduplicator` for one process: at most ``max_entries`` keys, ``ttl`` each.

    Providers retry a delivery with the same ``webhook-id`` for hours, so the default keeps keys
    a day. Several processes behind one endpoint need a shared store instead.
    """

    def __init__(
        self,
        *,
        max_entries: int = 10_000,
        ttl: float = 24 * 3600,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_entries < 1 or ttl <= 0:
            raise ValueError("max_entries must be at least 1 and ttl positive")
        self._max_entries = max_entries
        self._ttl = ttl
        self._clock = clock
        self._expires: OrderedDict[str, float] = OrderedDict()

    async def claim(self, key: str) -> bool:
        """See :meth:`WebhookDeduplicator.claim`."""
        now = self._clock()
        # one ttl for all keys: insertion order is expiry order
        while self._expires and next(iter(self._expires.values())) <= now:
            self._expires.popitem(last=False)
        if key in self._expires:
            return False
        self._expires[key] = now + self._ttl
        if len(self._expires) > self._max_entries:
            self._expires.popitem(last=False)
        return True

    async def release(self, key: str) -> None:
        """See :meth:`WebhookDeduplicator.release`."""
        self._expires.pop(key, None)


class WebhookReceiver:
    """Verifies, de-duplicates and applies webhook events for one manager.

    ``secrets`` maps provider names (as registered with the manager) to their ``whsec_`` signing
    secrets. ``TaskManager(webhook_secrets=...)`` builds one; ``manager.handle_webhook`` uses it.
    A body longer than ``max_body_bytes`` or nesting JSON deeper than ``max_json_depth`` is
    refused with :class:`WebhookVerificationError`, like any delivery that cannot be trusted.
    """

    def __init__(
        self,
        manager: TaskManager,
        secrets: Mapping[str, str | SecretStr],
        *,
        deduplicator: WebhookDeduplicator | None = None,
        max_body_bytes: int = DEFAULT_MAX_JSON_BYTES,
        max_json_depth: int = DEFAULT_MAX_JSON_DEPTH,
    ) -> None:
        if max_body_bytes < 1 or max_json_depth < 1:
            raise ValueError("max_body_bytes and max_json_depth must be at least 1")
        unknown = sorted(set(secrets) - set(manager.providers))
        if unknown:
            raise UnknownProviderError(
                f"webhook secrets name providers that are not registered: {', '.join(unknown)}",
                field="webhook_secrets",
            )
        self._manager = manager
        self._secrets = {
            name: _checked_secret(
                name, secret if isinstance(secret, SecretStr) else SecretStr(secret)
            )
            for name, secret in secrets.items()
        }
        for secret in self._secrets.values():
            register_secret(secret.get_secret_value())
        self._seen = deduplicator if deduplicator is not None else MemoryDeduplicator()
        self._max_body_bytes = max_body_bytes
        self._max_json_depth = max_json_depth

    def __repr__(self) -> str:
        return f"WebhookReceiver(providers={sorted(self._secrets)})"

    async def handle(self, provider: str, headers: Mapping[str, str], body: bytes) -> WebhookResult:
        """Verify one delivery and, the first time its ``webhook-id`` is seen, re-read its job.

        Raises :class:`WebhookVerificationError` (and changes nothing) when it is not authentic.
        """
        if len(body) > self._max_body_bytes:
            raise WebhookVerificationError(
                f"webhook body is {len(body):,} bytes; the limit is {self._max_body_bytes:,}"
            )
        verifier: object = self._manager.providers.get(provider)
        if provider not in self._secrets and isinstance(verifier, SignedWebhooks):
            verified = await verifier.verify_webhook(headers, body)
            webhook_id, event_type = verified.webhook_id, verified.event_type
            external_ids = verified.external_ids
        else:
            webhook_id = self._verify(provider, await self._secret(provider), headers, body)
            event = _parse_event(body, self._max_json_depth)
            event_type = _str_or_none(event.get("type"))
            named = _job_id(event)
            external_ids = (named,) if isinstance(named, str) and named else ()
        key = f"{provider}\x00{webhook_id}"
        if not await self._seen.claim(key):
            logger.info("webhook %s from provider %r already handled", webhook_id, provider)
            return WebhookResult("duplicate", webhook_id, event_type)
        try:
            return await self._apply(provider, webhook_id, event_type, external_ids)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await self._seen.release(key)
            raise

    async def _secret(self, provider: str) -> SecretStr:
        """The configured secret, else the one the provider tells (Replicate's, say)."""
        secret = self._secrets.get(provider)
        adapter = self._manager.providers.get(provider)
        if secret is None and adapter is not None:
            secret = await adapter.webhook_secret()
            if secret is not None:
                secret = self._secrets[provider] = _checked_secret(provider, secret)
        if secret is None:
            raise WebhookVerificationError(
                f"no webhook secret is configured for provider {provider!r}"
            )
        return secret

    def _verify(
        self, provider: str, secret: SecretStr, headers: Mapping[str, str], body: bytes
    ) -> str:
        webhook_id, timestamp, signatures = _signed_headers(headers)
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise WebhookVerificationError("webhook body is not UTF-8") from None
        signed = {
            "webhook-id": webhook_id,
            "webhook-timestamp": timestamp,
            "webhook-signature": signatures,
        }
        try:
            standardwebhooks.Webhook(secret.get_secret_value()).verify(
                text, signed, json_parse=False
            )
        except standardwebhooks.WebhookVerificationError as exc:
            raise WebhookVerificationError(
                f"webhook {webhook_id} from provider {provider!r} refused: {exc} "
                f"(timestamps may be off by {TOLERANCE_SECONDS} s at most)"
            ) from None
        return webhook_id

    async def _apply(
        self, provider: str, webhook_id: str, event_type: str | None, external_ids: tuple[str, ...]
    ) -> WebhookResult:
        if not external_ids:
            logger.warning(
                "webhook %s (%s) from provider %r names no job; ignored",
                webhook_id,
                event_type,
                provider,
            )
            return WebhookResult("ignored", webhook_id, event_type)
        try:
            task = await self._find(provider, external_ids)
            task = await self._manager.refresh(task.id)
        except TaskNotFoundError:
            logger.warning(
                "webhook %s (%s) from provider %r names job %r, which no task here has; ignored",
                webhook_id,
                event_type,
                provider,
                external_ids[0],
            )
            return WebhookResult("ignored", webhook_id, event_type)
        log_task(
            logging.INFO,
            f"webhook {event_type} re-read the job: {task.status.value}",
            task,
            action="webhook",
            webhook_id=webhook_id,
        )
        return WebhookResult("processed", webhook_id, event_type, task)

    async def _find(self, provider: str, external_ids: tuple[str, ...]) -> Task:
        for external_id in external_ids[:-1]:
            try:
                return await self._manager.store.get_by_external_id(external_id, provider=provider)
            except TaskNotFoundError:
                continue
        return await self._manager.store.get_by_external_id(external_ids[-1], provider=provider)


def _job_id(event: Mapping[str, object]) -> object:
    """The job an event names: ``data.id`` in an event envelope (OpenAI), or the ``id`` of a
    delivery whose body is the job itself (Replicate sends the prediction, with its status)."""
    data = event.get("data")
    if isinstance(data, dict):
        return data.get("id")
    return event.get("id") if "status" in event else None


def _signed_headers(headers: Mapping[str, str]) -> tuple[str, str, str]:
    """The three signed headers, checked for shape; the signature list normalised."""
    lowered = {name.lower(): value.strip() for name, value in headers.items()}
    missing = [name for name in _HEADERS if not lowered.get(name)]
    if missing:
        raise WebhookVerificationError(f"webhook is missing header(s): {', '.join(missing)}")
    webhook_id, timestamp, signature = (lowered[name] for name in _HEADERS)
    if len(webhook_id) > _MAX_ID_CHARS:
        raise WebhookVerificationError(
            f"webhook-id is {len(webhook_id)} characters; the limit is {_MAX_ID_CHARS}"
        )
    if not _TIMESTAMP.match(timestamp):
        raise WebhookVerificationError("webhook-timestamp must be whole unix seconds")
    entries = signature.split()
    for entry in entries:
        version, comma, value = entry.partition(",")
        if not (version and comma and value) or "," in value or not _is_base64(value):
            raise WebhookVerificationError(
                "webhook-signature must be space-separated 'v1,<base64>' entries"
            )
    return webhook_id, timestamp, " ".join(entries)


def _is_base64(value: str) -> bool:
    try:
        base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return False
    return True


def _checked_secret(provider: str, secret: SecretStr) -> SecretStr:
    """Refuse a secret that is not ``whsec_<base64>`` now, rather than every event later."""
    encoded = secret.get_secret_value().removeprefix(_SECRET_PREFIX)
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if not key:
        raise ValueError(
            f"the webhook secret for provider {provider!r} must be whsec_<base64> (not shown here)"
        )
    return secret


def _parse_event(body: bytes, max_depth: int) -> dict[str, object]:
    """The event envelope; an authentic body that is not a JSON object counts as empty.

    One nested deeper than ``max_depth`` is refused: parsing it could exhaust the stack.
    """
    try:
        event = loads(body, max_depth=max_depth)
    except JSONLimitError as exc:
        raise WebhookVerificationError(f"webhook body refused: {exc}") from None
    except ValueError:
        return {}
    return event if isinstance(event, dict) else {}


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) else None
