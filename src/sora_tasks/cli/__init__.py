"""The ``sora-tasks`` command line (extra ``cli``): one command per use case of TaskManager.

``main`` is the console script; ``app`` is the Typer application, for embedding or testing.
"""

from __future__ import annotations

try:
    import rich  # noqa: F401
    import typer  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        'the sora-tasks command needs the cli extra: pip install "sora-tasks[cli]"'
    ) from exc

from ._app import app, main

__all__ = ["app", "main"]
