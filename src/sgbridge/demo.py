"""``sgbridge demo``: the bridge and the shipped emulators on free local ports, real HTTP.

Starts the Segment emulator, the SendGrid API emulator, the Dotdigital API emulator, the bridge
(embedded SQLite journal) and the SendGrid webhook sender. Both directions run at once:

- signed SendGrid webhook traffic, with SendGrid's duplicates and changed-id retries, goes to Segment;
- Segment events (identify, "Joined Newsletter", "Order Completed") posted to the bridge's
  Tracking API become SendGrid contacts, list members and emails through Segment's actions;
- the email events land in the warehouse (a DuckDB file), and the object sync copies the seeded
  SendGrid account's lists, segments, contacts, single sends and suppressions beside them;
- a cart-recovery workflow (examples/workflows/high-intent-recovery.toml, its wait cut to a few
  seconds): "Cart Abandoned" for some people, "Order Completed" for half of them during the wait;
  the others get one recovery email through the SendGrid emulator;
- "Marketing" (Segment's Dotdigital actions): 'Add or Update Contact' events become Dotdigital
  contacts in the list Newsletter with their FIRSTNAME data field, 'Send SMS' events texts.

Then it prints what reached each emulator and the warehouse. No accounts, no network beyond loopback.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import socket
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, Literal

import uvicorn
from rich.console import Console
from rich.table import Table
from starlette.applications import Starlette
from starlette.types import ASGIApp

from sgbridge.emulators.dotdigital import create_dotdigital_emulator
from sgbridge.emulators.segment import create_segment_emulator
from sgbridge.emulators.sendgrid import create_sendgrid_emulator
from sgbridge.emulators.sendgrid.state import DEFAULT_TEMPLATES, MarketingList
from sgbridge.emulators.sendgrid_webhook import WebhookSender
from sgbridge.emulators.webhook_signing import generate_keypair
from sgbridge.settings import load_settings

DEMO_WRITE_KEY = "demo-write-key"
DEMO_INBOUND_KEY = "demo-inbound-key"
DEMO_SENDGRID_KEY = "SG.demo"
DEMO_ACCOUNT_CONTACTS = 5_000  # the emulated SendGrid account the object sync reads
WELCOME_TEMPLATE = "d-5f1e0c3a2b8d4e6f9a7b1c2d3e4f5a6b"  # one of the SendGrid emulator's templates
RECOVERY_TEMPLATE = "d-0c6a2b7f5e1d4c3b9a8f7e6d5c4b3a21"  # the recovery example's; added to the emulator's
RECOVERY_WORKFLOW = "cart-recovery"
RECOVERY_WAIT_SECONDS = 3  # the example waits 2 h
CONVERSION_AFTER_SECONDS = 1.0  # when the converters' orders are posted: during the wait
DEMO_PEOPLE = 300
CART_PEOPLE = tuple(range(1, DEMO_PEOPLE, 15))  # 20 people abandon a cart…
CONVERTING_PEOPLE = CART_PEOPLE[::2]  # …and 10 of them order during the wait
DEMO_DOTDIGITAL_USER = "demo-apiuser@apiconnector.com"
DEMO_DOTDIGITAL_PASSWORD = "demo-password"  # noqa: S105 - the Dotdigital emulator's login
MARKETING_PEOPLE = (2, 5, 7, 11, 13)  # 'Add or Update Contact' → a Dotdigital contact in the list Newsletter
SMS_PEOPLE = {5: "+44 7700 900123", 11: "+44 7700 900456"}  # 'Send SMS' → a text to properties.phone
SMS_MESSAGE = "Demo Shop: your order is on its way."


def _actions_config(path: Path, sendgrid_url: str, list_id: str, dotdigital_url: str,
                    dotdigital_list_id: int) -> Path:
    path.write_text(f"""
[segment_inbound]
write_keys = ["{DEMO_INBOUND_KEY}"]

