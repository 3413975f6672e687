"""One role process: ``sgbridge serve --role ROLE[,ROLE…]``.

A process with ``ingest`` (or a ``--port``) serves HTTP with uvicorn; the others run their
workers without a socket. Background roles lower their CPU priority, so that on a busy machine
the webhooks are acknowledged first and loaded after. Under the supervisor a process also
watches its parent: if the supervisor dies (even by ``kill -9``), the role stops by itself
instead of running on unsupervised.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal

from sgbridge.roles import heartbeat
from sgbridge.settings import Settings

log = logging.getLogger(__name__)

SUPERVISOR_PID_ENV = "SGBRIDGE_SUPERVISOR_PID"


def lower_priority(roles: frozenset[str], settings: Settings) -> None:
    if "ingest" not in roles and settings.processes.background_nice:
        with contextlib.suppress(OSError):
            os.nice(settings.processes.background_nice)


def _freeze_startup_objects() -> None:
    """Keep what start-up made (modules, settings, compiled mappings) out of every later garbage
    collection: a full collection scans every tracked object, and on the hot path of small
    webhook requests that scan was a measurable share of the time."""
    gc.collect()
    gc.freeze()


async def _orphaned() -> None:
    """Return once the supervisor that started this process is gone."""
    supervisor = os.environ.get(SUPERVISOR_PID_ENV)
    if not supervisor:
        await asyncio.Event().wait()  # not supervised: never
    while os.getppid() == int(str(supervisor)):
        await asyncio.sleep(0.5)
    log.error("the supervisor (pid %s) is gone; stopping", supervisor)


def run_roles(settings: Settings, roles: frozenset[str], host: str, port: int | None) -> None:
    """Run ``roles`` in this process until SIGTERM/SIGINT (or the supervisor's death)."""
    lower_priority(roles, settings)
    if "ingest" in roles or "web" in roles or port is not None:
        default = settings.port if "ingest" in roles else settings.console.port
        asyncio.run(_serve_http(settings, roles, host, port if port is not None else default))
    else:
        asyncio.run(_run_headless(settings, roles))


async def _serve_http(settings: Settings, roles: frozenset[str], host: str, port: int) -> None:
    import uvicorn

    from sgbridge.app import build_app

    app = build_app(settings, roles=roles, drain_seconds=settings.processes.stop_timeout_seconds)
    config = uvicorn.Config(app, host=host, port=port, log_level=settings.log_level, access_log=False,
                            timeout_graceful_shutdown=int(settings.processes.stop_timeout_seconds))
    # Bind before the lifespan starts (and with it the heartbeat the supervisor waits for): a port
    # that is taken must fail the start, not look like a role that started and then died.
    sock = config.bind_socket()  # on failure uvicorn logs why and exits with its start-up code
    _freeze_startup_objects()
    server = uvicorn.Server(config)
    watch = asyncio.create_task(_orphaned())
    watch.add_done_callback(lambda _: setattr(server, "should_exit", True))
    try:
        await server.serve(sockets=[sock])
    finally:
        watch.cancel()


async def _run_headless(settings: Settings, roles: frozenset[str]) -> None:
    from sgbridge.app import Bridge

    bridge = Bridge(settings, roles=roles, drain_seconds=settings.processes.stop_timeout_seconds)
    _freeze_startup_objects()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await bridge.start()
    directory = heartbeat.runtime_dir()
    tasks = [asyncio.create_task(_orphaned())]
    if directory is not None:
        tasks.append(asyncio.create_task(heartbeat.keep_beating(directory, sorted(roles),
                                                                settings.processes.heartbeat_seconds)))
    stopper = asyncio.create_task(stop.wait())
    await asyncio.wait([stopper, tasks[0]], return_when=asyncio.FIRST_COMPLETED)
    log.info("stopping %s", ",".join(sorted(roles)))
    for task in (*tasks, stopper):
        task.cancel()
    await bridge.stop()
