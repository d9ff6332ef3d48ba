"""Every ```python block in README.md and docs/*.md runs, so a broken example fails CI.

A block is a complete script by default: it runs in a fresh namespace as ``__main__``, in an
empty temporary directory, under this module's timeout. Top-level ``await`` and ``async with``
are allowed, as in a notebook: such a block runs under ``anyio.run`` (``<!-- docs-test: async -->``
may say so, but is not needed).

An HTML comment on the line before the fence (blank lines between are fine; the comment does not
show on the rendered page) changes that:

- ``<!-- docs-test: continue -->`` -- the block goes on from the previous python block of the same
  page: the test runs both, in order, in one namespace (sync parts share objects; each async
  block gets its own event loop).
- ``<!-- docs-test: pytest -->`` -- the block is a test module: pytest runs it in a subprocess and
  it must pass.
- ``<!-- docs-test: skip reason="..." -->`` -- the block is not run and the test reports the skip
  with that reason. Only for what cannot run here: a real API key, a live PostgreSQL server, a
  fragment of a larger program. Prefer rewriting the example against ``FakeProvider`` or the
  simulator.

```bash blocks are not run unless marked ``<!-- docs-test: run -->``: then each one runs with
``bash -e`` in a temporary directory, the virtualenv's ``bin`` first on ``PATH``, and must exit 0.

Blocks run with the environment a reader would have: ``OPENAI_API_KEY`` and ``OPENAI_BASE_URL``
point at the provider simulator (served on 127.0.0.1 for this module, hence the integration
tier; jobs render in half a second), ``OPENAI_WEBHOOK_SECRET`` holds a fresh ``whsec_`` secret and
the user data directory (the default SQLite file) is inside the temporary directory.
"""

from __future__ import annotations

import ast
import base64
import inspect
import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Awaitable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest

import sora_tasks
from sora_tasks.testing import create_simulator_app, serve_in_thread

ROOT = Path(__file__).parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SUBPROCESS_TIMEOUT = 50.0

_FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>`{3,})(?P<info>[^`]*)$")
_MARKER = re.compile(
    r'^\s*<!--\s*docs-test:\s*(?P<kind>[a-z]+)(?:\s+reason="(?P<reason>[^"]+)")?\s*-->\s*$'
)
_KINDS = {"python": {"async", "continue", "pytest", "skip"}, "bash": {"run"}}

pytestmark = pytest.mark.timeout(60)


@dataclass(frozen=True)
class Block:
    """One fenced code block of a page."""

    page: Path
    line: int  # of the first line of code, 1-based
    language: str
    code: str
    kind: str | None = None
    reason: str | None = None
    previous: Block | None = None  # the page's python block before this one

    @property
    def name(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"

    def chain(self) -> list[Block]:
        """This block and the blocks it continues, first one first."""
        blocks = [self]
        while blocks[0].kind == "continue":
            previous = blocks[0].previous
            if previous is None:
                raise AssertionError(f"{blocks[0].name}: `continue` needs a python block before it")
            blocks.insert(0, previous)
        return blocks


def read_blocks(page: Path) -> Iterator[Block]:
    lines = page.read_text(encoding="utf-8").splitlines()
    previous: Block | None = None
    index = 0
    while index < len(lines):
        opening = _FENCE.match(lines[index])
        index += 1
        if opening is None:
            continue
        start = index
        while index < len(lines) and lines[index].strip() != opening["fence"]:
            index += 1
        code = textwrap.dedent("\n".join(lines[start:index])) + "\n"
        index += 1
        language = (opening["info"].split() or [""])[0]
        if language not in _KINDS:
            continue
        kind, reason = marker(lines, start - 1, page)
        if kind is not None and kind not in _KINDS[language]:
            raise AssertionError(f"{page.name}:{start}: no `{kind}` marker for {language} blocks")
        if kind == "skip" and not reason:
            raise AssertionError(f'{page.name}:{start}: a skip needs reason="..."')
        block = Block(page, start + 1, language, code, kind, reason, previous)
        if language == "python":
            previous = block
        yield block


def marker(lines: list[str], fence: int, page: Path) -> tuple[str | None, str | None]:
    """The ``docs-test`` marker above the fence on line index ``fence``, if any."""
    above = fence - 1
    while above >= 0 and not lines[above].strip():
        above -= 1
    if above < 0 or "docs-test" not in lines[above]:
        return None, None
    found = _MARKER.match(lines[above])
    if found is None:
        raise AssertionError(f"{page.name}:{above + 1}: malformed marker {lines[above].strip()!r}")
    return found["kind"], found["reason"]


BLOCKS = [block for page in PAGES for block in read_blocks(page)]
PYTHON = [block for block in BLOCKS if block.language == "python"]
BASH = [block for block in BLOCKS if block.language == "bash" and block.kind == "run"]


@pytest.fixture(scope="module")
def simulator_url() -> Iterator[str]:
    app = create_simulator_app(queue_seconds=0, render_seconds=0.5, poll_after_ms=None)
    with serve_in_thread(app) as url:
        yield url


@pytest.fixture(autouse=True)
def reader_environment(simulator_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-docs-test")
    monkeypatch.setenv("OPENAI_BASE_URL", f"{simulator_url}/v1")
    secret = base64.b64encode(os.urandom(24)).decode()
    monkeypatch.setenv("OPENAI_WEBHOOK_SECRET", f"whsec_{secret}")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))