[actions.sendgrid]
endpoint = "{sendgrid_url}"
settings = {{ sendGridApiKey = "{DEMO_SENDGRID_KEY}" }}
job_poll_seconds = 0.1

[[actions.sendgrid.subscriptions]]
action = "updateUserProfile"
trigger = 'type = "identify"'

[[actions.sendgrid.subscriptions]]
action = "addToList"
trigger = 'event = "Joined Newsletter"'
mapping = {{ list_id = "{list_id}" }}

[[actions.sendgrid.subscriptions]]
action = "sendEmail"
trigger = 'event = "Order Completed"'
mapping = {{ from = {{ email = "shop@example.com", name = "Demo Shop" }}, \
template_id = "Welcome [{WELCOME_TEMPLATE}]", dynamic_template_data = {{ "@path" = "$.properties" }} }}

# "Marketing": Segment's Dotdigital actions on their default triggers ('Add or Update Contact', 'Send SMS')
[actions.marketing]
destination = "dotdigital"
endpoint = "{dotdigital_url}"
settings = {{ username = "{DEMO_DOTDIGITAL_USER}", password = "{DEMO_DOTDIGITAL_PASSWORD}" }}

[[actions.marketing.subscriptions]]
action = "addContactToList"
mapping = {{ listId = {dotdigital_list_id}, dataFields = {{ FIRSTNAME = {{ "@path" = "$.properties.first_name" }} }} }}

[[actions.marketing.subscriptions]]
action = "sendSms"
mapping = {{ message = "{SMS_MESSAGE}" }}

# examples/workflows/high-intent-recovery.toml, with a wait of seconds instead of 2 hours
[[workflows]]
name = "{RECOVERY_WORKFLOW}"
trigger = 'type = "track" and event = "Cart Abandoned"'
exit_on = ['event = "Order Completed"']

[[workflows.steps]]
wait = "{RECOVERY_WAIT_SECONDS}s"

[[workflows.steps]]
name = "converted"
if = {{ count = 'event = "Order Completed"', since = "trigger", at_least = 1 }}
then = [{{ exit = "converted during the wait" }}]

[[workflows.steps]]
name = "recovery_email"
action = "sendEmail"
destination = "sendgrid"
[workflows.steps.mapping]
from = {{ email = "shop@example.com", name = "Demo Shop" }}
to = {{ email = {{ "@path" = "$.traits.email" }}, name = {{ "@path" = "$.traits.first_name" }} }}
template_id = "{RECOVERY_TEMPLATE}"
dynamic_template_data = {{ first_name = {{ "@path" = "$.traits.first_name" }}, \
products = {{ "@path" = "$.properties.products" }}, cart_url = {{ "@path" = "$.properties.cart_url" }} }}
categories = ["cart-recovery"]
""")
    return path


def _segment_events(count: int) -> list[dict[str, Any]]:
    """Identify calls for ``count`` people; a third join the newsletter, a tenth order something."""
    events: list[dict[str, Any]] = []
    for n in range(count):
        email = f"person{n}@example.com"
        events.append({"type": "identify", "userId": f"user-{n}", "messageId": f"demo-identify-{n}",
                       "traits": {"email": email, "first_name": f"Person {n}", "address": {"city": "Lisbon"}}})
        if n % 3 == 0:
            events.append({"type": "track", "userId": f"user-{n}", "event": "Joined Newsletter",
                           "messageId": f"demo-join-{n}", "properties": {"email": email}})
        if n % 10 == 0:
            events.append({"type": "track", "userId": f"user-{n}", "event": "Order Completed",
                           "messageId": f"demo-order-{n}", "properties": {"email": email, "total": 10 + n}})
    return events


def _cart_events() -> list[dict[str, Any]]:
    """'Cart Abandoned' for CART_PEOPLE; the recipient's email comes from their identify call (the profile)."""
    return [{"type": "track", "userId": f"user-{n}", "event": "Cart Abandoned", "messageId": f"demo-cart-{n}",
             "properties": {"cart_url": f"https://shop.example.com/cart/{n}",
                            "products": [{"sku": f"SKU-{n}", "name": "Espresso cups", "price": 24, "quantity": 2}]}}
            for n in CART_PEOPLE]


