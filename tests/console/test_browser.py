"""The console in a real browser: Debian's chromium driven by Playwright (the system browser, no
download), against sgbridge served by uvicorn on a real port, fed through its real endpoints.

Set SGBRIDGE_CONSOLE_SCREENSHOTS=<folder> to save the screenshots docs/console/ shows."""

from __future__ import annotations

import base64
import os
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from sgbridge.console.users import Users
from sgbridge.emulators.segment import create_segment_emulator
from sgbridge.emulators.serving import serve_in_thread
from tests.conftest import signed
from tests.console.helpers import PASSWORD

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
if CHROMIUM is None and os.environ.get("CI") == "true":
    raise RuntimeError("the console's browser tests need Debian's chromium (apt-get install chromium)")
playwright_api = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium (apt-get install chromium)")

CONFIG = """
[segment_inbound]
write_keys = ["in-key"]

[[workflows]]
name = "recovery"
trigger = 'type = "track" and event = "Cart Abandoned"'

[[workflows.steps]]
wait = "2h"
"""


def _sendgrid_event(i: int, **extra: Any) -> dict[str, Any]:
    return {"email": f"user{i}@example.com", "timestamp": 1_764_000_000 + i, "event": "delivered",
            "sg_event_id": f"browser-event-{i:04d}", "sg_message_id": f"msg-{i}.filter", **extra}


@pytest.fixture
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, keypair: Any) -> Iterator[dict[str, Any]]:
    from sgbridge.app import build_app
    from sgbridge.settings import load_settings

    config = tmp_path / "sgbridge.toml"
    config.write_text(CONFIG)
    segment_app = create_segment_emulator(["wk"])
    with serve_in_thread(segment_app) as segment_url:
        for name, value in {"SENDGRID_WEBHOOK_PUBLIC_KEY": keypair.public_key_base64, "SEGMENT_WRITE_KEY": "wk",
                            "SEGMENT_ENDPOINT": segment_url, "SGBRIDGE_DATABASE_URL": f"sqlite:///{tmp_path / 'j.db'}",
                            "SGBRIDGE_WAREHOUSE__ENABLED": "false",
                            "SGBRIDGE_DELIVERY__BACKOFF_INITIAL_SECONDS": "0.05"}.items():
            monkeypatch.setenv(name, value)
        app = build_app(load_settings(str(config)))
        bridge = app.state.bridge
        users = Users(bridge.journal, bridge.settings.console)
        users.add("olga", "operator", PASSWORD)
        users.add("vic", "viewer", PASSWORD)
        with serve_in_thread(app, lifespan="on") as url:
            yield {"url": url, "app": app, "keypair": keypair, "segment": segment_app.state.emulator.state}


def _post_sendgrid(url: str, keypair: Any, events: list[dict[str, Any]]) -> None:
    post = signed(keypair, events)
    response = httpx.post(f"{url}/webhooks/sendgrid", content=post.body, headers=post.headers)
    assert response.status_code == 200, response.text


