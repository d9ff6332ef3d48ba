"""The secrets this process knows, and the one function that keeps them out of provider text.

Every :class:`~sora_tasks.providers._http.ProviderClient` registers its API key (and the header
value built from it) here when it is built. Anything a provider sends back (codes, messages,
status words, ids, URLs) passes through :func:`scrub` before it is stored, logged, raised or
shown, so a server that echoes a key cannot plant it in a task row. The registry is process-wide
on purpose: the engine scrubs with it too, without knowing which client a text came from.
"""

from __future__ import annotations

import threading

__all__ = ["MIN_SECRET_CHARS", "REDACTED", "register_secret", "scrub"]

REDACTED = "[redacted]"

MIN_SECRET_CHARS = 8
"""Shorter values are not registered: no real key is that short, and masking a two-letter test
key process-wide would mangle every word that contains it (``task`` for ``sk``)."""

_lock = threading.Lock()
# longest first, so a header value ("Bearer <key>") is masked whole before the key inside it;
# replaced as a whole tuple, so readers never see it half-updated
_known: tuple[str, ...] = ()


def register_secret(value: str) -> None:
    """Remember ``value`` as a secret; :func:`scrub` masks it from now on.

    Values shorter than :data:`MIN_SECRET_CHARS` are ignored.
    """
    global _known
    if len(value) < MIN_SECRET_CHARS:
        return
    with _lock:
        if value not in _known:
            _known = tuple(sorted((*_known, value), key=len, reverse=True))


def scrub(text: str) -> str:
    """``text`` with every registered secret replaced by ``[redacted]``."""
    for secret in _known:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text
