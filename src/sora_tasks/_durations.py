"""Durations as people type them: ``30d``, ``12h``, ``1h30m``, ``90s`` or a number of seconds."""

from __future__ import annotations

import re
from datetime import timedelta

__all__ = ["parse_duration"]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_PART = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")


def parse_duration(text: str) -> timedelta:
    """Parse ``text``; raise :class:`ValueError` naming the accepted forms if it is not one."""
    compact = text.strip().lower().replace(" ", "")
    if _NUMBER.fullmatch(compact):
        seconds = float(compact)
    else:
        parts = _PART.findall(compact)
        if not parts or "".join(number + unit for number, unit in parts) != compact:
            raise ValueError(
                f"{text!r} is not a duration: use a number of seconds or units s, m, h, d, w "
                "(e.g. 30d, 1h30m)"
            )
        seconds = sum(float(number) * _UNITS[unit] for number, unit in parts)
    try:
        return timedelta(seconds=seconds)
    except OverflowError:
        raise ValueError(f"{text!r} is too long a duration") from None
