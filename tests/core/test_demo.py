"""The README's demo runs both directions on the shipped emulators, and leaves no temp files behind."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from sgbridge import demo
from sgbridge.demo import (
    CART_PEOPLE,
    CONVERTING_PEOPLE,
    DEMO_ACCOUNT_CONTACTS,
    MARKETING_PEOPLE,
    RECOVERY_TEMPLATE,
    SMS_MESSAGE,
    SMS_PEOPLE,
    run_demo,
)
from sgbridge.emulators.dotdigital.contacts import contact_json


@pytest.mark.anyio
async def test_demo_runs_both_directions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SENDGRID_WEBHOOK_PUBLIC_KEY", "SEGMENT_WRITE_KEY", "SEGMENT_ENDPOINT", "SGBRIDGE_DATABASE_URL",
                 "SENDGRID_API_KEY", "SENDGRID_API_ENDPOINT", "SGBRIDGE_SYNC__EXPORT_POLL_SECONDS",
                 "SGBRIDGE_WAREHOUSE__FLUSH_SECONDS"):
        monkeypatch.setenv(name, os.environ.get(name, ""))  # restored after the demo overwrites them
    system_tmp = tmp_path / "tmp"  # where the demo's own temp folder goes (tempfile.gettempdir())
    system_tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(system_tmp))
    emulators: list[Any] = []  # the SendGrid emulator the demo starts, to count what it received
    dotdigital_emulators: list[Any] = []  # and its Dotdigital emulator

    def sendgrid_emulator(*args: Any, **kwargs: Any) -> Any:
        emulators.append(app := create_sendgrid_emulator(*args, **kwargs))
        return app

    def dotdigital_emulator(*args: Any, **kwargs: Any) -> Any:
        dotdigital_emulators.append(app := create_dotdigital_emulator(*args, **kwargs))
        return app

    create_sendgrid_emulator = demo.create_sendgrid_emulator
    create_dotdigital_emulator = demo.create_dotdigital_emulator
    monkeypatch.setattr(demo, "create_sendgrid_emulator", sendgrid_emulator)
    monkeypatch.setattr(demo, "create_dotdigital_emulator", dotdigital_emulator)
    with (tmp_path / "out.txt").open("w") as out:
        result = await run_demo(2.0, rate=300, batch_size=20, database=tmp_path / "demo.db",
                                console=Console(file=out, width=200))
    assert result["segment"]["accepted"] > 0
    text = (tmp_path / "out.txt").read_text()
    stored = result["stored"]
    carts, conversions = len(CART_PEOPLE), len(CONVERTING_PEOPLE)
    marketing = len(MARKETING_PEOPLE) + len(SMS_PEOPLE)  # 'Add or Update Contact', 'Send SMS'
    segment_born = 300 + 100 + 30 + carts + conversions + marketing  # identify, Joined Newsletter, orders, carts…
    assert stored["segment"] == segment_born and stored["sendgrid"] + stored["segment"] == result["journal"]["events"]
    # the SendGrid figure printed beside "N distinct events" counts SendGrid's events alone
    assert f"stored {stored['sendgrid']} of them" in text and f"the {stored['segment']} Segment events" in text
    assert stored["sendgrid"] <= result["sender"]["generated"]
    assert result["sendgrid"] == {"contacts": 300, "newsletter_members": 100, "emails_sent": 30 + conversions,
                                  "contact_puts": result["sendgrid"]["contact_puts"]}
    assert result["sendgrid"]["contact_puts"] < 30  # 300 contacts, merged into a few PUTs
    # the warehouse: every stored SendGrid event once, and the seeded account's objects
    warehouse = result["warehouse"]
    assert warehouse["activity"] == result["journal"]["events"] - segment_born
    assert warehouse["recipients"] >= DEMO_ACCOUNT_CONTACTS
    assert warehouse["lists"] > 0 and warehouse["bounces"] > 0 and warehouse["campaigns"] > 0
    # the recovery workflow: one email each for those who did not convert during the wait, none for
    # the others, as the SendGrid emulator received them; the report says so
    [sendgrid] = [app.state.emulator.state for app in emulators]
    recovery = [m for m in sendgrid.messages if m["template_id"] == RECOVERY_TEMPLATE]
    received = Counter(r["email"] for m in recovery for r in m["recipients"])
    converted = {f"person{n}@example.com" for n in CONVERTING_PEOPLE}
    assert received == {f"person{n}@example.com": 1 for n in CART_PEOPLE if n not in CONVERTING_PEOPLE}
    assert all(m["categories"] == ["cart-recovery"] for m in recovery)
    for message in recovery:  # the trigger's products and the profile's first name reached the email
        data = message["request"]["personalizations"][0]["dynamic_template_data"]
        n = message["recipients"][0]["email"].removeprefix("person").removesuffix("@example.com")
        assert data["first_name"] == f"Person {n}" and data["products"][0]["sku"] == f"SKU-{n}", data
    assert not converted & set(received)
    workflows = result["workflows"]
    assert workflows == {"started": carts, "completed": carts - conversions, "exited": conversions, "failed": 0,
                         "active": 0, "recovery_emails": len(recovery), "converted_emailed": 0,
                         "others_emailed_once": carts - conversions, "emailed_others": 0, "ok": True}
    assert re.search(rf"recovery emails the SendGrid emulator received +│ {carts - conversions} ", text), text
    assert (f"The {conversions} who converted got no recovery email, the other {carts - conversions} exactly one "
            "each") in text
    # Marketing (Dotdigital): each 'Add or Update Contact' a contact in the seeded list Newsletter with
    # its FIRSTNAME, each 'Send SMS' one text to its number, as the Dotdigital emulator holds them
    [dotdigital] = [app.state.emulator.state for app in dotdigital_emulators]
    [newsletter] = [b for b in dotdigital.address_books.values() if b.name == "Newsletter"]
    held = [contact_json(dotdigital, c) for c in dotdigital.contacts.values()]
    contacts = {c["identifiers"]["email"]: c for c in held}
    assert len(contacts) == len(held)  # one contact per email
    assert sorted(contacts) == sorted(f"person{n}@example.com" for n in MARKETING_PEOPLE)
    for n in MARKETING_PEOPLE:
        contact = contacts[f"person{n}@example.com"]
        assert [(m["id"], m["name"]) for m in contact["lists"]] == [(newsletter.id, "Newsletter")], contact
        assert contact["dataFields"] == {"FIRSTNAME": f"Person {n}"}, contact
    numbers = ["".join(ch for ch in phone if ch.isdigit()) for phone in SMS_PEOPLE.values()]
    assert sorted((m["to"], m["message"]) for m in dotdigital.sms) == sorted((n, SMS_MESSAGE) for n in numbers)
    assert result["marketing"] == {"contacts": len(MARKETING_PEOPLE), "in_newsletter_with_firstname":
                                   len(MARKETING_PEOPLE), "sms": len(SMS_PEOPLE), "sms_as_sent": len(SMS_PEOPLE),
                                   "ok": True}
    first = MARKETING_PEOPLE[0]
    assert "Marketing (Dotdigital)" in text
    assert (f"One contact: person{first}@example.com, list Newsletter ({newsletter.id}), "
            f"FIRSTNAME 'Person {first}'") in text, text
    assert all(f"SMS to {n}: {SMS_MESSAGE!r}" in text for n in numbers) and "Unexpected" not in text
    # its temp folder (the generated config) is gone; the files beside --database stay
    assert list(system_tmp.iterdir()) == []
    assert (tmp_path / "demo.db").is_file() and (tmp_path / "sgbridge.duckdb").is_file()


@pytest.mark.slow
def test_ctrl_c_ends_the_demo_and_removes_its_temp_folder(tmp_path: Path) -> None:
    """``sgbridge demo`` without --database keeps journal and warehouse in its temp folder (~30 MB):
    interrupted with Ctrl-C (SIGINT), it still reports, exits 0 and removes the folder."""
    system_tmp = tmp_path / "tmp"
    system_tmp.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SGBRIDGE_", "SEGMENT_", "SENDGRID_"))}
    env["TMPDIR"] = str(system_tmp)
    log = tmp_path / "demo.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "sgbridge", "demo", "--rate", "200"], env=env,
                                stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while "until Ctrl-C" not in log.read_text() and time.monotonic() < deadline:
            assert proc.poll() is None, log.read_text()
            time.sleep(0.1)
        time.sleep(1.0)  # webhooks flowing: the journal and the warehouse are being written
        folders = list(system_tmp.glob("sgbridge-demo-*"))
        assert len(folders) == 1 and (folders[0] / "journal.db").is_file(), log.read_text()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(90) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "What reached the warehouse" in log.read_text()
    assert list(system_tmp.iterdir()) == [], log.read_text()[-2000:]
