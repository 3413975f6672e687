"""Which parts each role's process builds (the processes themselves: tests/process/test_roles.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from sgbridge.roles import WAREHOUSE, configured_roles, destination_names, housekeeping_role, parse_roles
from sgbridge.settings import load_settings
from tests.conftest import BridgeFactory


def test_the_ingest_process_loads_no_destination_code(tmp_path: Path) -> None:
    """dlt, Arrow and DuckDB double the objects every full garbage collection of the hot path scans."""
    code = ("import sys; from sgbridge.app import build_app; from sgbridge.settings import load_settings; "
            "app = build_app(load_settings(None), roles=frozenset({'ingest'})); "
            "print(sorted(m for m in ('dlt', 'pyarrow', 'duckdb', 'sgbridge.warehouse.loader') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path,
                         env={"SGBRIDGE_DATABASE_URL": f"sqlite:///{tmp_path / 'j.db'}", "PATH": "/usr/bin"})
    assert out.stdout.strip() == "[]", out.stderr


def test_roles_follow_the_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    from sgbridge.destinations.warehouse import NAME

    assert WAREHOUSE == NAME
    for name in ("SEGMENT_WRITE_KEY", "SENDGRID_API_KEY", "SGBRIDGE_WAREHOUSE__ENABLED"):
        monkeypatch.delenv(name, raising=False)
    bare = load_settings(None)
    assert configured_roles(bare) == ["ingest", "warehouse", "web"]
    assert housekeeping_role(bare) == "warehouse" and destination_names(bare) == ["warehouse"]
    monkeypatch.setenv("SEGMENT_WRITE_KEY", "wk")
    monkeypatch.setenv("SGBRIDGE_WAREHOUSE__ENABLED", "false")
    segment_only = load_settings(None)
    assert configured_roles(segment_only) == ["ingest", "deliver", "web"]
    monkeypatch.setenv("SGBRIDGE_CONSOLE__ENABLED", "false")
    assert configured_roles(load_settings(None)) == ["ingest", "deliver"]
    monkeypatch.delenv("SGBRIDGE_CONSOLE__ENABLED")
    assert housekeeping_role(segment_only) == "deliver" and destination_names(segment_only) == ["segment"]
    assert parse_roles(("ingest,deliver", "warehouse")) == {"ingest", "deliver", "warehouse"}
    with pytest.raises(ValueError, match="unknown role"):
        parse_roles(("ingest", "loader"))


@pytest.mark.anyio
async def test_a_second_process_for_a_destination_on_one_sqlite_journal_starts_and_stops_as_a_standby(
        bridge_factory: BridgeFactory) -> None:
    """journal/locks.py: while another process delivers to Segment, a second one starts at once
    (it ingests, beats, answers SIGTERM) but delivers nothing, and stops without waiting."""
    import anyio

    from sgbridge.emulators.event_factory import EventFactory

    events = [e for e in EventFactory(52).batch(60) if e["event"] != "deferred"]
    async with bridge_factory() as first:
        with anyio.fail_after(10):  # neither the start nor the stop waits for the lock
            async with bridge_factory() as second:
                assert (await second.post(events)).status_code == 200
                await first.wait_delivered(len(events))  # the lock holder delivers what the standby took
                await anyio.sleep(0.3)
                assert second.segment.accepted == 0
                assert second.bridge._delivering == []
