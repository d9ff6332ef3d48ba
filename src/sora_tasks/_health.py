"""Health: is a manager's engine turning (liveness), does its store answer (readiness)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Literal

import anyio

from ._circuits import ProviderHealth
from ._exceptions import SoraTasksError
from ._poller import Engine
from ._secrets import scrub
from .storage._base import TaskStore

__all__ = ["DEFAULT_STORE_TIMEOUT", "EngineState", "Health", "check_health"]

DEFAULT_STORE_TIMEOUT = 5.0
"""Seconds the store has to answer a readiness check."""

EngineState = Literal["running", "stalled", "stopped", "off"]


@dataclass(frozen=True, slots=True)
class Health:
    """One look at a manager, as a liveness and a readiness probe need it.

    ``live`` is false only when the engine should be turning and is not (``engine`` is
    ``"stalled"``, or ``"stopped"`` while the manager is open): restarting the process is the
    cure. ``ready`` says the store answered within its time (``store`` is ``"ok"``, else why
    not; ``store_seconds`` is how long it took): route no traffic here until it is true again.
    A manager made with ``poll=False`` (an API process) has ``engine == "off"`` and is live
    while open. ``providers`` holds each provider's circuit breaker as this process sees it;
    an open circuit makes neither probe fail (a provider's outage is not this process's).
    """

    live: bool
    ready: bool
    engine: EngineState
    store: str
    store_seconds: float | None
    providers: Mapping[str, ProviderHealth] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        """The fields as a JSON-ready dict."""
        return asdict(self)


async def check_health(
    engine: Engine,
    store: TaskStore,
    *,
    open_: bool,
    polls: bool,
    store_timeout: float = DEFAULT_STORE_TIMEOUT,
    providers: Mapping[str, ProviderHealth] | None = None,
) -> Health:
    """Ask the store for its clock (a round trip that touches no table) and read the engine."""
    state: EngineState
    if not polls:
        state = "off"
    elif engine.stalled():
        state = "stalled"
    elif engine.running:
        state = "running"
    else:
        state = "stopped"
    store_state, seconds = await _ping(store, store_timeout)
    live = open_ and state in ("running", "off")
    return Health(
        live=live,
        ready=live and store_state == "ok",
        engine=state,
        store=store_state,
        store_seconds=seconds,
        providers=dict(providers or {}),
    )


async def _ping(store: TaskStore, timeout: float) -> tuple[str, float | None]:
    started = time.perf_counter()
    try:
        with anyio.fail_after(timeout):
            await store.now()
    except TimeoutError:
        return f"no answer within {timeout:g} s", None
    except SoraTasksError as exc:
        # the library's store errors name the failure, never the connection details
        return scrub(f"{type(exc).__name__}: {exc}"), None
    except Exception as exc:
        # a driver's own message may quote the URL, password and all: only its kind is shown
        return type(exc).__name__, None
    return "ok", time.perf_counter() - started
