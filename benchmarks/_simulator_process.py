"""Run the simulator in its own process (so its CPU is not the client's) for the benchmarks."""

from __future__ import annotations

import os
import select
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager


@contextmanager
def simulator_process(args: Sequence[str] = (), *, cpu: int | None = None) -> Iterator[str]:
    """Start ``python -m sora_tasks.testing --port 0 ...``; yield its base URL; stop it after.

    With ``cpu`` (and more than one CPU present) the server is pinned to that CPU and this process
    to the others, so the two do not take turns on one core.
    """
    command = [sys.executable, "-m", "sora_tasks.testing", "--port=0", "--log-level=warning", *args]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 30)
        if not ready:
            raise RuntimeError("the simulator did not start within 30 s")
        url = proc.stdout.readline().split()[-1]
        cpus = sorted(os.sched_getaffinity(0))
        if cpu is not None and len(cpus) > 1:
            os.sched_setaffinity(proc.pid, {cpus[cpu % len(cpus)]})
            os.sched_setaffinity(0, set(cpus) - {cpus[cpu % len(cpus)]})
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)