def _wait(check: Any, what: str, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _shot(page: Any, name: str) -> None:
    folder = os.environ.get("SGBRIDGE_CONSOLE_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)


def test_the_console_in_chromium(served: dict[str, Any]) -> None:
    url, app, keypair = served["url"], served["app"], served["keypair"]
    journal = app.state.bridge.journal
    events = [_sendgrid_event(i) for i in range(20)]
    events.append(_sendgrid_event(99, huge="x" * 40_000))  # over Segment's 32 KB: a dead letter
    _post_sendgrid(url, keypair, events)
    basic = "Basic " + base64.b64encode(b"in-key:").decode()
    track = httpx.post(f"{url}/v1/track", headers={"Authorization": basic}, json={
        "type": "track", "event": "Cart Abandoned", "userId": "shopper-1", "messageId": "cart-1"})
    assert track.status_code == 200, track.text
    _wait(lambda: served["segment"].accepted >= 20, "the events in Segment")
    _wait(lambda: journal.dead_letters(), "the dead letter")
    _wait(lambda: journal.run_sync(lambda c: c.execute("SELECT id FROM wf_runs WHERE state = 'waiting'").fetchone()),
          "the waiting run")

    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        dialogs: list[str] = []
        page.on("dialog", lambda d: (dialogs.append(d.message), d.accept()))

        # login: every page sends you there; a wrong password is refused
        page.goto(f"{url}/ui/events")
        assert "/ui/login" in page.url
        page.fill("input[name=name]", "olga")
        page.fill("input[name=password]", "a wrong password")
        page.click("button[type=submit]")
        assert "Wrong user name or password" in page.inner_text("[role=alert]")
        _shot(page, "login")
        page.fill("input[name=name]", "olga")
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(re.compile(r".*/ui/events$"))  # back where it was going
        assert "olga (operator)" in page.inner_text("header")

        # the overview: traffic in and out, per destination
        page.goto(f"{url}/ui/")
        row = page.locator("#destinations tr[data-destination=segment]")
        assert row.count() == 1 and "svg" in row.inner_html()
        _shot(page, "overview")

        # search by sg_event_id, then the event page: stored form, bytes, its path and attempts
        page.goto(f"{url}/ui/events")
        page.fill("input[name=q]", "browser-event-0007")
        page.click("form.search button")
        rows = page.locator("#events tbody tr")
        assert rows.count() == 1 and "browser-event-0007" in rows.inner_text()
        _shot(page, "events")
        rows.locator("a").first.click()
        page.wait_for_url(re.compile(r".*/ui/events/\d+$"))
        path = page.inner_text("#path")
        assert "segment" in path and "delivered" in path
        assert "browser-event-0007" in page.inner_text("#raw")
        assert "user7@example.com" in page.inner_text("#stored")
        assert "Email Delivered" in page.content()  # the Segment call sgbridge made of it
        assert page.locator("details.attempt").count() >= 1
        _shot(page, "event")

        # dead letters: the oversized event, replayed by an operator
        page.goto(f"{url}/ui/dead-letters")
        dead = page.locator("#dead-letters tbody tr")
        assert dead.count() == 1 and "32" in dead.inner_text()
        _shot(page, "dead-letters")
        dead.locator("input[type=checkbox]").check()
        page.click("button[value=selected]")
        assert "Queued 1 dead letter(s)" in page.inner_text("[role=status]")
        status = journal.run_sync(lambda c: c.execute("SELECT status, attempts FROM outcomes").fetchall())
        assert len(status) == 1 and status[0][0] in ("replay_requested", "rejected")

        # workflow runs: the waiting run, cancelled
        page.goto(f"{url}/ui/runs")
        assert "recovery" in page.inner_text("#timers")
        page.locator("#runs tbody tr a").first.click()
        assert page.inner_text("#run-state") == "waiting"
        _shot(page, "run")
        page.click("text=Cancel run")
        assert page.inner_text("#run-state") == "cancelled"
        assert dialogs and "Cancel run" in dialogs[-1]
        state = journal.run_sync(lambda c: c.execute("SELECT state FROM wf_runs").fetchone()[0])
        assert state == "cancelled"

        # the live tail: a new event appears without a reload, and the filter holds others back
        page.goto(f"{url}/ui/tail")
        page.fill("input[name=filter]", "browser-event-05")
        page.click("#tail-filter button")
        page.wait_for_function("document.getElementById('tail-status').textContent === 'live'")
        _post_sendgrid(url, keypair, [_sendgrid_event(500), _sendgrid_event(600)])
        page.wait_for_selector("#tail tbody tr:has-text('browser-event-0500')", timeout=15_000)
        assert "browser-event-0600" not in page.inner_text("#tail")
        _shot(page, "tail")

        # the configuration, and a viewer who may look but not replay
        page.goto(f"{url}/ui/config")
        assert "in-key" not in page.inner_text("#config")
        page.click("header button")  # log out
        page.wait_for_url(re.compile(r".*/ui/login$"))
        page.fill("input[name=name]", "vic")
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.goto(f"{url}/ui/dead-letters")
        assert page.locator("button[value=selected]").count() == 0
        browser.close()
