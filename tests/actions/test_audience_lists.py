"""Sync Audience without Segment's createAudience: sgbridge finds or creates the audience's list."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.actions.harness import actions_bridge, write_config

pytestmark = pytest.mark.anyio


def _config(path: Path, settings: str) -> str:
    return write_config(path, '[[actions.audiences.subscriptions]]\naction = "syncAudience"', name="audiences",
                        destination="sendgrid-audiences", settings=settings)


def _audience(n: int, email: str, key: str, member: bool) -> dict[str, Any]:
    """An identify as Engage sends it, without the list id only Segment's createAudience would add."""
    return {"type": "identify", "userId": f"u-{email}", "messageId": f"aud-{n}",
            "traits": {"email": email, key: member},
            "context": {"personas": {"computation_class": "audience", "computation_key": key}}}


async def _lists(h: Any) -> dict[str, dict[str, Any]]:
    return {item["name"]: item for item in (await h.emulator("lists"))["lists"]}


async def test_lists_are_created_once_and_follow_membership(tmp_path: Path, sqlite_url: str,
                                                            monkeypatch: Any) -> None:
    config = _config(tmp_path / "c.toml", ", createAudienceLists = true")
    async with actions_bridge(config, sqlite_url, monkeypatch) as h:
        existing = await h.sendgrid.post("/v3/marketing/lists", json={"name": "vip"},
                                         headers={"Authorization": "Bearer SG.test-key"})
        await h.send(_audience(1, "ann@example.com", "churn_risk", True),
                     _audience(2, "bob@example.com", "churn_risk", True),
                     _audience(3, "cy@example.com", "vip", True))
        await h.settled(3, "audiences")
        await h.send(_audience(4, "bob@example.com", "churn_risk", False))
        await h.settled(4, "audiences")
        await h.sendgrid.post("/_emulator/jobs/run")
        lists = await _lists(h)
        contacts = {c["id"]: c["email"] for c in (await h.emulator("contacts"))["contacts"]}
        creates = [r for r in (await h.emulator("requests?method=POST&path=/v3/marketing/lists"))["requests"]]
    assert set(lists) == {"churn_risk", "vip"}
    assert lists["vip"]["id"] == existing.json()["id"]  # found by name, not created again
    assert {contacts[c] for c in lists["churn_risk"]["contact_ids"]} == {"ann@example.com"}
    assert {contacts[c] for c in lists["vip"]["contact_ids"]} == {"cy@example.com"}
    assert len(creates) == 2  # the test's own "vip", and "churn_risk" once for three events


async def test_without_the_setting_events_are_refused_as_segment_does(tmp_path: Path, sqlite_url: str,
                                                                      monkeypatch: Any) -> None:
    config = _config(tmp_path / "c.toml", "")
    async with actions_bridge(config, sqlite_url, monkeypatch) as h:
        await h.send(_audience(1, "ann@example.com", "churn_risk", True))
        await h.settled(1, "audiences")
        lists = await _lists(h)
        dead = h.app.state.bridge.journal.dead_letters("audiences", 10)
    assert lists == {}
    assert "external_audience_id" in dead[0]["reason"]


async def test_ordinary_events_under_the_default_trigger_are_dropped_not_rejected(tmp_path: Path, sqlite_url: str,
                                                                                   monkeypatch: Any) -> None:
    """Segment's default trigger (every identify and track) also takes events that are no audience change."""
    config = _config(tmp_path / "c.toml", "")
    async with actions_bridge(config, sqlite_url, monkeypatch) as h:
        await h.send({"type": "identify", "userId": "u1", "messageId": "plain-1", "traits": {"email": "a@x.com"}},
                     {"type": "track", "userId": "u1", "messageId": "plain-2", "event": "Signed Up"},
                     _audience(3, "ann@example.com", "churn_risk", True))
        await h.settled(3, "audiences")
        journal = h.app.state.bridge.journal
        dead = journal.dead_letters("audiences", 10)
        outcomes = journal.stats()["outcomes"]
    assert [d["reason"] for d in dead if "external_audience_id" not in d["reason"]] == []
    assert len(dead) == 1  # the audience event without a list id, refused as Segment refuses it
    assert outcomes.get("audiences:dropped") == 2
