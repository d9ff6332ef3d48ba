"""A griffe extension for the API reference: Sphinx roles in docstrings become Markdown.

The docstrings in ``src`` cross-reference with Sphinx roles (``:class:`Task```), which Markdown
does not know. A role naming something exported by ``sora_tasks`` becomes a link to its entry in
the reference; any other becomes inline code.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

import griffe

_ROLE = re.compile(r":(?:attr|class|data|exc|func|meth|mod|obj):`~?([^`]+)`")
_ROOT = Path(__file__).parents[2] / "src" / "sora_tasks" / "__init__.py"


def _exported() -> frozenset[str]:
    """The names in ``sora_tasks.__all__``, read without importing the package."""
    for node in ast.parse(_ROOT.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and any(
            isinstance(target, ast.Name) and target.id == "__all__" for target in node.targets
        ):
            return frozenset(ast.literal_eval(node.value))
    return frozenset()


class SphinxRolesToMarkdown(griffe.Extension):
    """Rewrite ``:role:`name``` in every docstring griffe loads."""

    def __init__(self) -> None:
        self._exported = _exported()

    def _markdown(self, match: re.Match[str]) -> str:
        name = match[1]
        if name in self._exported:
            return f"[`{name}`][sora_tasks.{name}]"
        return f"`{name}`"

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = _ROLE.sub(self._markdown, obj.docstring.value)
