"""The README's demo runs both directions on the shipped emulators."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from rich.console import Console

from sgbridge.demo import DEMO_ACCOUNT_CONTACTS, run_demo


@pytest.mark.anyio
async def test_demo_runs_both_directions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SENDGRID_WEBHOOK_PUBLIC_KEY", "SEGMENT_WRITE_KEY", "SEGMENT_ENDPOINT", "SGBRIDGE_DATABASE_URL",
                 "SENDGRID_API_KEY", "SENDGRID_API_ENDPOINT", "SGBRIDGE_SYNC__EXPORT_POLL_SECONDS",
                 "SGBRIDGE_WAREHOUSE__FLUSH_SECONDS"):
        monkeypatch.setenv(name, os.environ.get(name, ""))  # restored after the demo overwrites them
    with (tmp_path / "out.txt").open("w") as out:
        result = await run_demo(2.0, rate=300, batch_size=20, database=tmp_path / "demo.db",
                                console=Console(file=out, width=200))
    assert result["segment"]["accepted"] > 0
    text = (tmp_path / "out.txt").read_text()
    stored = result["stored"]
    assert stored["segment"] == 300 + 100 + 30 and stored["sendgrid"] + stored["segment"] == result["journal"]["events"]
    # the SendGrid figure printed beside "N distinct events" counts SendGrid's events alone
    assert f"stored {stored['sendgrid']} of them" in text and f"the {stored['segment']} Segment events" in text
    assert stored["sendgrid"] <= result["sender"]["generated"]
    assert result["sendgrid"] == {"contacts": 300, "newsletter_members": 100, "emails_sent": 30,
                                  "contact_puts": result["sendgrid"]["contact_puts"]}
    assert result["sendgrid"]["contact_puts"] < 30  # 300 contacts, merged into a few PUTs
    # the warehouse: every stored SendGrid event once, and the seeded account's objects
    warehouse = result["warehouse"]
    segment_born = 300 + 100 + 30  # identify, Joined Newsletter, Order Completed
    assert warehouse["activity"] == result["journal"]["events"] - segment_born
    assert warehouse["recipients"] >= DEMO_ACCOUNT_CONTACTS
    assert warehouse["lists"] > 0 and warehouse["bounces"] > 0 and warehouse["campaigns"] > 0
