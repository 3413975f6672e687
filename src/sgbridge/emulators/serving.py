"""Run an emulator app on a real socket.

Most tests use ``httpx.ASGITransport`` and need no socket, but some behaviour only exists on
the wire (a dropped connection, client timeouts, a separate process talking to the emulator),
and the CLI serves the emulators for the demo. Both paths go through here so they run the
same uvicorn configuration.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

import uvicorn
from starlette.types import ASGIApp

from sgbridge.emulators.faults import EmulatedConnectionDrop


class _DropFaultLogFilter(logging.Filter):
    """Turn uvicorn's traceback for an injected drop into one line: it is not a bug."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], EmulatedConnectionDrop):
            record.msg = "emulated connection drop (fault injection)"
            record.args = ()
            record.exc_info = None
            record.levelno = logging.INFO
            record.levelname = "INFO"
        return True


def install_drop_log_filter() -> None:
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _DropFaultLogFilter) for f in logger.filters):
        logger.addFilter(_DropFaultLogFilter())


def _config(app: ASGIApp, host: str, port: int, log_level: str,
            lifespan: Literal["on", "off"] = "off") -> uvicorn.Config:
    # lifespan off by default: the emulators have no startup work, and "auto" would probe the app.
    return uvicorn.Config(app, host=host, port=port, log_level=log_level, lifespan=lifespan, access_log=False)


async def serve_app(app: ASGIApp, *, host: str = "127.0.0.1", port: int = 0, log_level: str = "info") -> None:
    """Serve ``app`` until the task is cancelled or the process is signalled."""
    install_drop_log_filter()
    server = uvicorn.Server(_config(app, host, port, log_level))
    serving = asyncio.ensure_future(server.serve())
    try:
        await asyncio.shield(serving)
    except asyncio.CancelledError:
        # Cancelling uvicorn mid-serve leaks its sockets; ask it to stop and wait instead.
        server.should_exit = True
        await serving
        raise


@contextmanager
def serve_in_thread(app: ASGIApp, *, host: str = "127.0.0.1", log_level: str = "warning",
                    lifespan: Literal["on", "off"] = "off", port: int = 0) -> Iterator[str]:
    """Serve ``app`` on a free port (or ``port``) in a background thread; yields the base URL.

    The socket is bound here (port 0) and handed to uvicorn, so there is no window in which
    another process could take the port between choosing and binding it. ``lifespan="on"``
    runs the app's start-up (sgbridge's delivery workers).
    """
    install_drop_log_filter()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    port = sock.getsockname()[1]
    server = uvicorn.Server(_config(app, host, port, log_level, lifespan))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
