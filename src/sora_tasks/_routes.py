"""Routes: one name for a model that several providers reach, tried in order at submit.

A route lists provider names, each optionally with the model it goes by there
(``"fal:fal-ai/veo3.1"``). Failing over is safe only while no job can exist: :func:`refusal`
says which create errors prove that, and why.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ._exceptions import (
    InvalidRequestError,
    ProviderAuthError,
    ProviderError,
    ProviderHTTPError,
    ProviderRateLimitError,
    ProviderServerError,
    ProviderTransportError,
    SubmissionUncertainError,
    UnknownProviderError,
)

__all__ = ["Refusal", "RouteEntry", "parse_routes", "refusal"]

# the words providers use when a model or an API version is gone, or was never there
_RETIRED = re.compile(
    r"retired|deprecated|decommissioned|sunset|shut ?down|discontinued|no longer (available|"
    r"supported|offered)|model[_ ]not[_ ]found|unknown model|model .{0,80}(does not exist|not "
    r"found|not available)",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class RouteEntry:
    """One step of a route as configured: a provider's name and, optionally, its model."""

    provider: str
    model: str | None = None


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a create certainly started nothing: ``code`` as in :class:`SkippedProvider`."""

    code: str
    reason: str


def parse_routes(
    routes: Mapping[str, Sequence[str]], providers: Mapping[str, object]
) -> dict[str, tuple[RouteEntry, ...]]:
    """Check ``routes`` against the registered ``providers`` and split each ``name:model``.

    A route naming an unknown provider, an empty route, a provider listed twice in one route
    and a route named like a provider are all refused here, when the manager is built.
    """
    parsed: dict[str, tuple[RouteEntry, ...]] = {}
    for name, steps in routes.items():
        if isinstance(steps, str):
            raise InvalidRequestError(
                f"route {name!r} must list provider names, not the string {steps!r}",
                field=f"routes.{name}",
            )
        if name in providers:
            raise InvalidRequestError(
                f"route {name!r} has the name of a provider; give it a name of its own",
                field=f"routes.{name}",
            )
        entries = tuple(_entry(step) for step in steps)
        if not entries:
            raise InvalidRequestError(f"route {name!r} lists no provider", field=f"routes.{name}")
        seen: set[str] = set()
        for entry in entries:
            if entry.provider not in providers:
                raise UnknownProviderError(
                    f"route {name!r} names provider {entry.provider!r}, which is not registered "
                    f"(registered: {', '.join(sorted(providers))})",
                    field=f"routes.{name}",
                )
            if entry.provider in seen:
                raise InvalidRequestError(
                    f"route {name!r} lists provider {entry.provider!r} twice",
                    field=f"routes.{name}",
                )
            seen.add(entry.provider)
        parsed[name] = entries
    return parsed


def _entry(step: str) -> RouteEntry:
    provider, _, model = step.partition(":")
    return RouteEntry(provider.strip(), model.strip() or None)


def refusal(exc: ProviderError) -> Refusal | None:
    """Why the create that raised ``exc`` certainly started no job, or ``None`` if it may have.

    Only then may a routed task go on to its next provider. The HTTP layer raises a transport
    error, a 429 or a 5xx for a create only when nothing was started (anything that may have
    started a job is a :class:`SubmissionUncertainError`); a 404 or 410, or a refusal in the
    providers' words for a retired or unknown model, answers before any job exists.
    """
    if isinstance(exc, SubmissionUncertainError):
        return None
    if isinstance(exc, ProviderTransportError):
        return Refusal("unreachable", f"the create could not be sent: {exc}")
    if isinstance(exc, ProviderRateLimitError):
        return Refusal("rate_limited", f"the provider did nothing (rate limited): {exc}")
    if isinstance(exc, ProviderServerError):
        return Refusal("unavailable", f"the provider said it did nothing: {exc}")
    if isinstance(exc, ProviderAuthError):
        return Refusal("auth", f"the provider refused the credentials: {exc}")
    if isinstance(exc, ProviderHTTPError):
        said = f"{exc.code or ''} {exc}"
        if exc.status_code in (404, 410) or _RETIRED.search(said):
            return Refusal("retired", f"the model or API is retired or unknown there: {exc}")
    return None
