"""A real notebook, executed by nbclient in a real IPython kernel: top-level ``await``, the
progress bar (a widget with ipywidgets, text without, never a warning) and the task card
playing the saved video by its path relative to the notebook."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

pytestmark = pytest.mark.timeout(60)

GENERATE = """
from sora_tasks import TaskManager
from sora_tasks.notebook import card
from sora_tasks.testing import FakeBehaviour, FakeProvider

fake = FakeProvider(behaviour=FakeBehaviour(render_for=0.3, progress_step=20, poll_after=0.02))
async with TaskManager(providers={"fake": fake}) as manager:
    task = await manager.generate("a calico cat", output="cat.mp4", progress=True)
    shown = await card(manager, task.id)
"""


def run_notebook(directory: Path, *cells: str) -> list[list[Any]]:
    """Execute ``cells`` in a fresh kernel whose working directory is ``directory``."""
    document = {
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3"}},
        "cells": [
            {
                "cell_type": "code",
                "id": f"cell-{number}",
                "metadata": {},
                "execution_count": None,
                "outputs": [],
                "source": source,
            }
            for number, source in enumerate(cells)
        ],
    }
    # nbformat ships no type information for its readers
    notebook = nbformat.reads(json.dumps(document), as_version=4)  # type: ignore[no-untyped-call]
    client = NotebookClient(
        notebook,
        timeout=45,
        kernel_name="python3",
        resources={"metadata": {"path": str(directory)}},
    )
    client.execute()
    return [cell.outputs for cell in notebook.cells]


def texts(outputs: list[Any], name: str) -> str:
    return "".join(output.text for output in outputs if output.get("name") == name)


@pytest.fixture(autouse=True)
def jupyter_paths(monkeypatch: pytest.MonkeyPatch) -> None:
    # the new path layout: the old one is announced with a DeprecationWarning
    monkeypatch.setenv("JUPYTER_PLATFORM_DIRS", "1")


def test_a_notebook_shows_a_widget_bar_and_a_card_playing_the_video(tmp_path: Path) -> None:
    generated, shown, task = run_notebook(tmp_path, GENERATE, "shown", "task")
    widgets = [
        o for o in generated if "application/vnd.jupyter.widget-view+json" in o.get("data", {})
    ]
    assert widgets, generated
    assert texts(generated, "stderr") == ""
    assert (tmp_path / "cat.mp4").stat().st_size > 0
    (card_html,) = [o["data"]["text/html"] for o in shown if o.output_type == "execute_result"]
    assert '<video controls width="480" src="cat.mp4"></video>' in card_html
    assert ">COMPLETED</span>" in card_html
    (task_html,) = [o["data"]["text/html"] for o in task if o.output_type == "execute_result"]
    assert 'src="cat.mp4"' in task_html


def test_without_ipywidgets_the_bar_is_text_and_nothing_warns(tmp_path: Path) -> None:
    hide_widgets = "import sys\nsys.modules['ipywidgets'] = None"
    _, generated, shown = run_notebook(tmp_path, hide_widgets, GENERATE, "shown")
    assert not [o for o in generated if o.output_type == "display_data"]
    drawn = texts(generated, "stderr")
    assert "100%" in drawn
    assert "completed" in drawn
    assert "Warning" not in drawn
    assert "IProgress" not in drawn
    assert any(o.output_type == "execute_result" for o in shown)
