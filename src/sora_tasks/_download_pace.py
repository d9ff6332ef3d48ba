"""The pace a download must keep: a stall timeout and a minimum throughput over a window.

A per-read timeout cannot catch a body dripped a few bytes at a time, each read well inside it.
So a watchdog samples the byte count on a short tick and fails the download (the way curl's
``--speed-limit``/``--speed-time`` does) when fewer than ``min_bytes_per_second`` arrived on
average over the last ``window`` seconds, or nothing at all for ``stall_timeout`` seconds.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import anyio

from ._exceptions import DownloadError

__all__ = ["Meter", "Pace"]

_LONGEST_TICK = 1.0


@dataclass(frozen=True, slots=True)
class Pace:
    """The slowest a download may go; ``min_bytes_per_second=0`` keeps only the stall rule."""

    min_bytes_per_second: int = 1024
    window: float = 20.0
    stall_timeout: float = 30.0

    def __post_init__(self) -> None:
        if self.min_bytes_per_second < 0:
            raise ValueError(
                f"min_bytes_per_second must not be negative (got {self.min_bytes_per_second})"
            )
        if not self.window > 0 or not self.stall_timeout > 0:
            raise ValueError(
                f"window and stall_timeout must be positive seconds "
                f"(got {self.window} and {self.stall_timeout})"
            )


class Meter:
    """Counts the bytes that arrived; :meth:`watch` fails once they come in too slowly."""

    def __init__(self, pace: Pace) -> None:
        self.arrived = 0
        self._pace = pace

    async def watch(self) -> None:
        """Sample :attr:`arrived` until cancelled; raise :class:`DownloadError` on a breach."""
        pace = self._pace
        tick = min(_LONGEST_TICK, pace.window / 10, pace.stall_timeout / 10)
        now = anyio.current_time()
        samples = deque([(now, 0)])
        last_seen, moved_at = 0, now
        while True:
            await anyio.sleep(tick)
            now, arrived = anyio.current_time(), self.arrived
            if arrived != last_seen:
                last_seen, moved_at = arrived, now
            elif now - moved_at >= pace.stall_timeout:
                raise DownloadError(
                    f"the download stalled: no bytes arrived for {pace.stall_timeout:g} s "
                    f"({arrived:,} bytes in all)"
                )
            samples.append((now, arrived))
            while len(samples) > 1 and samples[1][0] <= now - pace.window:
                samples.popleft()
            since, before = samples[0]
            span = now - since
            if span >= pace.window and arrived - before < pace.min_bytes_per_second * span:
                raise DownloadError(
                    f"the download was slower than {pace.min_bytes_per_second:,} B/s for "
                    f"{pace.window:g} s ({(arrived - before) / span:,.0f} B/s)"
                )