def run_python(block: Block, namespace: dict[str, Any]) -> None:
    # leading newlines keep traceback line numbers equal to the page's
    source = "\n" * (block.line - 1) + block.code
    code = compile(source, str(block.page), "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    if code.co_flags & inspect.CO_COROUTINE:
        awaitable: Awaitable[None] = eval(code, namespace)

        async def main() -> None:
            await awaitable

        anyio.run(main)
    else:
        exec(code, namespace)


@pytest.mark.parametrize("block", PYTHON, ids=[block.name for block in PYTHON])
def test_python_example_runs(block: Block, tmp_path: Path) -> None:
    if block.kind == "skip":
        pytest.skip(f"{block.name}: {block.reason}")
    if block.kind == "pytest":
        module = tmp_path / "test_docs_example.py"
        module.write_text(block.code, encoding="utf-8")
        args = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "error"]
        done = subprocess.run(
            [*args, module.name],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=SUBPROCESS_TIMEOUT,
            check=False,
        )
        assert done.returncode == 0, f"{block.name}:\n{done.stdout}\n{done.stderr}"
        assert " passed" in done.stdout, done.stdout
        return
    namespace: dict[str, Any] = {"__name__": "__main__"}
    for part in block.chain():
        run_python(part, namespace)


@pytest.mark.parametrize("block", BASH, ids=[block.name for block in BASH])
def test_bash_example_runs(block: Block, tmp_path: Path) -> None:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(
        ["bash", "-e", "-c", block.code],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, f"{block.name}:\n{done.stdout}\n{done.stderr}"


def test_readme_quickstart_is_run() -> None:
    readme = [block for block in PYTHON if block.page.name == "README.md"]
    assert readme, "the README lost its quickstart"
    assert all(block.kind != "skip" for block in readme), "the README's examples must run"


def test_api_reference_lists_every_export() -> None:
    page = (ROOT / "docs" / "reference" / "sora_tasks.md").read_text(encoding="utf-8")
    shown = set(re.findall(r"^::: sora_tasks\.(\w+)$", page, flags=re.M))
    missing = sorted(set(sora_tasks.__all__) - shown - {"__version__"})
    assert not missing, f"add `::: sora_tasks.<name>` to docs/reference/sora_tasks.md: {missing}"


def test_every_test_the_guarantees_cite_exists() -> None:
    page = (ROOT / "docs" / "guarantees.md").read_text(encoding="utf-8")
    cited = re.findall(r"`((?:unit|integration|contract|acceptance)/\w+\.py)(?:::(\w+))?`", page)
    assert cited, "docs/guarantees.md cites no tests"
    for path, name in cited:
        module = ROOT / "tests" / path
        assert module.is_file(), f"docs/guarantees.md cites {path}, which does not exist"
        if name:
            defined = rf"^(?:async def|def|class) {name}\b|^{name} = "
            assert re.search(defined, module.read_text(encoding="utf-8"), flags=re.M), (
                f"docs/guarantees.md cites {path}::{name}, which does not exist"
            )
