"""The library logs but leaves configuring logging to the application."""

from __future__ import annotations

import logging
import os
import subprocess
import sys

import sora_tasks


def test_the_library_logger_has_a_null_handler() -> None:
    handlers = logging.getLogger(sora_tasks.__name__).handlers
    assert any(isinstance(handler, logging.NullHandler) for handler in handlers)


def test_an_unconfigured_application_sees_no_library_records_on_stderr() -> None:
    # Python's last-resort handler prints warnings of a logger tree without handlers
    code = "import logging, sora_tasks; logging.getLogger('sora_tasks.engine').warning('boo')"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, env=os.environ
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
