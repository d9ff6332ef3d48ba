"""JSON from a provider, with limits: at most so many bytes, and at most so deep.

``json.loads`` recurses once per level of nesting, so 100,000 ``[`` raise ``RecursionError``
from deep inside the parser (or exhaust the stack). :func:`loads` measures the depth first, with
a scanner that steps over string contents and escapes, and only hands the text to ``json.loads``
once it is known to be shallow enough. Bodies must be UTF-8, as RFC 8259 requires between
systems; other encodings could hide brackets from the scanner.
"""

from __future__ import annotations

import json
import re

__all__ = [
    "DEFAULT_MAX_JSON_BYTES",
    "DEFAULT_MAX_JSON_DEPTH",
    "JSONLimitError",
    "check_depth",
    "loads",
]

DEFAULT_MAX_JSON_BYTES = 1024 * 1024
"""1 MiB: a status or a page of 100 listed jobs is a few KiB to a few hundred."""

DEFAULT_MAX_JSON_DEPTH = 64
"""Nesting levels (objects and arrays); provider payloads use fewer than ten."""

_STRUCTURE = re.compile(r'[\[\]{}"]')
# the rest of a string after its opening quote; possessive, so an unterminated one fails fast
_STRING_REST = re.compile(r'[^"\\]*+(?:\\.[^"\\]*+)*+"', re.DOTALL)


class JSONLimitError(ValueError):
    """A body over the size or nesting limit; ``limit`` is the bound it broke."""

    def __init__(self, message: str, *, limit: int) -> None:
        super().__init__(message)
        self.limit = limit


def check_depth(text: str, max_depth: int) -> None:
    """Raise :class:`JSONLimitError` if ``text`` nests objects/arrays deeper than ``max_depth``.

    Text that is not valid JSON may pass; ``json.loads`` rejects it next, without recursing deep.
    """
    if text.count("[") + text.count("{") <= max_depth:
        return  # the common case: too few brackets to go that deep, wherever they are
    depth = 0
    position = 0
    search = _STRUCTURE.search
    while (found := search(text, position)) is not None:
        char = found.group()
        position = found.end()
        if char == '"':
            rest = _STRING_REST.match(text, position)
            if rest is None:
                return  # an unterminated string: not JSON, and nothing after it counts
            position = rest.end()
        elif char in "[{":
            depth += 1
            if depth > max_depth:
                raise JSONLimitError(
                    f"the JSON nests deeper than {max_depth} levels", limit=max_depth
                )
        else:
            depth -= 1


def loads(body: bytes, *, max_depth: int = DEFAULT_MAX_JSON_DEPTH) -> object:
    """Decode a UTF-8 JSON ``body``, refusing nesting deeper than ``max_depth``.

    Raises :class:`JSONLimitError` over the limit and ``ValueError`` for anything not JSON.
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("the body is not UTF-8") from None
    check_depth(text, max_depth)
    return json.loads(text)
