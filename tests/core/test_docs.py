"""Docs that are generated must match the code; documented commands must exist."""

from __future__ import annotations

from pathlib import Path

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
