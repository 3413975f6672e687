"""SendGrid's suppression lists → SendGrid events of the journal (the suppression watch).

The Event Webhook tells of the opt-outs a recipient makes (unsubscribe, group_unsubscribe,
spamreport, bounce), not of an address suppressed in SendGrid's UI, by another system through its
API, or imported. The watch reads the global unsubscribes, the unsubscribe groups' members, the spam
reports and the bounces every ``suppression_watch.every``, from the newest entry it saw on each
list, and stores each new entry as the webhook event it stands for (``"sgbridge_origin":
"suppression_list"``, an ``sg_event_id`` made from the entry, so an entry read twice is stored
once), for every destination: Segment's track calls, the warehouse, the workflows.

An entry the profile of its address already knows is skipped: the webhook told of it, or a
workflow step of sgbridge made it (``addSuppression`` remembers what it did), so an opt-out that came
from Segment does not go back to Segment. The first read of a list only notes where the list
stands: what was suppressed before the watch began is not sent anywhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import threading
import time
from typing import Any

import orjson

from sgbridge.inbound.sendgrid import parse_events
from sgbridge.journal import Journal
from sgbridge.journal.workflow_runs import WorkflowRuns
from sgbridge.model import InboundRequest
from sgbridge.settings import Settings
from sgbridge.sync.api import SyncApi
from sgbridge.sync.pages import offset_pages, one_page
from sgbridge.workflows.documents import TraitNames, is_suppressed
from sgbridge.workflows.language import duration

log = logging.getLogger(__name__)
GLOBAL_ENDPOINT = "https://api.sendgrid.com"
PAGE = 500  # the suppression endpoints' largest limit
ORIGIN = "suppression_list"
CLOCK_SLACK = 60  # seconds
# list -> (path, the webhook event it stands for, its time field)
LISTS: dict[str, tuple[str, str, str]] = {
    "unsubscribes": ("/v3/suppression/unsubscribes", "unsubscribe", "created"),
    "group_unsubscribes": ("/v3/asm/suppressions", "group_unsubscribe", "created_at"),
    "spam_reports": ("/v3/suppression/spam_reports", "spamreport", "created"),
    "bounces": ("/v3/suppression/bounces", "bounce", "created"),
}
_KNOWN_FLAG = {"spamreport": "spam_reported", "bounce": "email_bounced"}


def _event(name: str, row: dict[str, Any]) -> dict[str, Any] | None:
    """The webhook event a list entry stands for (None: not an entry sgbridge can read)."""
    _, kind, time_field = LISTS[name]
    email, at = row.get("email"), row.get(time_field)
    if not isinstance(email, str) or not email or not isinstance(at, int | float) or isinstance(at, bool):
        return None
    group = row.get("group_id")
    digest = hashlib.blake2b(f"{name}\0{email.lower()}\0{group}\0{int(at)}".encode(), digest_size=12).hexdigest()
    event: dict[str, Any] = {"email": email, "event": kind, "timestamp": int(at),
                             "sg_event_id": f"sgbridge-list-{digest}", "sgbridge_origin": ORIGIN}
    if name == "group_unsubscribes":
        if not isinstance(group, int) or isinstance(group, bool):
            return None
        event["asm_group_id"] = group
    if name == "bounces":
        event["type"] = "bounce"
        for key in ("reason", "status"):
            if row.get(key) not in (None, ""):
                event[key] = row[key]
    return event


class SuppressionWatch:
    """Reads the lists on a schedule (the workflows role) or once (``poll_once``, blocking)."""

    def __init__(self, settings: Settings, journal: Journal, transport: Any = None) -> None:
        self.settings = settings
        self.watch = settings.suppression_watch
        self.journal = journal
        self.transport = transport  # tests: the API client's transport
        self.runs = WorkflowRuns(journal)
        self.names = TraitNames(settings.workflow_engine.trait_names)
        self._cancel = threading.Event()
        self._stop = asyncio.Event()

    def _mark_key(self, name: str) -> str:
        return f"suppression_watch:{self.watch.source}:{name}"

    def _mark(self, name: str) -> tuple[float, set[str]] | None:
        """Where a list stood: the newest entry's second, and the entries of that second seen."""
        row = self.journal.run_sync(lambda conn: conn.execute(self.journal.q(
            "SELECT value FROM meta WHERE key = ?"), (self._mark_key(name),)).fetchone())
        if row is None:
            return None
        mark = orjson.loads(row[0])
        return float(mark["at"]), set(mark["seen"])

    def _set_mark(self, name: str, at: float, seen: set[str]) -> None:
        value = orjson.dumps({"at": at, "seen": sorted(seen)}).decode()
        self.journal.run_sync(lambda conn: conn.execute(self.journal.q(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value"),
            (self._mark_key(name), value)))

    def _known(self, event: dict[str, Any]) -> bool:
        """The profile of the address already has this opt-out (the webhook's, or sgbridge's own)."""
        traits = self.journal.run_sync(lambda conn: self.runs.profiles(conn, [f"email:{event['email'].lower()}"]))
        found = next(iter(traits.values()), ({}, 0))[0]
        kind = event["event"]
        if kind in _KNOWN_FLAG:
            return found.get(self.names(_KNOWN_FLAG[kind])) is True
        return is_suppressed(found, event.get("asm_group_id") if kind == "group_unsubscribe" else None, self.names)

    def poll_once(self) -> dict[str, int]:
        """Read each list from where it stood; store the new entries. New events stored, by list."""
        source = self.settings.sources[self.watch.source]
        if source.api_key is None:
            raise RuntimeError(f"suppression_watch: source {self.watch.source!r} has no api_key (SENDGRID_API_KEY)")
        stored: dict[str, int] = {}
        with SyncApi(source.api_key.get_secret_value(), source.api_endpoint or GLOBAL_ENDPOINT,
                     transport=self.transport, cancel=self._cancel) as api:
            for name in self.watch.lists:
                stored[name] = self._poll(api, name)
        return stored

    def _poll(self, api: SyncApi, name: str) -> int:
        path = LISTS[name][0]
        mark = self._mark(name)
        since, seen = mark if mark is not None else (None, set())
        params = {} if since is None else {"start_time": int(since)}
        newest, at_newest, events = since, set(seen), []
        # The groups' members come in one answer (the endpoint declares no paging, as the object sync
        # reads it); the other lists page with limit/offset from start_time.
        pages = one_page(api, path) if name == "group_unsubscribes" else offset_pages(api, path, PAGE, params)
        for page in pages:
            for row in page:
                event = _event(name, row)
                if event is None or (since is not None and event["timestamp"] < since):
                    continue  # an API that ignores start_time (the group members' endpoint may)
                at, entry = float(event["timestamp"]), event["sg_event_id"]
                if newest is None or at > newest:
                    newest, at_newest = at, {entry}
                elif at == newest:
                    at_newest.add(entry)
                # The first read only notes where the list stands; then an entry is new unless it was
                # seen at the last read's newest second, or the profile of its address knows it.
                if since is not None and entry not in seen and not self._known(event):
                    events.append(event)
        stored = 0
        if events:
            body = orjson.dumps(events)
            parsed = parse_events(self.watch.source, body)
            request = InboundRequest(self.watch.source, time.time(), len(body), parsed)
            stored = self.journal.append_sync(request).accepted
        if newest is None:  # an empty list at the first read: its entries from now on are new (with
            newest = float(int(time.time()) - CLOCK_SLACK)  # room for SendGrid's clock to differ)
        self._set_mark(name, newest, at_newest)  # after the events: a crash in between reads them again
        return stored

    # -- the schedule --------------------------------------------------------------------
    def stop(self) -> None:
        self._stop.set()
        self._cancel.set()

    async def run(self) -> None:
        every = duration(self.watch.every, "suppression_watch.every")
        while not self._stop.is_set():
            try:
                stored = await asyncio.to_thread(self.poll_once)
                if any(stored.values()):
                    log.info("suppression watch: %s", ", ".join(f"{k} {v}" for k, v in stored.items() if v))
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("suppression watch failed; trying again in %s", self.watch.every)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=every)
