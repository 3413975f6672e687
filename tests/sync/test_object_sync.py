"""SendGrid objects → warehouse tables, against the seeded SendGrid emulator, checked with SQL.

Expected values come from the emulator's own account (what SendGrid holds), never from what the
sync reported.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from sgbridge.journal import Journal
from sgbridge.journal.sync_runs import SyncRuns
from sgbridge.settings import Settings
from sgbridge.sync.runner import CollectionResult
from sgbridge.sync.service import run_recorded
from tests.sync.conftest import Account, SettingsFactory, duck, serve_account

JournalFor = Callable[[Settings], Journal]


def _sync(settings: Settings, journal: Journal, **kwargs: Any) -> Any:
    report = run_recorded(settings, journal, "default", **kwargs)
    assert report is not None
    return report


def _statuses(report: Any) -> dict[str, str]:
    return {c.name: c.status for c in report.collections}


def _expected_counts(state: Any) -> dict[str, int]:
    return {
        "lists": len(state.lists), "segments": len(state.segments), "recipients": len(state.contacts),
        "campaigns": len(state.single_sends), "unsubscribe_groups": len(state.groups),
        "unsubscribe_group_members": sum(len(g.members) for g in state.groups.values()),
        "global_unsubscribes": len(state.global_suppressions), "bounces": len(state.bounces),
        "blocks": len(state.blocks), "spam_reports": len(state.spam_reports),
        "invalid_emails": len(state.invalid_emails),
    }


def _table_counts(warehouse: Path, tables: list[str], dataset: str = "sendgrid") -> dict[str, int]:
    return {t: duck(warehouse, f"SELECT count(*) FROM {dataset}.{t}")[0][0] for t in tables}


def test_first_sync_fills_every_table(account: Account, sync_settings: SettingsFactory, journal_for: JournalFor,
                                      tmp_path: Path) -> None:
    settings = sync_settings(account)
    report = _sync(settings, journal_for(settings))
    assert report.status == "ok", report.as_json()
    warehouse = tmp_path / "sgbridge.duckdb"
    state = account.state
    expected = _expected_counts(state)
    assert all(expected.values()), expected  # the seeded account has something of everything
    assert _table_counts(warehouse, list(expected)) == expected
    assert {c.name: c.rows for c in report.collections if c.name in expected} == expected

    # contacts: SendGrid's export, column by column
    contact = next(c for c in state.contacts.values() if c.first_name and c.city)
    row = duck(warehouse, "SELECT email, first_name, city, country, created_at FROM sendgrid.recipients "
                          "WHERE contact_id = ?", [contact.id])
    assert row[0][:4] == (contact.email, contact.first_name, contact.city, contact.country)
    assert abs(row[0][4].timestamp() - contact.created_at) < 1
    custom = next(f for f in state.custom_fields.values() if f.field_type == "Text")
    with_value = next(c for c in state.contacts.values() if c.custom and c.custom.get(custom.id))
    assert duck(warehouse, f"SELECT {custom.name.lower()} FROM sendgrid.recipients WHERE contact_id = ?",
                [with_value.id]) == [(str(with_value.custom[custom.id]),)]

    # lists with their counts, segments, single sends, suppressions
    some_list = next(iter(state.lists.values()))
    assert duck(warehouse, "SELECT name, contact_count FROM sendgrid.lists WHERE id = ?", [some_list.id]) == [
        (some_list.name, len(state.list_members(some_list.id)))]
    assert {r[0] for r in duck(warehouse, "SELECT id FROM sendgrid.segments")} == set(state.segments)
    assert {r[0] for r in duck(warehouse, "SELECT id FROM sendgrid.campaigns")} == set(state.single_sends)
    email, bounce = next(iter(state.bounces.items()))
    assert duck(warehouse, "SELECT created, reason, status FROM sendgrid.bounces WHERE email = ?", [email]) == [
        (bounce.created, bounce.reason, bounce.status)]
    custom_ids = {r[0] for r in duck(warehouse, "SELECT id FROM sendgrid.field_definitions WHERE kind = 'custom'")}
    assert custom_ids == set(state.custom_fields)


def test_next_run_merges_changes_and_drops_deleted_objects(account: Account, sync_settings: SettingsFactory,
                                                           journal_for: JournalFor, tmp_path: Path) -> None:
    settings = sync_settings(account)
    journal = journal_for(settings)
    assert _sync(settings, journal).status == "ok"
    state = account.state
    renamed, deleted = list(state.lists)[:2]
    gone_contact = next(iter(state.contacts))
    newest_bounce = max(b.created for b in state.bounces.values())
    with httpx.Client(base_url=account.url, headers={"Authorization": "Bearer SG.x"}) as api:
        assert api.patch(f"/v3/marketing/lists/{renamed}", json={"name": "Renamed in SendGrid"}).status_code == 200
        assert api.delete(f"/v3/marketing/lists/{deleted}").status_code in (200, 204)
        assert api.delete("/v3/marketing/contacts", params={"ids": gone_contact}).status_code == 202
        assert api.post("/_emulator/jobs/run").status_code == 200
    from sgbridge.emulators.sendgrid.state import SuppressionEntry

    account.state.bounces["late@bounce.example"] = SuppressionEntry(newest_bounce + 60, "550 mailbox full", "5.2.2")
    account.state.requests.clear()

    second = _sync(settings, journal)
    assert second.status == "ok", second.as_json()
    warehouse = tmp_path / "sgbridge.duckdb"
    assert _table_counts(warehouse, ["lists", "recipients", "bounces"]) == {
        "lists": len(state.lists), "recipients": len(state.contacts), "bounces": len(state.bounces)}
    assert duck(warehouse, "SELECT name FROM sendgrid.lists WHERE id = ?", [renamed]) == [("Renamed in SendGrid",)]
    assert duck(warehouse, "SELECT count(*) FROM sendgrid.lists WHERE id = ?", [deleted]) == [(0,)]
    assert duck(warehouse, "SELECT count(*) FROM sendgrid.recipients WHERE contact_id = ?", [gone_contact]) == [(0,)]
    assert duck(warehouse, "SELECT reason FROM sendgrid.bounces WHERE email = 'late@bounce.example'") == [
        ("550 mailbox full",)]
    # incremental: the second run asked only for bounces from the newest one it had, and loaded one row
    asked = [r["query"] for r in account.requests("/v3/suppression/bounces")]
    assert asked and all(int(q["start_time"]) == newest_bounce for q in asked)
    assert {c.name: c.rows for c in second.collections}["bounces"] == 1


def test_full_refresh_rebuilds_incremental_lists(account: Account, sync_settings: SettingsFactory,
                                                 journal_for: JournalFor, tmp_path: Path) -> None:
    settings = sync_settings(account)
    journal = journal_for(settings)
    _sync(settings, journal, collections=["spam_reports"])
    removed = next(iter(account.state.spam_reports))
    del account.state.spam_reports[removed]
    _sync(settings, journal, collections=["spam_reports"])  # incremental: cannot see the removal
    warehouse = tmp_path / "sgbridge.duckdb"
    assert duck(warehouse, "SELECT count(*) FROM sendgrid.spam_reports WHERE email = ?", [removed]) == [(1,)]
    report = _sync(settings, journal, collections=["spam_reports"], full_refresh=True)
    assert report.status == "ok"
    assert duck(warehouse, "SELECT count(*) FROM sendgrid.spam_reports WHERE email = ?", [removed]) == [(0,)]
    assert _table_counts(warehouse, ["spam_reports"]) == {"spam_reports": len(account.state.spam_reports)}


def test_account_without_marketing_campaigns_syncs_zero_data(sync_settings: SettingsFactory,
                                                              journal_for: JournalFor) -> None:
    for account in serve_account(marketing_campaigns=False):
        settings = sync_settings(account)
        report = _sync(settings, journal_for(settings))
    statuses = _statuses(report)
    marketing = ["lists", "segments", "recipients", "campaigns", "field_definitions"]
    assert {statuses[name] for name in marketing} == {"zero data synced"}
    assert all(statuses[name] == "synced" for name in statuses if name not in marketing)
    assert report.status == "ok"  # nothing failed: the account simply has no marketing data
    notes = {c.name: c.note for c in report.collections}
    assert "Marketing Campaigns" in notes["lists"]


def test_invalid_key_stops_the_run_with_a_plain_reason(sync_settings: SettingsFactory,
                                                       journal_for: JournalFor) -> None:
    for account in serve_account(api_keys=["SG.the-right-key"], seed_contacts=50):
        settings = sync_settings(account)  # configured with another key
        journal = journal_for(settings)
        report = _sync(settings, journal)
        history = SyncRuns(journal).history("default")
    assert report.status == "failed"
    assert report.error.startswith("Invalid credentials")
    assert {c.status for c in report.collections} == {"failed"}
    assert len([r for r in account.state.requests if r["path"].startswith("/v3/")]) == 1  # stopped at once
    assert history[0].status == "failed" and history[0].error.startswith("Invalid credentials")


def test_rate_limit_is_waited_out(sync_settings: SettingsFactory, journal_for: JournalFor, tmp_path: Path) -> None:
    for account in serve_account(seed_contacts=200, rate_limits={"GET /v3/suppression/bounces": (1, 1.5)}):
        # 200 contacts give a few bounces; pages of 1 row force one request per bounce
        settings = sync_settings(account)
        import sgbridge.sync.collections as collections

        original = collections.SUPPRESSION_PAGE
        collections.SUPPRESSION_PAGE = 1
        try:
            report = _sync(settings, journal_for(settings), collections=["bounces"])
        finally:
            collections.SUPPRESSION_PAGE = original
        statuses = [r["status"] for r in account.requests("/v3/suppression/bounces")]
        expected = len(account.state.bounces)
    assert report.status == "ok"
    assert expected >= 2
    assert statuses.count(200) == expected + 1  # every page, and the empty one that ends the list
    assert _table_counts(tmp_path / "sgbridge.duckdb", ["bounces"]) == {"bounces": expected}


def test_interrupted_sync_is_recorded_and_the_next_run_is_correct(account: Account, sync_settings: SettingsFactory,
                                                                  journal_for: JournalFor, tmp_path: Path) -> None:
    settings = sync_settings(account, SGBRIDGE_SYNC__COLLECTIONS="lists,recipients,bounces")
    journal = journal_for(settings)
    cancel = threading.Event()
    account.state.export_rows_per_file = 400  # several files: the sync can stop between them

    def stop_in_the_middle(result: CollectionResult) -> None:
        if result.name == "recipients" and result.rows > 0:
            cancel.set()  # what `serve` does when it is stopped mid-sync

    first = _sync(settings, journal, cancel=cancel, observer=stop_in_the_middle)
    assert _statuses(first) == {"lists": "synced", "recipients": "interrupted", "bounces": "interrupted"}
    assert SyncRuns(journal).history("default")[0].status in ("partial", "interrupted")
    warehouse = tmp_path / "sgbridge.duckdb"
    assert duck(warehouse, "SELECT count(*) FROM information_schema.tables WHERE table_name = 'recipients'") == [(0,)]

    second = _sync(settings, journal)
    assert second.status == "ok", second.as_json()
    state = account.state
    assert _table_counts(warehouse, ["lists", "recipients", "bounces"]) == {
        "lists": len(state.lists), "recipients": len(state.contacts), "bounces": len(state.bounces)}
    assert duck(warehouse, "SELECT count(DISTINCT contact_id) FROM sendgrid.recipients") == [(len(state.contacts),)]


def test_a_scheduled_slot_runs_once(account: Account, sync_settings: SettingsFactory,
                                    journal_for: JournalFor) -> None:
    settings = sync_settings(account, SGBRIDGE_SYNC__COLLECTIONS="lists")
    journal = journal_for(settings)
    assert run_recorded(settings, journal, "default", slot=1234) is not None
    assert run_recorded(settings, journal, "default", slot=1234) is None
    assert run_recorded(settings, journal, "default", slot=1235) is not None
    runs = SyncRuns(journal).history("default")
    assert [(r.trigger, r.status) for r in runs] == [("schedule", "ok"), ("schedule", "ok")]
    assert all(r.collections[0]["rows"] == len(account.state.lists) for r in runs)


@pytest.mark.postgres
def test_postgres_journal_and_warehouse(account: Account, sync_settings: SettingsFactory, journal_for: JournalFor,
                                        pg_warehouse: str) -> None:
    import psycopg

    settings = sync_settings(account, SGBRIDGE_DATABASE_URL=pg_warehouse, SGBRIDGE_WAREHOUSE__DESTINATION="postgres",
                             SGBRIDGE_WAREHOUSE__CREDENTIALS=pg_warehouse)
    journal = journal_for(settings)
    assert run_recorded(settings, journal, "default", slot=99) is not None
    assert run_recorded(settings, journal, "default", slot=99) is None  # another process took this slot
    second = _sync(settings, journal)  # merges into what is there
    assert second.status == "ok", second.as_json()
    expected = _expected_counts(account.state)
    with psycopg.connect(pg_warehouse) as conn:
        got = {t: conn.execute(f"SELECT count(*) FROM sendgrid.{t}").fetchone()[0] for t in expected}
        contact = next(iter(account.state.contacts.values()))
        email = conn.execute("SELECT email FROM sendgrid.recipients WHERE contact_id = %s", (contact.id,)).fetchone()
    assert got == expected
    assert email == (contact.email,)


def test_a_dead_runs_slot_is_taken_over_once_it_is_stale(account: Account, sync_settings: SettingsFactory,
                                                         journal_for: JournalFor) -> None:
    settings = sync_settings(account, SGBRIDGE_SYNC__COLLECTIONS="lists", SGBRIDGE_SYNC__STALE_AFTER_SECONDS="1")
    journal = journal_for(settings)
    runs = SyncRuns(journal, 1.0)
    assert runs.start("default", "a process that dies now", slot=7) is not None
    assert run_recorded(settings, journal, "default", slot=7) is None  # still fresh: may be alive
    import time

    time.sleep(1.2)
    assert run_recorded(settings, journal, "default", slot=7) is not None
    history = runs.history("default")
    assert [(r.status, r.slot) for r in history] == [("ok", 7), ("interrupted", None)]
    assert "killed" in (history[1].error or "")


def test_a_collection_that_keeps_failing_costs_only_itself(account: Account, sync_settings: SettingsFactory,
                                                          journal_for: JournalFor, tmp_path: Path) -> None:
    settings = sync_settings(account, SGBRIDGE_SYNC__COLLECTIONS="lists,segments,bounces",
                             SGBRIDGE_SYNC__MAX_ATTEMPTS="3")
    httpx.post(f"{account.url}/_emulator/faults",
               json={"status": 503, "count": 100, "path": "/v3/marketing/segments"}).raise_for_status()
    journal = journal_for(settings)
    report = _sync(settings, journal)
    assert _statuses(report) == {"lists": "synced", "segments": "failed", "bounces": "synced"}
    assert report.status == "partial"
    error = next(c.error for c in report.collections if c.name == "segments")
    assert "HTTP 503" in error and "gave up after 3 attempts" in error
    assert len(account.requests("/v3/marketing/segments/2.0")) == 3
    warehouse = tmp_path / "sgbridge.duckdb"
    assert _table_counts(warehouse, ["lists", "bounces"]) == {
        "lists": len(account.state.lists), "bounces": len(account.state.bounces)}
    assert SyncRuns(journal).history("default")[0].collections[1]["error"] == error
