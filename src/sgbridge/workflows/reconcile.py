"""Audience → list, reconciled on a schedule (template 2 of seed 003).

Sync Audience keeps a SendGrid list in step with an Engage audience event by event. People also
change lists by hand in SendGrid, and an event can be lost upstream. A reconcile compares the
list's members in SendGrid (a contacts export of the list: the only complete read) with the
membership sgbridge recorded (profiles: the audience key true, from identify traits or track
properties — ``workflows.documents.apply_to_profile``), fixes the drift both ways (adds the
recorded members SendGrid lacks, removes the members sgbridge never recorded) through the same
actions as everything else (``addToList``, ``removeFromList``), and keeps a report.

Each run is a row of the journal's sync run history (source ``reconcile:<name>``), scheduled as
the object sync is: one slot per interval, taken by one process across all of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Sequence
from typing import Any

import httpx

from sgbridge.actions.results import OK, RETRY
from sgbridge.actions.runner import ActionRunner, check_subscription
from sgbridge.journal import Journal
from sgbridge.journal.sync_runs import SyncRuns
from sgbridge.journal.workflow_runs import WorkflowRuns
from sgbridge.settings import Settings
from sgbridge.sync.api import SyncApi, SyncApiError
from sgbridge.sync.contacts_export import export_tables, wait_for_export
from sgbridge.sync.pages import token_pages
from sgbridge.sync.service import owner_name
from sgbridge.workflows.language import duration
from sgbridge.workflows.settings import AudienceReconcileSettings

log = logging.getLogger(__name__)
SOURCE_PREFIX = "reconcile:"
GLOBAL_ENDPOINT = "https://api.sendgrid.com"
LISTED = 1000  # addresses named in a report, per direction (the counts are always whole)
TRIES = 5  # of a fix that fails transiently (429, 5xx), with backoff


class ReconcileError(Exception):
    pass


def _api_key(settings: dict[str, Any]) -> str:
    key = settings.get("sendGridApiKey")
    if not key:
        raise ReconcileError("no SendGrid API key: set settings.sendGridApiKey of the destination or SENDGRID_API_KEY")
    return str(key)


class Reconciler:
    """Runs reconciles by name: once, now (the CLI), or on their schedule (the workflows role)."""

    def __init__(self, settings: Settings, journal: Journal, client: httpx.AsyncClient,
                 sync_transport: httpx.BaseTransport | None = None) -> None:
        self.settings = settings
        self.journal = journal
        self.client = client
        self.sync_transport = sync_transport  # tests: the export client's transport
        self.items = {r.name: r for r in settings.audience_reconcile}
        self.history = SyncRuns(journal, settings.sync.stale_after_seconds)
        self._stop = asyncio.Event()
        self._cancel = threading.Event()  # the export's thread stops between requests

    # -- one run ---------------------------------------------------------------------------
    async def run(self, name: str, *, dry_run: bool = False, slot: int | None = None) -> dict[str, Any] | None:
        """Reconcile ``name`` now; its report, or None when its schedule slot was taken by another process."""
        item = self.items[name]
        run_id = await asyncio.to_thread(self.history.start, f"{SOURCE_PREFIX}{name}", owner_name(), slot)
        if run_id is None:
            return None
        report: dict[str, Any] = {"reconcile": name, "audience": item.audience, "dry_run": dry_run}
        try:
            await self._reconcile(item, dry_run, report)
        except Exception as exc:
            report["error"] = f"{type(exc).__name__}: {exc}"
            await asyncio.to_thread(self.history.finish, run_id, "failed", [report], report["error"])
            log.warning("reconcile %s failed: %s", name, report["error"])
            return report
        status = "partial" if report.get("failures") else "ok"
        await asyncio.to_thread(self.history.finish, run_id, status, [report], None)
        log.info("reconcile %s: %d added, %d removed (%s)", name, report["to_add"], report["to_remove"],
                 "fixed" if report["fixed"] else report.get("not_fixed", "not fixed"))
        return report

    async def _reconcile(self, item: AudienceReconcileSettings, dry_run: bool, report: dict[str, Any]) -> None:
        destination = self.settings.actions[item.destination]
        settings = destination.api_settings()
        settings["sendGridApiKey"] = _api_key(settings)
        endpoint = str(destination.endpoint or settings.get("endpoint") or GLOBAL_ENDPOINT)
        started = time.time()
        list_id, members = await asyncio.to_thread(self._read_list, item, settings["sendGridApiKey"], endpoint)
        recorded = await WorkflowRuns(self.journal).audience_members(item.audience)
        to_add, to_remove = sorted(recorded - members), sorted(members - recorded)
        report.update(list_id=list_id, in_sendgrid=len(members), recorded=len(recorded), to_add=len(to_add),
                      to_remove=len(to_remove), added=to_add[:LISTED], removed=to_remove[:LISTED],
                      read_seconds=round(time.time() - started, 3), fixed=False)
        if not to_add and not to_remove:
            report["fixed"] = True
            return
        if dry_run or not item.fix:
            report["not_fixed"] = "a dry run" if dry_run else "fix = false: reported only"
            return
        if len(to_add) + len(to_remove) > item.max_fixes:
            report["not_fixed"] = (f"{len(to_add) + len(to_remove)} changes are more than max_fixes "
                                   f"({item.max_fixes}): reported, not fixed")
            return
        failures: list[dict[str, Any]] = []
        for action, emails in (("removeFromList", to_remove), ("addToList", to_add)):
            failures += await self._fix(item, destination, settings, endpoint, action, list_id, emails)
        report["fixed"] = not failures
        if failures:
            report["failures"] = failures[:LISTED]

    def _read_list(self, item: AudienceReconcileSettings, api_key: str, endpoint: str) -> tuple[str, set[str]]:
        """The list's id and its members' addresses (lower-cased), from a contacts export of the list."""
        sync = self.settings.sync
        with SyncApi(api_key, endpoint, transport=self.sync_transport, cancel=self._cancel) as api:
            list_id = item.list_id or self._find_list(api, str(item.list_name))
            job = wait_for_export(api, sync.export_timeout_seconds, sync.export_poll_seconds, list_ids=[list_id])
            members: set[str] = set()
            for table in export_tables(api, job):
                if "email" in table.column_names:
                    members.update(str(e).strip().lower() for e in table.column("email").to_pylist() if e)
        return list_id, members

    @staticmethod
    def _find_list(api: SyncApi, name: str) -> str:
        for page in token_pages(api, "/v3/marketing/lists", 1000):
            for found in page:
                if found.get("name") == name and found.get("id"):
                    return str(found["id"])
        raise ReconcileError(f"no SendGrid list named {name!r}")

    async def _fix(self, item: AudienceReconcileSettings, destination: Any, settings: dict[str, Any], endpoint: str,
                   action: str, list_id: str, emails: Sequence[str]) -> list[dict[str, Any]]:
        """``action`` for each address; the ones that failed, with SendGrid's reason."""
        if not emails:
            return []
        subscribed = check_subscription(f"audience_reconcile.{item.name}", "sendgrid", action,
                                        {"primary_email": {"@path": "$.email"}, "list_id": list_id}, None,
                                        use_defaults=False, require_trigger=False)
        runner = ActionRunner("sendgrid", settings, [subscribed], self.client, endpoint=endpoint,
                              max_concurrency=destination.max_concurrency,
                              job_poll_seconds=destination.job_poll_seconds,
                              job_timeout_seconds=destination.job_timeout_seconds)
        pending = {i: email for i, email in enumerate(emails)}
        failures: dict[int, dict[str, Any]] = {}
        for attempt in range(TRIES):
            planned = [runner.plan(i, {"type": "identify", "email": e, "userId": e}, ignore_triggers=True)
                       for i, e in pending.items()]
            results = await runner.run(planned)
            waits = [r.after or 0.0 for r in results if r.kind == RETRY]
            for result in results:
                if result.kind == OK:
                    pending.pop(result.ref, None)
                    failures.pop(result.ref, None)
                elif result.kind != RETRY or attempt == TRIES - 1:
                    failures[result.ref] = {"email": pending.pop(result.ref), "action": action,
                                            "reason": result.message}
                else:
                    failures[result.ref] = {"email": pending[result.ref], "action": action, "reason": result.message}
            if not pending:
                break
            await asyncio.sleep(min(max([2.0 ** attempt, *waits]), 60.0))
        return list(failures.values())

    # -- the schedule --------------------------------------------------------------------
    def stop(self) -> None:
        self._stop.set()
        self._cancel.set()

    async def schedule(self) -> None:
        """Each enabled reconcile once per ``every`` (its slot: floor(now / every)), across processes."""
        every = {r.name: duration(r.every, r.name) for r in self.items.values() if r.enabled}
        done: set[tuple[str, int]] = set()
        while not self._stop.is_set():
            for name, seconds in every.items():
                slot = int(time.time() // seconds)
                if (name, slot) in done or self._stop.is_set():
                    continue
                try:
                    ran = await self.run(name, slot=slot) is not None
                except asyncio.CancelledError:
                    raise
                except (SyncApiError, ReconcileError, OSError):
                    log.exception("reconcile %s failed", name)
                    ran = True
                if ran:
                    done.add((name, slot))
            following = min(((int(time.time() // s) + 1) * s for s in every.values()), default=time.time() + 60)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=max(1.0, min(60.0, following - time.time())))
