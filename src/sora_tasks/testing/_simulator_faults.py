"""Fault injection: which misbehaviour the next requests on a route get, and how many fired."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Literal

__all__ = ["ROUTES", "FaultKind", "FaultPlan", "Faults"]

ROUTES = frozenset(
    {
        "create",
        "retrieve",
        "list",
        "delete",
        "content",
        "relay_create",
        "relay_status",
        "relay_download",
        "files",
        "replicate_create",
        "replicate_get",
        "veo_create",
        "veo_get",
        "veo_files",
        "vertex_create",
        "vertex_get",
        "vertex_storage",
        "replicate_list",
        "replicate_cancel",
        "runway_create",
        "runway_get",
        "runway_delete",
        "runway_files",
        "replicate_secret",
        "replicate_files",
        "fal_submit",
        "fal_status",
        "fal_result",
        "fal_cancel",
        "fal_files",
        "fal_storage_token",
        "fal_cdn_upload",
        "fal_cdn_files",
    }
)
"""The route names faults attach to; ``"*"`` stands for every route without its own entry."""

FaultKind = Literal[
    "slow_responses",
    "rate_limits",
    "server_errors",
    "echoed_keys",
    "dropped_responses",
    "truncated_bodies",
    "auth_failures",
    "rejections",
]


@dataclass(frozen=True, slots=True)
class Faults:
    """Misbehaviour for one route: the first N requests get each fault, later ones answer normally.

    Per request the kinds apply in this order: a slow answer waits ``delay`` seconds first; then a
    rate limit (429 with ``Retry-After: retry_after``), or else a server error
    (``server_error_status``, 500 unless set), or else an auth failure (401), or else a rejection
    (``rejection_status``, 400 unless set: the request refused as invalid), or else an echoed key
    (400 whose error code, type and message quote the credential the request sent, as a careless
    provider might) answers without doing anything. A slow answer whose client goes away
    during the wait is not answered at all. A request that was handled successfully may then be
    dropped (the work is done — a create creates its job — but the connection closes before the
    body) or truncated (the full ``Content-Length`` is announced, half the body is sent, then the
    connection closes).
    Use ``sys.maxsize`` for "every request".
    """

    rate_limits: int = 0
    retry_after: float = 1.0
    server_errors: int = 0
    echoed_keys: int = 0
    slow_responses: int = 0
    delay: float = 1.0
    dropped_responses: int = 0
    truncated_bodies: int = 0
    auth_failures: int = 0
    rejections: int = 0
    rejection_status: int = 400
    server_error_status: int = 500

    def __post_init__(self) -> None:
        for item in fields(self):
            value = getattr(self, item.name)
            if value < 0:
                raise ValueError(f"Faults.{item.name} must be >= 0, got {value!r}")
        if not 400 <= self.rejection_status < 500 or self.rejection_status in (401, 403, 429):
            raise ValueError(
                "Faults.rejection_status must be a 4xx other than 401, 403 and 429, "
                f"got {self.rejection_status!r}"
            )
        if not 500 <= self.server_error_status < 600:
            raise ValueError(
                f"Faults.server_error_status must be a 5xx, got {self.server_error_status!r}"
            )


class FaultPlan:
    """The faults in force per route and a count of those that fired.

    Thread-safe: the server answers in its own thread while a test replaces faults or reads counts.
    """

    def __init__(self, faults: Mapping[str, Faults] | None = None) -> None:
        self._lock = threading.Lock()
        self._faults: dict[str, Faults] = {}
        self.fired: Counter[tuple[str, FaultKind]] = Counter()
        """How many times each ``(route, kind)`` fault fired; ``route`` is the name looked up."""
        for route, route_faults in (faults or {}).items():
            self.set(route, route_faults)

    def set(self, route: str, faults: Faults | None) -> None:
        """Put ``faults`` in force on ``route`` (or ``"*"``) with fresh counts; ``None`` clears."""
        if route != "*" and route not in ROUTES:
            raise ValueError(f"unknown route {route!r}; choose '*' or one of {sorted(ROUTES)}")
        with self._lock:
            for key in [key for key in self.fired if key[0] == route]:
                del self.fired[key]
            if faults is None:
                self._faults.pop(route, None)
            else:
                self._faults[route] = faults

    def take(self, route: str, kind: FaultKind) -> Faults | None:
        """Consume one ``kind`` fault on ``route``; returns the faults config when one fires."""
        with self._lock:
            key = route if route in self._faults else "*"
            faults = self._faults.get(key)
            if faults is None or self.fired[(key, kind)] >= getattr(faults, kind):
                return None
            self.fired[(key, kind)] += 1
            return faults
