"""Which parts each role's process builds (the processes themselves: tests/process/test_roles.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from sgbridge.roles import WAREHOUSE, configured_roles, destination_names, housekeeping_role, parse_roles
from sgbridge.settings import load_settings


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
    assert configured_roles(bare) == ["ingest", "warehouse"]
    assert housekeeping_role(bare) == "warehouse" and destination_names(bare) == ["warehouse"]
    monkeypatch.setenv("SEGMENT_WRITE_KEY", "wk")
    monkeypatch.setenv("SGBRIDGE_WAREHOUSE__ENABLED", "false")
    segment_only = load_settings(None)
    assert configured_roles(segment_only) == ["ingest", "deliver"]
    assert housekeeping_role(segment_only) == "deliver" and destination_names(segment_only) == ["segment"]
    assert parse_roles(("ingest,deliver", "warehouse")) == {"ingest", "deliver", "warehouse"}
    with pytest.raises(ValueError, match="unknown role"):
        parse_roles(("ingest", "loader"))
