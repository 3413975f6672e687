"""kill -9 while Segment events are being turned into SendGrid contacts and emails.

After two crashes and restarts: every acknowledged identify is a contact, every acknowledged
order email was sent at most once, and each one not sent is held for review (never sent twice).
"""

from __future__ import annotations

import asyncio
import base64
import time
from pathlib import Path

import anyio
import httpx
import pytest

from sgbridge.emulators.sendgrid import create_sendgrid_emulator
from sgbridge.emulators.serving import serve_in_thread
from sgbridge.journal import Journal
from tests.process.conftest import Server, running

pytestmark = [pytest.mark.slow, pytest.mark.anyio]
AUTH = {"Authorization": "Basic " + base64.b64encode(b"crash-key:").decode()}


def _config(path: Path, sendgrid_url: str) -> Path:
    path.write_text(f"""
[segment_inbound]
write_keys = ["crash-key"]

[actions.sendgrid]
endpoint = "{sendgrid_url}"
job_poll_seconds = 0.05
window_events = 200

[[actions.sendgrid.subscriptions]]
action = "updateUserProfile"
trigger = 'type = "identify"'

[[actions.sendgrid.subscriptions]]
action = "sendEmail"
trigger = 'event = "Order Completed"'
mapping = {{ from = {{ email = "shop@example.com" }}, template_id = "d-7a9b8c6d5e4f4a3b2c1d0e9f8a7b6c5d" }}
""")
    return path


async def _post_all(url: str, batches: list[list[dict[str, object]]], acked: set[str]) -> None:
    """Send every batch until it is acknowledged (the bridge goes away and comes back meanwhile)."""
    async with httpx.AsyncClient(timeout=5) as client:
        for batch in batches:
            deadline = time.monotonic() + 60
            while True:
                try:
                    response = await client.post(f"{url}/v1/batch", json={"batch": batch}, headers=AUTH)
                    if response.status_code == 200:
                        acked.update(str(e["messageId"]) for e in batch)
                        break
                except httpx.HTTPError:
                    pass
                assert time.monotonic() < deadline, "the bridge did not come back"
                await asyncio.sleep(0.1)


async def test_kill_9_loses_no_contact_and_sends_no_email_twice(tmp_path: Path) -> None:
    emulator = create_sendgrid_emulator(None, job_delay_seconds=0.2)
    state = emulator.state.emulator.state
    batches = []
    for b in range(60):
        batch: list[dict[str, object]] = []
        for i in range(20):
            n = b * 20 + i
            batch.append({"type": "identify", "userId": f"u{n}", "messageId": f"id-{n}",
                          "traits": {"email": f"c{n}@example.com"}})
            if n % 4 == 0:
                batch.append({"type": "track", "userId": f"u{n}", "event": "Order Completed", "messageId": f"o-{n}",
                              "properties": {"email": f"c{n}@example.com"}})
        batches.append(batch)
    database = tmp_path / "journal.db"
    with serve_in_thread(emulator) as sendgrid_url:
        server = Server({"SGBRIDGE_CONFIG": str(_config(tmp_path / "c.toml", sendgrid_url)),
                         "SENDGRID_API_KEY": "SG.crash", "SGBRIDGE_DATABASE_URL": f"sqlite:///{database}",
                         "SEGMENT_WRITE_KEY": ""}, tmp_path / "serve.log")
        acked: set[str] = set()
        with running(server):
            sending = asyncio.create_task(_post_all(server.url, batches, acked))
            for _ in range(2):
                await asyncio.sleep(1.0)
                server.kill9()
                await asyncio.sleep(0.3)
                await asyncio.to_thread(server.start)
            await sending
            journal = Journal(f"sqlite:///{database}")
            try:
                with anyio.fail_after(90):
                    while True:
                        stats = journal.stats()
                        if stats["cursors"].get("sendgrid", 0) >= stats["max_seq"]:
                            break
                        await anyio.sleep(0.2)
                held = {d["sg_event_id"] for d in journal.dead_letters("sendgrid", limit=1000) if d["status"] == "held"}
                rejected = [d for d in journal.dead_letters("sendgrid", limit=1000) if d["status"] == "rejected"]
            finally:
                journal.close()
    state.tick(force=True)
    emails = {c.identifiers.get("email") for c in state.contacts.values()}
    sent = [m["custom_args"].get("segment_message_id") or
            m["request"]["personalizations"][0]["custom_args"]["segment_message_id"] for m in state.messages]
    acked_ids = {a for a in acked if a.startswith("id-")}
    acked_orders = {a for a in acked if a.startswith("o-")}
    assert len(acked_ids) == 1200 and len(acked_orders) == 300
    assert rejected == []
    assert {f"c{a[3:]}@example.com" for a in acked_ids} <= emails  # every acknowledged identify is a contact
    assert len(sent) == len(set(sent)), "an email was sent twice"
    assert acked_orders == set(sent) | held  # each order: sent once, or held for review
    print(f"contacts {len(emails)}, emails sent {len(sent)}, held {len(held)}")
