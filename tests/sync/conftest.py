"""A seeded SendGrid account (the shipped emulator, on a real socket: the sync client is blocking
httpx) and sgbridge settings pointed at it, as a user would set them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pytest
from starlette.applications import Starlette

from sgbridge.emulators.sendgrid import create_sendgrid_emulator
from sgbridge.emulators.serving import serve_in_thread
from sgbridge.journal import Journal
from sgbridge.settings import Settings, load_settings

SEEDED_CONTACTS = 1500


@dataclass
class Account:
    app: Starlette
    url: str

    @property
    def state(self) -> Any:
        self.app.state.emulator.state.tick()
        return self.app.state.emulator.state

    def requests(self, path: str) -> list[dict[str, Any]]:
        return [r for r in self.state.requests if r["path"] == path]


def serve_account(**options: Any) -> Iterator[Account]:
    options.setdefault("seed_contacts", SEEDED_CONTACTS)
    options.setdefault("job_delay_seconds", 0.05)
    app = create_sendgrid_emulator(**options)
    with serve_in_thread(app) as url:
        yield Account(app, url)


@pytest.fixture
def account() -> Iterator[Account]:
    yield from serve_account(seed=7)


SettingsFactory = Callable[..., Settings]


@pytest.fixture
def sync_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> SettingsFactory:
    """Settings from the environment, as `sgbridge` reads them; keyword arguments are more variables."""

    def make(account: Account, **env: str) -> Settings:
        variables = {
            "SENDGRID_API_KEY": "SG.sync-test-key",
            "SENDGRID_API_ENDPOINT": account.url,
            "SGBRIDGE_DATABASE_URL": f"sqlite:///{tmp_path / 'journal.db'}",
            "SGBRIDGE_SYNC__EXPORT_POLL_SECONDS": "0.05",
            "SGBRIDGE_WAREHOUSE__PIPELINES_DIR": str(tmp_path / "dlt"),  # never the working directory
            **env,
        }
        for key, value in variables.items():
            monkeypatch.setenv(key, value)
        return load_settings()

    return make


@pytest.fixture
def journal_for() -> Iterator[Callable[[Settings], Journal]]:
    opened: list[Journal] = []

    def open_journal(settings: Settings) -> Journal:
        opened.append(Journal(settings.database_url))
        return opened[-1]

    yield open_journal
    for journal in opened:
        journal.close()


def duck(path: Path, query: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    with duckdb.connect(str(path), read_only=True) as conn:
        return conn.execute(query, params).fetchall()


@pytest.fixture
def pg_warehouse() -> Iterator[str]:
    """A fresh PostgreSQL database (journal and warehouse). dlt's credentials need a password; the
    test server trusts local connections, so any will do."""
    from tests.conftest import postgres_database

    for url in postgres_database():
        yield url.replace("postgresql://postgres@", "postgresql://postgres:unused@", 1)
