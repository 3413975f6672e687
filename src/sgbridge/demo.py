"""``sgbridge demo``: the bridge and the shipped emulators on free local ports, real HTTP.

Starts the Segment emulator, the bridge (embedded SQLite journal) and the SendGrid webhook
sender, sends realistic signed traffic (with SendGrid's duplicates and changed-id retries),
then prints what reached the Segment emulator. No accounts, no network beyond loopback.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Literal

import uvicorn
from rich.console import Console
from rich.table import Table
from starlette.types import ASGIApp

from sgbridge.emulators.segment import create_segment_emulator
from sgbridge.emulators.sendgrid_webhook import WebhookSender
from sgbridge.emulators.webhook_signing import generate_keypair
from sgbridge.settings import load_settings

DEMO_WRITE_KEY = "demo-write-key"


def _free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@contextlib.asynccontextmanager
async def _serve(app: ASGIApp, lifespan: Literal["on", "off"]) -> AsyncIterator[str]:
    sock = _free_socket()
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan=lifespan, access_log=False))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        await task
        sock.close()


async def run_demo(duration: float | None, rate: float, batch_size: int, database: Path | None,
                   console: Console) -> dict[str, Any]:
    from sgbridge.app import build_app

    workdir = Path(tempfile.mkdtemp(prefix="sgbridge-demo-"))
    database = database or workdir / "journal.db"
    keys = generate_keypair()
    segment_app = create_segment_emulator([DEMO_WRITE_KEY])
    segment = segment_app.state.emulator.state
    async with _serve(segment_app, "off") as segment_url:
        os.environ.update({
            "SENDGRID_WEBHOOK_PUBLIC_KEY": keys.public_key_base64,
            "SEGMENT_WRITE_KEY": DEMO_WRITE_KEY,
            "SEGMENT_ENDPOINT": segment_url,
            "SGBRIDGE_DATABASE_URL": f"sqlite:///{database}",
        })
        app = build_app(load_settings())
        async with _serve(app, "on") as bridge_url:
            console.print(f"[bold]Segment emulator[/] {segment_url}   [bold]bridge[/] {bridge_url}   "
                          f"[bold]journal[/] {database}")
            console.print(f"sending signed SendGrid webhooks at {rate:.0f} events/s"
                          + (f" for {duration:.0f}s" if duration else " until Ctrl-C") + " …")
            sender = WebhookSender(f"{bridge_url}/webhooks/sendgrid", keys.private_key, rate=rate,
                                   batch_size=batch_size, concurrency=4, duplicate_fraction=0.02,
                                   changed_id_fraction=0.005, seed=int(time.time()))
            try:
                summary = await sender.run(duration=duration or 10**9)
            except asyncio.CancelledError:
                summary = sender.summary(0.0)
            stats = app.state.bridge.journal.stats(count_events=True)
            forwarded = stats["events"] - sum(stats["outcomes"].values())
            deadline = time.monotonic() + 30
            while segment.accepted < forwarded and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            await asyncio.sleep(0.3)
            stats = app.state.bridge.journal.stats(count_events=True)
            _report(console, summary, stats, segment)
            return {"sender": summary, "journal": stats, "segment": segment.stats()}


def _report(console: Console, sender: dict[str, Any], journal: dict[str, Any], segment: Any) -> None:
    messages = segment.messages()
    names = Counter(m["event"] for m in messages)
    table = Table("Segment event", "count", title="What reached the Segment emulator")
    for name, count in names.most_common():
        table.add_row(name, str(count))
    console.print(table)
    console.print(
        f"SendGrid sent {sender['events_sent']} events ({sender['duplicates_sent']} duplicates, "
        f"{sender['changed_id_resends']} re-sent under a new id) for {sender['generated']} distinct events; "
        f"{sender['logical_acked']} acknowledged.\n"
        f"The bridge stored {journal['events']} (duplicates removed) and dropped "
        f"{sum(v for k, v in journal['outcomes'].items() if k.endswith(':dropped'))} by configuration "
        f"(deferred is off by default).\n"
        f"Segment accepted {segment.accepted} track calls, {segment.duplicates} duplicate messageIds, "
        f"{segment.rejected} rejected.")
    if messages:
        console.print("One of them, as Segment received it:")
        console.print_json(data=messages[-1])
