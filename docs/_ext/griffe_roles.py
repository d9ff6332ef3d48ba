"""A griffe extension for the API reference: Sphinx roles in docstrings become inline code.

The docstrings in ``src`` cross-reference with Sphinx roles (``:class:`Task```); Markdown has no
such syntax, so without this they would render as a literal ``:class:`` before the name.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_ROLE = re.compile(r":(?:attr|class|data|exc|func|meth|mod|obj):`~?([^`]+)`")


class SphinxRolesToCode(griffe.Extension):
    """Rewrite ``:role:`name``` to ```name``` in every docstring griffe loads."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = _ROLE.sub(r"`\1`", obj.docstring.value)
