"""Docs that are generated must match the code; documented commands must exist."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from click.testing import CliRunner

from sgbridge.cli import main
from sgbridge.settings_doc import render

ROOT = Path(__file__).resolve().parents[2]


def test_configuration_reference_is_up_to_date() -> None:
    committed = (ROOT / "docs" / "configuration.md").read_text()
    assert committed == render(), "run: sgbridge config-reference > docs/configuration.md"


def test_action_reference_is_up_to_date() -> None:
    from sgbridge.actions.reference import render as render_actions

    committed = (ROOT / "docs" / "actions-reference.md").read_text()
    assert committed == render_actions(), "run: sgbridge actions reference > docs/actions-reference.md"


def test_sync_collections_in_settings_are_the_syncs_own() -> None:
    from sgbridge.settings import SYNC_COLLECTIONS
    from sgbridge.sync.collections import COLLECTIONS

    assert list(SYNC_COLLECTIONS) == list(COLLECTIONS)
    warehouse_doc = (ROOT / "docs" / "warehouse.md").read_text()
    assert all(f"`{name}`" in warehouse_doc or name in warehouse_doc for name in COLLECTIONS)


def test_every_readme_command_exists() -> None:
    runner = CliRunner()
    for command in (["serve"], ["demo"], ["status"], ["dead-letters", "list"], ["dead-letters", "replay"],
                    ["emulate", "segment"], ["emulate", "sendgrid-webhook"],
                    ["emulate", "sendgrid"], ["actions", "test"], ["actions", "list"], ["events", "show"],
                    ["sync"], ["sync-history"], ["check"], ["config-reference"]):
        result = runner.invoke(main, [*command, "--help"])
        assert result.exit_code == 0, (command, result.output)
        assert "sgbridge " + " ".join(command) in (ROOT / "README.md").read_text() or command == ["config-reference"]


def _readme_toml() -> str:
    text = (ROOT / "README.md").read_text()
    blocks = text.split("```toml\n")[1:]
    assert blocks, "README has a TOML example"
    return blocks[0].split("```")[0]


def test_the_readme_config_example_loads_and_loses_no_default_event(tmp_path: Path, monkeypatch: Any) -> None:
    """A user who copies the example must not silently stop sending events the default sends."""
    from sgbridge.settings import DEFAULT_EVENTS, load_settings

    for name in ("SENDGRID_WEBHOOK_PUBLIC_KEY", "SENDGRID_API_KEY", "SEGMENT_WRITE_KEY"):
        monkeypatch.delenv(name, raising=False)
    config = tmp_path / "example.toml"
    config.write_text(_readme_toml().replace("MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE...", _A_PUBLIC_KEY))
    settings = load_settings(config)
    for name, source in settings.sources.items():
        missing = [e for e in DEFAULT_EVENTS if e not in source.events]
        assert not missing, f"the README's [sources.{name}] leaves out {missing}"


_A_PUBLIC_KEY = ("MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE83T4O/n84iotIvIW4mdBgQ/7dAfSmpqIM8kF9mN1flpVKS3GRqe62gw+"
                 "2fNNRaINXvVpiglSI8eNEc6wEA3F+g==")  # SendGrid's SDK test vector


def test_every_environment_variable_the_docs_name_is_read_by_the_code() -> None:
    import re

    readers = [*(ROOT / "src").rglob("*.py"), *(ROOT / "scripts").iterdir(), ROOT / "Dockerfile"]
    code = "\n".join(p.read_text() for p in readers)
    docs = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    named = {(m, doc.name) for doc in docs for m in re.findall(r"\b(?:SENDGRID|SEGMENT|SGBRIDGE)_[A-Z0-9_]+",
                                                               doc.read_text())}
    from sgbridge.settings import Settings

    top_level = {f"SGBRIDGE_{field.upper()}" for field in Settings.model_fields}  # read by pydantic-settings
    unread = sorted((name, where) for name, where in named
                    if name not in code and name not in top_level
                    and "__" not in name  # SGBRIDGE_<SECTION>__<KEY>: pydantic-settings too
                    and name not in ("SGBRIDGE_TEST_POSTGRES_URL", "SENDGRID_COLUMNS"))
    assert unread == []
