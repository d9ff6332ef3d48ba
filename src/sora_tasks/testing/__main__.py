"""``python -m sora_tasks.testing``: serve the provider simulator on a local port.

Example: ``python -m sora_tasks.testing --port 8000 --render-seconds 20 --fail-prompt forbidden``,
then point ``OpenAIVideosProvider(base_url="http://127.0.0.1:8000/v1")`` at it.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from collections.abc import Sequence
from typing import get_args

from ._simulator import create_simulator_app
from ._simulator_config import CurveName
from ._simulator_faults import ROUTES, FaultKind, Faults

__all__ = ["main"]

_API_KEY_ENV = "SORA_TASKS_SIMULATOR_API_KEY"


def main(argv: Sequence[str] | None = None) -> None:
    """Parse the command line and serve until interrupted."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    try:
        from ._server import base_url, bind, make_server

        server = make_server(
            create_simulator_app(
                render_seconds=args.render_seconds,
                queue_seconds=args.queue_seconds,
                progress_curve=args.progress_curve,
                fail_prompts=args.fail_prompt,
                faults=_faults(args.fault, retry_after=args.retry_after, delay=args.delay),
                api_key=args.api_key or os.environ.get(_API_KEY_ENV) or None,
                content_size=args.content_size,
                poll_after_ms=args.poll_after_ms,
                relay_path=args.relay_path,
            ),
            log_level=args.log_level,
            access_log=True,
        )
        sock = bind(args.host, args.port)
    except (ModuleNotFoundError, ValueError, OSError) as exc:
        sys.exit(f"error: {exc}")
    url = base_url(sock)
    sys.stdout.write(
        f"sora_tasks simulator listening on {url}\n"
        f"  OpenAI Videos shape: base_url={url}/v1\n"
        f"  multipart relay:     {url}{args.relay_path}\n"
        f"  Replicate shape:     base_url={url}/replicate/v1\n"
        f"  Veo (Gemini API):    base_url={url}/veo/v1beta\n"
        f"  Veo (Vertex AI):     base_url={url}/vertex/v1, storage_url={url}\n"
        f"  fal queue:           base_url={url}/fal\n"
        f"  Runway shape:        base_url={url}/runway/v1\n"
    )
    sys.stdout.flush()
    # uvicorn shuts down cleanly on Ctrl-C, then re-raises it: that is a normal stop here
    with contextlib.suppress(KeyboardInterrupt):
        server.run(sockets=[sock])


def _faults(specs: Sequence[str], *, retry_after: float, delay: float) -> dict[str, Faults]:
    counts: dict[str, dict[str, int]] = {}
    kinds = get_args(FaultKind)
    for spec in specs:
        route, _, rest = spec.partition(":")
        kind, _, count = rest.partition("=")
        if (route != "*" and route not in ROUTES) or kind not in kinds or not count.isdigit():
            raise ValueError(
                f"--fault {spec!r}: expected ROUTE:KIND=COUNT with ROUTE '*' or one of "
                f"{', '.join(sorted(ROUTES))} and KIND one of {', '.join(kinds)}"
            )
        counts.setdefault(route, {})[kind] = int(count)
    return {
        route: Faults(retry_after=retry_after, delay=delay, **kinds_of_route)
        for route, kinds_of_route in counts.items()
    }


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m sora_tasks.testing",
        description=(
            "Serve the sora_tasks provider simulator (OpenAI Videos, relay, Replicate, fal, Runway,"
            " Veo)."
        ),
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on")
    parser.add_argument("--port", type=int, default=8000, help="port (0 picks a free one)")
    parser.add_argument("--render-seconds", type=float, default=5.0, help="time in_progress")
    parser.add_argument("--queue-seconds", type=float, default=1.0, help="time queued")
    parser.add_argument("--progress-curve", choices=get_args(CurveName), default="linear")
    parser.add_argument(
        "--fail-prompt",
        action="append",
        default=[],
        metavar="TEXT",
        help="prompts containing TEXT fail moderation (repeatable)",
    )
    parser.add_argument(
        "--api-key", help=f"require this bearer key (or set {_API_KEY_ENV}); none by default"
    )
    parser.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="ROUTE:KIND=COUNT",
        help="inject a fault, e.g. create:rate_limits=2 or content:truncated_bodies=1 (repeatable)",
    )
    parser.add_argument("--retry-after", type=float, default=1.0, help="Retry-After of rate limits")
    parser.add_argument("--delay", type=float, default=1.0, help="seconds a slow answer waits")
    parser.add_argument(
        "--content-size", type=int, help="serve a synthetic body of this many bytes, not the MP4"
    )
    parser.add_argument("--poll-after-ms", type=int, default=1000, help="openai-poll-after-ms hint")
    parser.add_argument(
        "--relay-path", default="/relay/v1/videos", help="where the relay shape lives"
    )
    parser.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error"]
    )
    return parser


if __name__ == "__main__":
    main()
