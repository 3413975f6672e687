"""`sgbridge events show` and `sgbridge dead-letters list` show every stored event, also ones an
older sgbridge stored before ingestion refused unreadable events, and ids that start with "-"."""

from __future__ import annotations

import hashlib
import time
from typing import Any

import orjson
import pytest
from click.testing import CliRunner

from sgbridge.cli import main
from sgbridge.inbound.sendgrid import parse_events
from sgbridge.journal import Journal
from sgbridge.model import InboundEvent, InboundRequest

pytestmark = pytest.mark.anyio

# What an earlier version let in: each of these made `events show` or `dead-letters list --json` crash.
OLD = {
    "old-inf": b'{"event":"open","sg_event_id":"old-inf","timestamp":1e400}',
    "old-utf8": b'{"event":"open","sg_event_id":"old-utf8","email":"caf\xe9@example.com"}',
    "old-deep": b'{"event":"open","sg_event_id":"old-deep","x":' + b"[" * 300 + b"]" * 300 + b"}",
    "old-list": b'[{"event":"open","sg_event_id":"old-list"}]',
}
MARKUP = b'{"event":"[bold]open[/]","sg_event_id":"[/]x","email":"m@example.com"}'  # rich markup


def _key(ref: str) -> bytes:
    return hashlib.blake2b(b"default\0" + ref.encode(), digest_size=16).digest()


async def _fill(url: str) -> Journal:
    journal = Journal(url)
    old = [InboundEvent("default", "open", _key(ref), hashlib.blake2b(body, digest_size=16).digest(), body)
           for ref, body in OLD.items()]
    dash = parse_events("default", b'[{"event":"open","email":"d@example.com","sg_event_id":"-abc123"},'
                                   b'{"event":"open","email":"e@example.com","sg_event_id":"--x"},' + MARKUP + b"]")
    await journal.append(InboundRequest("default", time.time(), 0, old + dash))

    def dead(conn: Any) -> None:  # the Segment destination rejected them all
        for seq in range(1, len(OLD) + len(dash) + 1):
            conn.execute(journal.q("INSERT INTO outcomes (destination, seq, status, reason, attempts, updated_at) "
                                   "VALUES (?, ?, 'rejected', 'test', 1, ?)"), ("segment", seq, time.time()))

    journal.run_sync(dead)
    return journal


async def test_events_show_and_dead_letters_list_show_unreadable_events(database_url: str) -> None:
    journal = await _fill(database_url)
    journal.close()
    runner = CliRunner()
    env = {"SGBRIDGE_DATABASE_URL": database_url, "SGBRIDGE_CONFIG": None}
    listed = runner.invoke(main, ["dead-letters", "list", "--json"], env=env)
    assert listed.exit_code == 0, listed.output
    rows = [orjson.loads(line) for line in listed.output.splitlines()]
    assert len(rows) == len(OLD) + 3
    assert ["event_unreadable" in r for r in rows[:len(OLD)]] == [True, True, True, False], rows
    assert rows[3]["event"] is None  # readable, but not an object
    assert [r["sg_event_id"] for r in rows[len(OLD):]] == ["-abc123", "--x", "[/]x"]
    table = runner.invoke(main, ["dead-letters", "list"], env=env)
    assert table.exit_code == 0, (table.output, table.exception)  # rich took "[/]x" for markup
    assert "[/]x" in table.output
    for ref in OLD:
        shown = runner.invoke(main, ["events", "show", ref], env=env)
        assert shown.exit_code == 0, (ref, shown.output)
        item = orjson.loads(shown.output)
        if ref == "old-list":
            assert item["event"] == [{"event": "open", "sg_event_id": "old-list"}]
        else:
            assert item["event_unreadable"] and isinstance(item["event"], str)
            assert ref in item["event"]  # the stored bytes, as text
        assert item["destinations"]["segment"]["outcome"] == "rejected"


@pytest.mark.parametrize("ref", ["-abc123", "--x"])
async def test_events_show_takes_an_id_that_starts_with_a_dash(sqlite_url: str, ref: str) -> None:
    (await _fill(sqlite_url)).close()
    shown = CliRunner().invoke(main, ["events", "show", ref], env={"SGBRIDGE_DATABASE_URL": sqlite_url,
                                                                   "SGBRIDGE_CONFIG": None})
    assert shown.exit_code == 0, shown.output
    assert orjson.loads(shown.output)["event"]["sg_event_id"] == ref
    still = CliRunner().invoke(main, ["events", "show", "--", ref], env={"SGBRIDGE_DATABASE_URL": sqlite_url})
    assert still.exit_code == 0, still.output
