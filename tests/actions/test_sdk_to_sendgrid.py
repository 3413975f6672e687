"""The official Segment Python SDK → sgbridge → the SendGrid emulator, all over real HTTP."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
from segment.analytics.client import Client

from sgbridge.app import build_app
from sgbridge.emulators.sendgrid import create_sendgrid_emulator
from sgbridge.emulators.serving import serve_in_thread
from sgbridge.settings import load_settings


def test_sdk_identify_and_track_reach_sendgrid(tmp_path: Path, sqlite_url: str, monkeypatch: Any) -> None:
    emulator = create_sendgrid_emulator(["SG.sdk"], job_delay_seconds=0.05)
    with serve_in_thread(emulator) as sendgrid_url:
        config = tmp_path / "sgbridge.toml"
        config.write_text(f"""
[segment_inbound]
write_keys = ["sdk-key"]

[actions.sendgrid]
endpoint = "{sendgrid_url}"
job_poll_seconds = 0.02

[[actions.sendgrid.subscriptions]]
action = "updateUserProfile"
trigger = 'type = "identify"'
mapping = {{ customFields = {{ plan = {{ "@path" = "$.traits.plan" }} }} }}

[[actions.sendgrid.subscriptions]]
action = "sendEmail"
trigger = 'event = "Signed Up"'
mapping = {{ from = {{ email = "hello@example.com" }}, template_id = "Welcome [d-5f1e0c3a2b8d4e6f9a7b1c2d3e4f5a6b]" }}
""")
        monkeypatch.setenv("SGBRIDGE_DATABASE_URL", sqlite_url)
        monkeypatch.setenv("SENDGRID_API_KEY", "SG.sdk")  # the documented short variable
        monkeypatch.delenv("SEGMENT_WRITE_KEY", raising=False)
        created = httpx.post(f"{sendgrid_url}/v3/marketing/field_definitions", json={"name": "Plan",
                             "field_type": "Text"}, headers={"Authorization": "Bearer SG.sdk"})
        assert created.status_code == 200, created.text
        app = build_app(load_settings(str(config)))
        with serve_in_thread(app, lifespan="on") as bridge_url:
            client = Client("sdk-key", host=bridge_url, sync_mode=True)
            client.identify("ada", {"email": "ada@example.com", "first_name": "Ada", "plan": "pro"})
            client.track("ada", "Signed Up", {"email": "ada@example.com"})
            client.flush()
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                contacts = httpx.get(f"{sendgrid_url}/_emulator/contacts").json()["contacts"]
                mail = httpx.get(f"{sendgrid_url}/_emulator/mail").json()["messages"]
                if contacts and mail:
                    break
                time.sleep(0.05)
            seen = httpx.get(f"{sendgrid_url}/_emulator/requests").json()["requests"]
            stored = app.state.bridge.journal.run_sync(lambda conn: conn.execute(
                "SELECT destination, status, reason FROM outcomes").fetchall())
    assert contacts, ([(r["method"], r["path"], r["status"]) for r in seen], stored)
    assert [(c["email"], c["first_name"], c["custom_fields"]) for c in contacts] == [
        ("ada@example.com", "Ada", {"Plan": "pro"})]
    assert len(mail) == 1
    sent = mail[0]["request"]
    assert sent["template_id"] == "d-5f1e0c3a2b8d4e6f9a7b1c2d3e4f5a6b"
    assert sent["personalizations"][0]["to"] == [{"email": "ada@example.com"}]
    assert sent["personalizations"][0]["custom_args"]["segment_user_id"] == "ada"
