"""Provider health: a circuit breaker per provider, fed by the outcomes of creates and polls.

``CLOSED`` lets every call through. ``failure_threshold`` failures in a row open it: routes then
pass the provider over for ``open_seconds``. After that it is ``HALF_OPEN``: one create goes
through as a probe (others are still passed over); its success closes the circuit, its failure
opens it again. Polls of existing jobs are never held back (a job cannot move), but their
outcomes count. Only answers that say the provider is in trouble count as failures: a
connection that fails, a 5xx, a 429, a timeout; any other answer, a refusal included, shows it
is up. The state lives in the process, shared by the manager's admission, engine and refreshes.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from ._exceptions import (
    ProviderError,
    ProviderRateLimitError,
    ProviderResponseError,
    ProviderServerError,
    ProviderTransportError,
    SubmissionUncertainError,
)
from ._secrets import scrub
from ._telemetry import watch_circuits

__all__ = ["CircuitPolicy", "CircuitState", "HealthBook", "ProviderHealth", "counts_as_failure"]


class CircuitState(enum.StrEnum):
    """Where a provider's circuit breaker stands."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True, slots=True)
class CircuitPolicy:
    """When a provider's circuit opens (``failure_threshold`` failures in a row) and for how
    long it stays open before one probe is let through (``open_seconds``)."""

    failure_threshold: int = 5
    open_seconds: float = 30.0

    def __post_init__(self) -> None:
        if self.failure_threshold < 1 or not self.open_seconds > 0:
            raise ValueError(
                "CircuitPolicy needs failure_threshold >= 1 and open_seconds > 0, got "
                f"{self.failure_threshold} and {self.open_seconds}"
            )


@dataclass(frozen=True, slots=True)
class ProviderHealth:
    """A snapshot of one provider's circuit: its state, the failures in a row that fed it, the
    last failure seen and, when open, how many seconds remain before a probe is allowed."""

    provider: str
    state: CircuitState
    consecutive_failures: int
    last_error: str | None
    retry_in: float | None


def counts_as_failure(exc: ProviderError) -> bool:
    """Whether ``exc`` says the provider is in trouble (rather than refusing one request)."""
    return isinstance(
        exc,
        ProviderTransportError
        | ProviderServerError
        | ProviderRateLimitError
        | ProviderResponseError
        | SubmissionUncertainError,
    )


class _Circuit:
    __slots__ = ("failures", "last_error", "opened_at", "probing_since")

    def __init__(self) -> None:
        self.failures = 0
        self.last_error: str | None = None
        self.opened_at: float | None = None
        self.probing_since: float | None = None


class HealthBook:
    """The circuit breakers of a manager's providers."""

    def __init__(
        self,
        providers: Iterable[str],
        policy: CircuitPolicy | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.policy = policy or CircuitPolicy()
        self._clock = clock
        self._circuits = {name: _Circuit() for name in providers}
        watch_circuits(self)

    def state(self, provider: str) -> CircuitState:
        """The circuit's state now."""
        circuit = self._circuits[provider]
        if circuit.opened_at is None:
            return CircuitState.CLOSED
        if self._clock() - circuit.opened_at < self.policy.open_seconds:
            return CircuitState.OPEN
        return CircuitState.HALF_OPEN

    def allow(self, provider: str) -> bool:
        """Whether a create may go to ``provider`` now; in ``HALF_OPEN``, the first caller gets
        the probe and the others are refused until it reports (or ``open_seconds`` pass)."""
        state = self.state(provider)
        if state is CircuitState.CLOSED:
            return True
        if state is CircuitState.OPEN:
            return False
        circuit, now = self._circuits[provider], self._clock()
        # a probe that never reported (its caller was cancelled) does not hold the circuit
        if circuit.probing_since is not None and now - circuit.probing_since < (
            self.policy.open_seconds
        ):
            return False
        circuit.probing_since = now
        return True

    def succeeded(self, provider: str) -> None:
        """Record an answer that shows the provider up: the circuit closes."""
        circuit = self._circuits.get(provider)
        if circuit is not None:
            circuit.failures = 0
            circuit.opened_at = circuit.probing_since = None

    def failed(self, provider: str, exc: ProviderError) -> None:
        """Record a failed call; the threshold reached (or a failed probe) opens the circuit."""
        circuit = self._circuits.get(provider)
        if circuit is None:
            return
        circuit.failures += 1
        circuit.last_error = scrub(str(exc))[:300]
        probe_failed = circuit.opened_at is not None
        if probe_failed or circuit.failures >= self.policy.failure_threshold:
            circuit.opened_at = self._clock()
            circuit.probing_since = None

    def record(self, provider: str, exc: ProviderError | None) -> None:
        """Feed one call's outcome: ``None`` for success, else the error it raised."""
        if exc is None or not counts_as_failure(exc):
            self.succeeded(provider)
        else:
            self.failed(provider, exc)

    def snapshot(self) -> dict[str, ProviderHealth]:
        """Every provider's circuit, by name."""
        return {name: self._health(name) for name in sorted(self._circuits)}

    def _health(self, name: str) -> ProviderHealth:
        circuit, state = self._circuits[name], self.state(name)
        retry_in = None
        if state is CircuitState.OPEN and circuit.opened_at is not None:
            retry_in = max(0.0, circuit.opened_at + self.policy.open_seconds - self._clock())
        return ProviderHealth(
            provider=name,
            state=state,
            consecutive_failures=circuit.failures,
            last_error=circuit.last_error,
            retry_in=retry_in,
        )
