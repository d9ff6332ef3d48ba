"""A real browser for the console's tests: Debian's chromium driven by Playwright.

Playwright's own browser download cannot be reached from here, so the tests launch the system's
chromium (``apt-get install chromium``; CI's ``.ci/run`` installs it) and are skipped, saying so,
where it is missing. Screenshots go to one directory per run, named at the end of the run.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, sync_playwright

CHROMIUM = Path("/usr/bin/chromium")

_artifacts: list[Path] = []


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the browser tests save their screenshots; the path is shown after the run."""
    directory = tmp_path_factory.mktemp("console-screenshots")
    _artifacts.append(directory)
    return directory


# per module, not per session: Playwright's sync API keeps an event loop running in this thread
# until it stops, and the anyio tests of later modules need the thread to themselves
@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.skip(
            f"no chromium at {CHROMIUM}: install it with `apt-get install chromium` "
            "(CI's .ci/run does) to run the browser tests"
        )
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM,
            # the test plays a video without a click
            args=["--autoplay-policy=no-user-gesture-required"],
        )
        yield launched
        launched.close()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for directory in _artifacts:
        saved = sorted(path.name for path in directory.iterdir())
        if saved:
            terminalreporter.write_line(f"console screenshots in {directory}: {', '.join(saved)}")
