"""The HTML view of a task that notebooks show inline: status, prompt, timings, error, video.

Every value that came from outside (prompt, error, paths, ids) is escaped: a prompt is user
input, and a notebook renders whatever HTML it is given.
"""

from __future__ import annotations

import html
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

if TYPE_CHECKING:
    from ._models import Task

__all__ = ["task_html"]

_BADGE_COLOURS = {
    "QUEUED": "#0e7490",
    "PROCESSING": "#1d4ed8",
    "COMPLETED": "#15803d",
    "FAILED": "#b91c1c",
    "CANCELLED": "#a16207",
}


def task_html(task: Task) -> str:
    """An HTML fragment for ``task``; with a ``<video>`` player once the file is on disk."""
    status = task.status.value
    badge = (
        f'<span style="background:{_BADGE_COLOURS.get(status, "#475569")};color:#fff;'
        f'padding:1px 8px;border-radius:9px;font-size:0.85em">{_e(status)}</span>'
    )
    rows = [
        ("prompt", _e(task.prompt)),
        ("model", _e(f"{task.model} · {task.size} · {task.seconds} s · {task.provider}")),
        ("progress", f"{task.progress}%"),
        ("created", _time(task.created_at)),
        ("completed", _time(task.completed_at)),
        ("took", _took(task)),
    ]
    if task.error is not None:
        rows.append(("error", f"<code>{_e(task.error.code)}</code> {_e(task.error.message)}"))
    table = "".join(
        f'<tr><th style="text-align:left;padding-right:1em">{name}</th>'
        f'<td style="text-align:left">{value}</td></tr>'
        for name, value in rows
        if value
    )
    return (
        '<div class="sora-task">'
        f"<div><code>{_e(task.id)}</code> {badge}</div>"
        f"<table>{table}</table>{_player(task)}</div>"
    )


def _e(text: str) -> str:
    return html.escape(text, quote=True)


def _time(moment: datetime | None) -> str:
    return "" if moment is None else _e(f"{moment:%Y-%m-%d %H:%M:%S} UTC")


def _took(task: Task) -> str:
    if task.completed_at is None:
        return ""
    return f"{(task.completed_at - task.created_at).total_seconds():.1f} s"


def _player(task: Task) -> str:
    local = task.result.local_path if task.result else None
    if not local or not Path(local).is_file():
        return ""
    return f'<video controls width="480" src="{_e(_source(Path(local)))}"></video>'


def _source(path: Path) -> str:
    # notebooks resolve relative URLs against the notebook's folder, usually the working directory
    try:
        return quote(path.resolve().relative_to(Path.cwd().resolve()).as_posix())
    except ValueError:
        return path.resolve().as_uri()
