"""One worker of a fleet on PostgreSQL: ``python -m tests.acceptance.fleet_worker CONFIG_JSON``.

It runs :meth:`TaskManager.run_worker` until SIGTERM against the simulator, saving videos into a
shared directory, with the whole process logging at DEBUG into its own file. The API key comes
from ``FLEET_API_KEY`` (not the command line). An exception that ends the worker is logged as
``WORKER DIED`` before the process exits non-zero, so a test can tell a death from a kill.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

import anyio

from sora_tasks import PollingPolicy, PollSchedule, TaskManager
from sora_tasks.providers import OpenAIVideosProvider
from sora_tasks.providers.openai import DEFAULT_OPENAI_CAPABILITIES
from sora_tasks.storage import SQLStore

PROVIDER = "sim"
FAST = PollSchedule(first_interval=0.2, dense_window=0.5, dense_interval=0.2, max_interval=1.0)


def fleet_policy(config: dict[str, Any]) -> PollingPolicy:
    """The policy every member of the fleet (and the test that creates the tasks) shares."""
    return PollingPolicy(
        schedule=FAST,
        lease_seconds=float(config["lease_seconds"]),
        shutdown_grace=3,
        idle_wait=0.2,
        retry_interval=0.3,
        max_retry_interval=2.0,
        batch_size=20,
        max_in_flight={PROVIDER: int(config["max_in_flight"])},
        submit_uncertain="reconcile",
        reconcile_delay=0.5,
        # a slow create lands up to its delay (the lease and a half) after it was sent
        reconcile_window=8.0,
    )


def fleet_provider(base_url: str, api_key: str) -> OpenAIVideosProvider:
    """The simulator as an OpenAI-shaped provider that may be polled every 0.1 s."""
    return OpenAIVideosProvider(
        api_key=api_key,
        base_url=f"{base_url}/v1",
        capabilities=DEFAULT_OPENAI_CAPABILITIES.model_copy(update={"min_poll_interval": 0.1}),
    )


async def main(config: dict[str, Any]) -> None:
    manager = TaskManager(
        providers={PROVIDER: fleet_provider(config["base_url"], os.environ["FLEET_API_KEY"])},
        store=SQLStore(config["url"]),
        policy=fleet_policy(config),
        download_dir=config["download_dir"],
    )
    async with manager:
        Path(config["ready"]).write_text("ready")
        await manager.run_worker()


def _configure_logging(path: str) -> None:
    logging.basicConfig(
        level=logging.DEBUG,
        filename=path,
        format="%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s",
    )
    # the engine's own records stay at DEBUG; SQL echo and per-connection traces would drown them
    logging.getLogger("sqlalchemy").setLevel(logging.WARNING)
    logging.getLogger("httpcore2").setLevel(logging.INFO)
    logging.getLogger("asyncio").setLevel(logging.INFO)


if __name__ == "__main__":
    settings = json.loads(sys.argv[1])
    _configure_logging(settings["log"])
    try:
        anyio.run(main, settings)
    except BaseException:
        logging.getLogger("fleet_worker").exception("WORKER DIED")
        raise