def _marketing_events() -> list[dict[str, Any]]:
    """'Add or Update Contact' for MARKETING_PEOPLE, then 'Send SMS' for SMS_PEOPLE (Dotdigital's default triggers)."""
    contacts = [{"type": "track", "userId": f"user-{n}", "event": "Add or Update Contact",
                 "messageId": f"demo-dd-contact-{n}",
                 "properties": {"email": f"person{n}@example.com", "first_name": f"Person {n}"}}
                for n in MARKETING_PEOPLE]
    texts = [{"type": "track", "userId": f"user-{n}", "event": "Send SMS", "messageId": f"demo-dd-sms-{n}",
              "properties": {"phone": phone}} for n, phone in SMS_PEOPLE.items()]
    return contacts + texts


async def _seed_dotdigital(dotdigital_url: str) -> int:
    """The list Newsletter and the data field FIRSTNAME, through the emulator's control API; the list's id."""
    import httpx

    async with httpx.AsyncClient(timeout=10) as client:
        lists = await client.post(f"{dotdigital_url}/_emulator/lists", json=[{"name": "Newsletter"}])
        lists.raise_for_status()
        fields = await client.post(f"{dotdigital_url}/_emulator/data-fields",
                                   json=[{"name": "FIRSTNAME", "type": "String"}])
        fields.raise_for_status()
    return int(lists.json()["lists"][0]["id"])


def _conversion_events() -> list[dict[str, Any]]:
    return [{"type": "track", "userId": f"user-{n}", "event": "Order Completed", "messageId": f"demo-convert-{n}",
             "properties": {"email": f"person{n}@example.com", "total": 48}} for n in CONVERTING_PEOPLE]


async def _post_conversions(bridge_url: str) -> int:
    await asyncio.sleep(CONVERSION_AFTER_SECONDS)
    return await _post_segment_events(bridge_url, _conversion_events())


async def _post_segment_events(bridge_url: str, events: list[dict[str, Any]]) -> int:
    """POST the events to the Tracking API; how many the bridge stored."""
    import httpx

    stored = 0
    async with httpx.AsyncClient(auth=(DEMO_INBOUND_KEY, ""), timeout=30) as client:
        for start in range(0, len(events), 100):
            response = await client.post(f"{bridge_url}/v1/batch", json={"batch": events[start:start + 100]})
            response.raise_for_status()
            stored += int(response.json()["stored"])
    return stored


def _free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


