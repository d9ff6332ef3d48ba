"""What a fleet did to the simulator, counted per job: creates, polls in flight, faults received.

A fault-injection test reads it to prove its invariants from the provider's side: no prompt was
created twice (a double charge), no job had two status requests in flight at once, and which
faults hit which create or job (so a failed task can be explained).
"""

from __future__ import annotations

import threading
from collections import Counter

__all__ = ["Tally"]


class Tally:
    """Per-job counts, safe to read from a test while the server thread updates them.

    ``creates[prompt]`` counts jobs created with that prompt; ``peak_in_flight[(route, id)]`` is
    the most requests on that route for that job (or task) id ever in flight at the same time — a
    request is in flight from its arrival until its answer is sent or its client goes away;
    ``faults[(route, subject, kind)]`` counts faults fired, ``subject`` being the job id, or for a
    create the prompt of a JSON body (``""`` when unknown); ``fast_polls[id]`` counts status
    requests that came sooner after the previous one than the provider asks (see :meth:`polled`).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.creates: Counter[str] = Counter()
        self.faults: Counter[tuple[str, str, str]] = Counter()
        self.peak_in_flight: Counter[tuple[str, str]] = Counter()
        self._in_flight: Counter[tuple[str, str]] = Counter()
        self.fast_polls: Counter[str] = Counter()
        self._last_poll: dict[str, float] = {}

    def created(self, prompt: str) -> None:
        """Count one job created for ``prompt``."""
        with self._lock:
            self.creates[prompt] += 1

    def fault(self, route: str, subject: str, kind: str) -> None:
        """Count one ``kind`` fault fired on ``route`` for ``subject``."""
        with self._lock:
            self.faults[(route, subject, kind)] += 1

    def polled(self, job_id: str, at: float, floor: float) -> None:
        """A status request for ``job_id`` at clock time ``at``; one less than ``floor``
        seconds after the previous one counts in ``fast_polls``."""
        with self._lock:
            last = self._last_poll.get(job_id)
            if last is not None and at - last < floor:
                self.fast_polls[job_id] += 1
            self._last_poll[job_id] = at

    def enter(self, route: str, job_id: str) -> None:
        """A request about ``job_id`` on ``route`` arrived; raise its peak if need be."""
        key = (route, job_id)
        with self._lock:
            self._in_flight[key] += 1
            self.peak_in_flight[key] = max(self.peak_in_flight[key], self._in_flight[key])

    def leave(self, route: str, job_id: str) -> None:
        """That request was answered, or its client went away."""
        with self._lock:
            self._in_flight[(route, job_id)] -= 1

    def in_flight(self, route: str, job_id: str) -> int:
        """Requests on ``route`` about ``job_id`` in flight right now."""
        with self._lock:
            return self._in_flight[(route, job_id)]

    def max_in_flight(self, route: str) -> int:
        """The highest peak of any one job on ``route`` (0 when none was requested)."""
        with self._lock:
            return max((n for (r, _), n in self.peak_in_flight.items() if r == route), default=0)

    def duplicate_creates(self) -> dict[str, int]:
        """The prompts created more than once, with how many jobs each got."""
        with self._lock:
            return {prompt: n for prompt, n in self.creates.items() if n > 1}