class _Server(uvicorn.Server):
    """A uvicorn server that leaves Ctrl-C to the demo.

    uvicorn's own handler would stop only the last server started (the bridge) and let the demo
    run on against a closed journal; without it, Ctrl-C cancels the demo's task, which reports,
    stops the servers in order and removes its temp folder."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@contextlib.asynccontextmanager
async def _serve(app: ASGIApp, lifespan: Literal["on", "off"]) -> AsyncIterator[str]:
    sock = _free_socket()
    server = _Server(uvicorn.Config(app, log_level="warning", lifespan=lifespan, access_log=False))
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
    """Run the demo. Its temp folder (``sgbridge-demo-*``: the config, and the journal and the
    warehouse unless ``database`` puts them elsewhere, ~30 MB) and the SendGrid emulator's export
    files are removed however it ends, Ctrl-C included; files beside ``database`` stay."""
    segment_app = create_segment_emulator([DEMO_WRITE_KEY])
    sendgrid_app = create_sendgrid_emulator([DEMO_SENDGRID_KEY], job_delay_seconds=0.5,
                                            seed_contacts=DEMO_ACCOUNT_CONTACTS,
                                            templates={**DEFAULT_TEMPLATES, RECOVERY_TEMPLATE: "Cart recovery"})
    dotdigital_app = create_dotdigital_emulator(users={DEMO_DOTDIGITAL_USER: DEMO_DOTDIGITAL_PASSWORD},
                                                job_delay_seconds=0.0)
    workdir = Path(tempfile.mkdtemp(prefix="sgbridge-demo-"))
    try:
        return await _run(workdir, database or workdir / "journal.db", database is not None,
                          duration, rate, batch_size, console, segment_app, sendgrid_app, dotdigital_app)
    finally:
        sendgrid_app.state.emulator.state.close()
        shutil.rmtree(workdir, ignore_errors=True)


async def _run(workdir: Path, database: Path, kept: bool, duration: float | None, rate: float, batch_size: int,
               console: Console, segment_app: Starlette, sendgrid_app: Starlette,
               dotdigital_app: Starlette) -> dict[str, Any]:
    from sgbridge.app import build_app

    keys = generate_keypair()
    segment = segment_app.state.emulator.state
    sendgrid = sendgrid_app.state.emulator.state
    async with _serve(segment_app, "off") as segment_url, _serve(sendgrid_app, "off") as sendgrid_url, \
            _serve(dotdigital_app, "off") as dotdigital_url:
        newsletter = MarketingList(sendgrid.new_id(), "Newsletter", time.time())
        sendgrid.lists[newsletter.id] = newsletter
        dotdigital_list = await _seed_dotdigital(dotdigital_url)
        os.environ.update({
            "SENDGRID_WEBHOOK_PUBLIC_KEY": keys.public_key_base64,
            "SEGMENT_WRITE_KEY": DEMO_WRITE_KEY,
            "SEGMENT_ENDPOINT": segment_url,
            "SGBRIDGE_DATABASE_URL": f"sqlite:///{database}",
            "SENDGRID_API_KEY": DEMO_SENDGRID_KEY,  # the object sync reads the emulated account
            "SENDGRID_API_ENDPOINT": sendgrid_url,
            "SGBRIDGE_SYNC__EXPORT_POLL_SECONDS": "0.2",
            "SGBRIDGE_WAREHOUSE__FLUSH_SECONDS": "1",
        })
        config = _actions_config(workdir / "sgbridge.toml", sendgrid_url, newsletter.id, dotdigital_url,
                                 dotdigital_list)
        app = build_app(load_settings(str(config)))
        from sgbridge.console.users import Users

        password = secrets.token_urlsafe(12)  # the demo's console user, for this run only
        Users(app.state.bridge.journal, app.state.bridge.settings.console).add("demo", "operator", password,
                                                                               replace=True)
        async with _serve(app, "on") as bridge_url:
            console.print(f"[bold]Segment emulator[/] {segment_url}   [bold]SendGrid emulator[/] {sendgrid_url}   "
                          f"[bold]Dotdigital emulator[/] {dotdigital_url}   [bold]bridge[/] {bridge_url}   "
                          f"[bold]journal[/] {database}   [bold]config[/] {config}")
            console.print(f"[bold]console[/] {bridge_url}/ui/  (user demo, password {password})")
            people = DEMO_PEOPLE
            segment_events = _segment_events(people)
            console.print(f"posting {len(segment_events)} Segment events for {people} people to the bridge's "
                          "Tracking API (/v1/batch) …")
            segment_stored = await _post_segment_events(bridge_url, segment_events)
            marketing_events = _marketing_events()
            console.print(f"Marketing (Dotdigital): 'Add or Update Contact' for {len(MARKETING_PEOPLE)} of them, "
                          f"'Send SMS' for {len(SMS_PEOPLE)} …")
            segment_stored += await _post_segment_events(bridge_url, marketing_events)
            console.print(f"workflow {RECOVERY_WORKFLOW}: 'Cart Abandoned' for {len(CART_PEOPLE)} of them, a "
                          f"recovery email after a wait of {RECOVERY_WAIT_SECONDS} s (2 h in "
                          f"examples/workflows/); 'Order Completed' for {len(CONVERTING_PEOPLE)} of them "
                          f"{CONVERSION_AFTER_SECONDS:.0f} s into the wait …")
            segment_stored += await _post_segment_events(bridge_url, _cart_events())
            carts_posted = time.monotonic()
            conversions = asyncio.create_task(_post_conversions(bridge_url))
            segment_posted = len(segment_events) + len(marketing_events) + len(CART_PEOPLE) + len(CONVERTING_PEOPLE)
            console.print(f"sending signed SendGrid webhooks at {rate:.0f} events/s"
                          + (f" for {duration:.0f}s" if duration else " until Ctrl-C") + " …")
            sender = WebhookSender(f"{bridge_url}/webhooks/sendgrid", keys.private_key, rate=rate,
                                   batch_size=batch_size, concurrency=4, duplicate_fraction=0.02,
                                   changed_id_fraction=0.005, seed=int(time.time()))
            try:
                summary = await sender.run(duration=duration or 10**9)
            except asyncio.CancelledError:
                summary = sender.summary(0.0)
            segment_stored += await conversions
            stats = app.state.bridge.journal.stats(count_events=True)
            # SendGrid events go to Segment (less those dropped by configuration); Segment's go to SendGrid.
            not_to_segment = sum(v for k, v in stats["outcomes"].items() if k.startswith("segment:"))
            forwarded = stats["events"] - segment_posted - not_to_segment
            deadline = time.monotonic() + 30
            while segment.accepted < forwarded and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            await asyncio.sleep(0.3)
            while stats["cursors"].get("sendgrid", 0) < stats["max_seq"] and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
                stats = app.state.bridge.journal.stats(count_events=True)
            sendgrid.tick(force=True)
            _report(console, summary, stats, segment, segment_stored)
            sendgrid_summary = _report_sendgrid(console, sendgrid, newsletter.id)
            workflows = await _report_workflows(console, app.state.bridge, sendgrid,
                                                carts_posted + RECOVERY_WAIT_SECONDS + 20)
            marketing = await _report_marketing(console, dotdigital_url, dotdigital_list, time.monotonic() + 20)
            warehouse = await _report_warehouse(console, app.state.bridge, deadline + 30, kept)
            stored = {"sendgrid": stats["events"] - segment_stored, "segment": segment_stored}
            return {"sender": summary, "journal": stats, "stored": stored, "segment": segment.stats(),
                    "sendgrid": sendgrid_summary, "workflows": workflows, "marketing": marketing,
                    "warehouse": warehouse}


async def _report_warehouse(console: Console, bridge: Any, deadline: float, kept: bool) -> dict[str, int]:
    """Wait for the last events to load and the first object sync to finish; count the tables."""
    import duckdb

    from sgbridge.journal.sync_runs import SyncRuns
    from sgbridge.warehouse.tables import TABLES

    runs = SyncRuns(bridge.journal)
    while time.monotonic() < deadline:
        stats = await bridge.journal.stats_async()
        history = await asyncio.to_thread(runs.history)
        if stats["cursors"].get("warehouse", 0) >= stats["max_seq"] and history and history[0].finished_at:
            break
        await asyncio.sleep(0.2)
    await asyncio.sleep(2.5)  # the file is released once loads stop (warehouse/keeper.py)
    path = bridge.warehouse.url.removeprefix("duckdb:")
    objects = ("lists", "segments", "recipients", "campaigns", "unsubscribe_groups", "bounces", "spam_reports")
    counts: dict[str, int] = {}
    with duckdb.connect(path) as conn:
        present = {r[0] for r in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'sendgrid'").fetchall()}
        for name in (*TABLES, *objects):
            if name in present:
                row = conn.execute(f'SELECT count(*) FROM sendgrid."{name}"').fetchone()
                counts[name] = int(row[0]) if row else 0
    shown = Table("table (dataset sendgrid)", "rows", title="What reached the warehouse")
    for name, count in counts.items():
        shown.add_row(name, f"{count:,}")
    console.print(shown)
    console.print(f"The warehouse is the DuckDB file {path}: events as the webhook sent them, objects from the "
                  "object sync (sgbridge sync). Query it with any DuckDB client, e.g.\n"
                  f'  duckdb -readonly {path} "SELECT event, count(*) FROM sendgrid.activity GROUP BY 1"'
                  + ("" if kept else "\nIt is removed with the demo's temp folder when the demo ends; run "
                     "sgbridge demo --database FILE to keep the journal and the warehouse (beside FILE)."))
    return counts


def _report_sendgrid(console: Console, sendgrid: Any, list_id: str) -> dict[str, int]:
    puts = [r for r in sendgrid.requests if r["method"] == "PUT" and r["path"] == "/v3/marketing/contacts"]
    summary = {
        "contacts": sum(1 for c in sendgrid.contacts.values() if (c.email or "").endswith("@example.com")),
        "newsletter_members": len(sendgrid.list_members(list_id)),
        "emails_sent": sum(1 for m in sendgrid.messages if m["template_id"] != RECOVERY_TEMPLATE),
        "contact_puts": len(puts),
    }
    table = Table("SendGrid", "count", title="What reached the SendGrid emulator (Segment → SendGrid)")
    table.add_row("contacts (Upsert Contact on identify)", str(summary["contacts"]))
    table.add_row("(the account was seeded with other contacts, lists, suppressions…)",
                  str(len(sendgrid.contacts) - summary["contacts"]))
    table.add_row("members of list Newsletter (Add to List on 'Joined Newsletter')", str(summary["newsletter_members"]))
    table.add_row("emails sent (Send Email on 'Order Completed')", str(summary["emails_sent"]))
    table.add_row("contacts PUT requests (upserts merged and batched)", str(summary["contact_puts"]))
    console.print(table)
    return summary


async def _report_marketing(console: Console, dotdigital_url: str, list_id: int, deadline: float) -> dict[str, Any]:
    """Wait (until ``deadline``) for the contacts and the SMS in the Dotdigital emulator; count them there."""
    import httpx

    wanted = {f"person{n}@example.com": f"Person {n}" for n in MARKETING_PEOPLE}
    async with httpx.AsyncClient(timeout=10) as client:
        while True:
            contacts = (await client.get(f"{dotdigital_url}/_emulator/contacts")).json()["contacts"]
            sms = (await client.get(f"{dotdigital_url}/_emulator/sms")).json()["sms"]
            added = {c["identifiers"].get("email"): c for c in contacts
                     if wanted.get(c["identifiers"].get("email")) == c["dataFields"].get("FIRSTNAME")
                     and any(m["id"] == list_id for m in c["lists"])}
            if (len(added) >= len(wanted) and len(sms) >= len(SMS_PEOPLE)) or time.monotonic() >= deadline:
                break
            await asyncio.sleep(0.1)
    numbers = {"".join(ch for ch in phone if ch.isdigit()) for phone in SMS_PEOPLE.values()}
    summary = {"contacts": len(contacts), "in_newsletter_with_firstname": len(added), "sms": len(sms),
               "sms_as_sent": sum(1 for m in sms if m["to"] in numbers and m["message"] == SMS_MESSAGE)}
    summary["ok"] = (summary["in_newsletter_with_firstname"] == summary["contacts"] == len(wanted)
                     and summary["sms_as_sent"] == summary["sms"] == len(SMS_PEOPLE))
    table = Table("what reached the Dotdigital emulator", "count", title="Marketing (Dotdigital)")
    table.add_row("contacts (Add or Update Contact)", str(summary["contacts"]))
    table.add_row("… in list Newsletter with FIRSTNAME", str(summary["in_newsletter_with_firstname"]))
    table.add_row("SMS received (Send SMS)", str(summary["sms"]))
    console.print(table)
    if added:
        email, contact = next((e, added[e]) for e in wanted if e in added)  # the first one posted
        lists = ", ".join(f"{m['name']} ({m['id']})" for m in contact["lists"])
        console.print(f"One contact: {email}, list {lists}, FIRSTNAME {contact['dataFields']['FIRSTNAME']!r}")
    for message in sms:
        console.print(f"SMS to {message['to']}: {message['message']!r}")
    if not summary["ok"]:
        console.print(f"[bold red]Unexpected:[/] {len(wanted)} contacts and {len(SMS_PEOPLE)} SMS were expected "
                      "in the Dotdigital emulator.")
    return summary


async def _report_workflows(console: Console, bridge: Any, sendgrid: Any, deadline: float) -> dict[str, Any]:
    """Wait (until ``deadline``) for every cart-recovery run to end; its runs by state and the
    recovery emails the SendGrid emulator received, each checked against who converted."""
    from sgbridge.journal.workflow_runs import ACTIVE, WorkflowRuns

    runs = WorkflowRuns(bridge.journal)
    while True:
        rows = await asyncio.to_thread(runs.list_runs, RECOVERY_WORKFLOW, None, 10 * len(CART_PEOPLE))
        if (len(rows) >= len(CART_PEOPLE) and not any(r.state in ACTIVE for r in rows)) \
                or time.monotonic() >= deadline:
            break
        await asyncio.sleep(0.2)
    states = Counter(r.state for r in rows)
    received = Counter(r["email"] for m in sendgrid.messages if m["template_id"] == RECOVERY_TEMPLATE
                       for r in m["recipients"])
    converted = {f"person{n}@example.com" for n in CONVERTING_PEOPLE}
    others = {f"person{n}@example.com" for n in CART_PEOPLE} - converted
    summary = {"started": len(rows), "completed": states["completed"], "exited": states["exited"],
               "failed": states["failed"], "active": sum(states[s] for s in ACTIVE),
               "recovery_emails": sum(received.values()),
               "converted_emailed": sum(1 for e in converted if received[e]),
               "others_emailed_once": sum(1 for e in others if received[e] == 1),
               "emailed_others": sum(1 for e in received if e not in converted | others)}
    table = Table("workflow cart-recovery", "count",
                  title=f"Workflows (Cart Abandoned → wait {RECOVERY_WAIT_SECONDS} s → recovery email)")
    table.add_row("runs started ('Cart Abandoned')", str(summary["started"]))
    table.add_row("completed (recovery email sent)", str(summary["completed"]))
    table.add_row("exited on conversion ('Order Completed' during the wait)", str(summary["exited"]))
    table.add_row("failed", str(summary["failed"]))
    if summary["active"]:
        table.add_row("still running at the deadline", str(summary["active"]))
    table.add_row("recovery emails the SendGrid emulator received", str(summary["recovery_emails"]))
    console.print(table)
    ok = (summary["converted_emailed"] == 0 and summary["others_emailed_once"] == len(others)
          and summary["recovery_emails"] == len(others))
    summary["ok"] = ok
    if ok:
        console.print(f"The {len(converted)} who converted got no recovery email, the other {len(others)} exactly "
                      "one each (counted in the SendGrid emulator).")
    else:
        console.print(f"[bold red]Unexpected:[/] of the {len(converted)} who converted, {summary['converted_emailed']} "
                      f"got a recovery email; of the other {len(others)}, {summary['others_emailed_once']} got exactly "
                      f"one; {summary['recovery_emails']} recovery emails in all.")
    return summary


def _report(console: Console, sender: dict[str, Any], journal: dict[str, Any], segment: Any,
            segment_stored: int) -> None:
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
        f"The bridge stored {journal['events'] - segment_stored} of them (duplicates removed), and the "
        f"{segment_stored} Segment events above; it dropped "
        f"{sum(v for k, v in journal['outcomes'].items() if k.startswith('segment:') and k.endswith(':dropped'))} "
        f"SendGrid events by configuration (deferred is off by default).\n"
        f"Segment accepted {segment.accepted} track calls, {segment.duplicates} duplicate messageIds, "
        f"{segment.rejected} rejected.")
    if messages:
        console.print("One of them, as Segment received it:")
        console.print_json(data=messages[-1])
