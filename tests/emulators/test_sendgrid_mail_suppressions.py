"""SendGrid emulator: mail send (tsg_mail_v3) and unsubscribe groups / suppressions (tsg_suppressions_v3)."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from sgbridge.emulators.sendgrid import create_sendgrid_emulator

pytestmark = pytest.mark.anyio

KEY = "SG.key"
NOW = 1_700_000_000.0
TEMPLATE = "d-5f1e0c3a2b8d4e6f9a7b1c2d3e4f5a6b"  # one of the emulator's default templates


@pytest.fixture
def app() -> Starlette:
    return create_sendgrid_emulator([KEY], clock=lambda: NOW)


@pytest.fixture
async def client(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://api.sendgrid.com",
                                 headers={"Authorization": f"Bearer {KEY}"}) as c:
        yield c


def message(**extra: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "personalizations": [{"to": [{"email": "ann@example.com", "name": "Ann"}], "custom_args": {"order": "o-1"}}],
        "from": {"email": "shop@example.com"},
        "subject": "Your order",
        "content": [{"type": "text/plain", "value": "Thanks!"}],
    }
    base.update(extra)
    return base


async def sent(client: httpx.AsyncClient, **params: str) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = (await client.get("/_emulator/mail", params=params)).json()["messages"]
    return messages


async def errors_of(response: httpx.Response) -> list[dict[str, Any]]:
    assert response.status_code == 400, response.text
    errors: list[dict[str, Any]] = response.json()["errors"]
    return errors


# -- mail send -----------------------------------------------------------------------------------


async def test_send_answers_202_with_a_message_id_and_records_the_message(client: httpx.AsyncClient) -> None:
    response = await client.post("/v3/mail/send", json=message(
        categories=["receipts"], custom_args={"tenant": "t1"}, asm={"group_id": 7}))
    assert response.status_code == 202 and response.content == b""
    message_id = response.headers["X-Message-Id"]
    assert len(message_id) == 22
    (recorded,) = await sent(client, message_id=message_id)
    assert recorded["categories"] == ["receipts"] and recorded["asm"] == {"group_id": 7}
    (recipient,) = recorded["recipients"]
    assert recipient["email"] == "ann@example.com" and recipient["status"] == "processed"
    assert recipient["custom_args"] == {"tenant": "t1", "order": "o-1"}  # personalization args win and merge
    assert await sent(client, to="ANN@example.com") == [recorded]
    assert await sent(client, category="other") == []


async def test_send_at_may_be_at_most_72_hours_ahead(client: httpx.AsyncClient) -> None:
    in_72h = int(NOW) + 72 * 3600
    ok = await client.post("/v3/mail/send", json=message(send_at=in_72h))
    assert ok.status_code == 202
    (recorded,) = await sent(client)
    assert recorded["recipients"][0]["status"] == "scheduled"
    too_late = await client.post("/v3/mail/send", json=message(send_at=in_72h + 1))
    assert [e["field"] for e in await errors_of(too_late)] == ["send_at"]
    per_personalization = message()
    per_personalization["personalizations"][0]["send_at"] = in_72h + 60
    errors = await errors_of(await client.post("/v3/mail/send", json=per_personalization))
    assert [e["field"] for e in errors] == ["personalizations.0.send_at"]
    assert len(await sent(client)) == 1


async def test_template_must_exist_and_replaces_subject_and_content(client: httpx.AsyncClient) -> None:
    body = {"personalizations": [{"to": [{"email": "a@example.com"}], "dynamic_template_data": {"name": "A"}}],
            "from": {"email": "shop@example.com"}}
    assert (await client.post("/v3/mail/send", json={**body, "template_id": TEMPLATE})).status_code == 202
    unknown = await client.post("/v3/mail/send", json={**body, "template_id": "d-00000000000000000000000000000000"})
    assert [e["field"] for e in await errors_of(unknown)] == ["template_id"]
    untemplated = await errors_of(await client.post("/v3/mail/send", json=body))
    assert {e["field"] for e in untemplated} == {"subject", "content"}
    listed = (await client.get("/v3/templates", params={"generations": "dynamic", "page_size": 10})).json()
    assert TEMPLATE in [t["id"] for t in listed["result"]]


async def test_substitutions_are_refused_with_dynamic_templates(client: httpx.AsyncClient) -> None:
    body = message(template_id=TEMPLATE)
    body["personalizations"][0]["substitutions"] = {"-name-": "Ann"}
    errors = await errors_of(await client.post("/v3/mail/send", json=body))
    assert errors == [{"field": "personalizations.0.substitutions",
                       "message": "Substitutions may not be used with dynamic templating"}]


@pytest.mark.parametrize(
    "mutate,field",
    [
        (lambda m: m["personalizations"][0]["to"].append({"email": "not an address"}), "personalizations.0.to.1.email"),
        (lambda m: m["personalizations"][0].update(cc=[{"email": "ANN@example.com"}]), "personalizations.0.cc"),
        (lambda m: m["personalizations"][0].update(to=[]), "personalizations.0.to"),
        (lambda m: m.update(personalizations=[]), "personalizations"),
        (lambda m: m["from"].update(email="shop"), "from.email"),
        (lambda m: m.update(custom_args={"n": 1}), "custom_args"),
        (lambda m: m.update(custom_args={"big": "x" * 10_001}), "custom_args"),
        (lambda m: m.update(headers={"Subject": "override"}), "headers.Subject"),
        (lambda m: m.update(attachments=[{"content": "not base64!", "filename": "a.txt"}]), "attachments.0.content"),
        (lambda m: m.update(reply_to={"email": "r@example.com"}, reply_to_list=[{"email": "s@example.com"}]),
         "reply_to"),
    ],
)
async def test_documented_mail_rules_are_enforced(client: httpx.AsyncClient, mutate: Any, field: str) -> None:
    body = message()
    assert (await client.post("/v3/mail/send", json=copy.deepcopy(body))).status_code == 202
    mutate(body)
    errors = await errors_of(await client.post("/v3/mail/send", json=body))
    assert field in [e["field"] for e in errors]
    assert len(await sent(client)) == 1


async def test_sandbox_mode_validates_without_sending(client: httpx.AsyncClient) -> None:
    response = await client.post("/v3/mail/send", json=message(mail_settings={"sandbox_mode": {"enable": True}}))
    assert response.status_code == 200 and "X-Message-Id" not in response.headers
    assert await sent(client) == []


async def test_suppressed_recipients_are_accepted_and_dropped(client: httpx.AsyncClient) -> None:
    group = (await client.post("/v3/asm/groups", json={"name": "Newsletter", "description": "weekly"})).json()
    await client.post(f"/v3/asm/groups/{group['id']}/suppressions", json={"recipient_emails": ["g@example.com"]})
    await client.post("/v3/asm/suppressions/global", json={"recipient_emails": ["Global@example.com"]})
    to = [{"email": "global@example.com"}, {"email": "g@example.com"}, {"email": "ok@example.com"}]
    body = message(asm={"group_id": group["id"]})
    body["personalizations"][0]["to"] = to
    assert (await client.post("/v3/mail/send", json=body)).status_code == 202
    bypass = message(mail_settings={"bypass_list_management": {"enable": True}})
    bypass["personalizations"][0]["to"] = to
    assert (await client.post("/v3/mail/send", json=bypass)).status_code == 202
    first, second = await sent(client)
    assert [r["status"] for r in first["recipients"]] == ["dropped", "dropped", "processed"]
    assert first["recipients"][0]["reason"] == "Unsubscribed Address"
    assert [r["status"] for r in second["recipients"]] == ["processed"] * 3


# -- suppressions ----------------------------------------------------------------------------------


async def test_groups_can_be_created_listed_updated_and_deleted(client: httpx.AsyncClient) -> None:
    created = await client.post("/v3/asm/groups", json={"name": "Product news", "description": "d", "is_default": True})
    assert created.status_code == 201
    group = created.json()
    assert group == {"id": 1, "name": "Product news", "description": "d", "is_default": True}
    assert (await client.post("/v3/asm/groups", json={"name": "Product news"})).status_code == 400
    assert (await client.post("/v3/asm/groups", json={"description": "no name"})).status_code == 400
    second = (await client.post("/v3/asm/groups", json={"name": "Offers", "is_default": True})).json()
    listed = (await client.get("/v3/asm/groups")).json()
    assert [(g["name"], g["is_default"], g["unsubscribes"]) for g in listed] == [
        ("Product news", False, 0), ("Offers", True, 0)]  # one default group per account
    only = (await client.get("/v3/asm/groups", params=[("id", str(second["id"]))])).json()
    assert [g["name"] for g in only] == ["Offers"]
    patched = await client.patch(f"/v3/asm/groups/{group['id']}", json={"name": "News"})
    assert patched.status_code == 201 and patched.json()["name"] == "News"
    assert (await client.delete(f"/v3/asm/groups/{group['id']}")).status_code == 204
    assert (await client.get(f"/v3/asm/groups/{group['id']}")).status_code == 404


async def test_group_suppressions_add_list_remove(client: httpx.AsyncClient) -> None:
    group_id = (await client.post("/v3/asm/groups", json={"name": "G"})).json()["id"]
    added = await client.post(f"/v3/asm/groups/{group_id}/suppressions",
                              json={"recipient_emails": ["A@example.com", "b@example.com"]})
    assert added.status_code == 201 and added.json() == {"recipient_emails": ["a@example.com", "b@example.com"]}
    members = await client.get(f"/v3/asm/groups/{group_id}/suppressions")
    assert members.json() == ["a@example.com", "b@example.com"]
    assert (await client.delete(f"/v3/asm/groups/{group_id}/suppressions/a@example.com")).status_code == 204
    assert (await client.get(f"/v3/asm/groups/{group_id}/suppressions")).json() == ["b@example.com"]
    everything = (await client.get("/v3/asm/suppressions")).json()
    assert [(s["email"], s["group_id"], s["created_at"]) for s in everything] == [("b@example.com", group_id, NOW)]
    bad = await client.post(f"/v3/asm/groups/{group_id}/suppressions", json={"recipient_emails": ["nope"]})
    assert bad.status_code == 400


async def test_adding_to_a_missing_group_suppresses_globally(client: httpx.AsyncClient) -> None:
    response = await client.post("/v3/asm/groups/999/suppressions", json={"recipient_emails": ["x@example.com"]})
    assert response.status_code == 201
    found = await client.get("/v3/asm/suppressions/global/x@example.com")
    assert found.json() == {"recipient_email": "x@example.com"}


async def test_global_suppressions_lifecycle_and_unsubscribes_listing(client: httpx.AsyncClient) -> None:
    assert (await client.get("/v3/asm/suppressions/global/a@example.com")).json() == {}
    created = await client.post("/v3/asm/suppressions/global",
                                json={"recipient_emails": ["a@example.com", "b@other.org"]})
    assert created.status_code == 201
    assert (await client.get("/v3/asm/suppressions/global/A@example.com")).json() == {
        "recipient_email": "a@example.com"}
    listing = (await client.get("/v3/suppression/unsubscribes")).json()
    assert listing == [{"created": int(NOW), "email": "a@example.com"}, {"created": int(NOW), "email": "b@other.org"}]
    # The spec's email filter: a prefix of the address, with % as a wildcard.
    filtered = await client.get("/v3/suppression/unsubscribes", params={"email": "%other", "limit": 10})
    assert [r["email"] for r in filtered.json()] == ["b@other.org"]
    assert (await client.get("/v3/suppression/unsubscribes", params={"email": "other"})).json() == []
    later = await client.get("/v3/suppression/unsubscribes", params={"start_time": int(NOW) + 1})
    assert later.json() == []
    too_many = await client.get("/v3/suppression/unsubscribes", params={"limit": 501})
    assert too_many.status_code == 400 and too_many.json()["errors"][0]["field"] == "limit"
    assert (await client.delete("/v3/asm/suppressions/global/a@example.com")).status_code == 204
    assert (await client.get("/v3/asm/suppressions/global/a@example.com")).json() == {}


async def test_every_suppression_list_drops_and_each_bypass_skips_only_its_own(app: Starlette,
                                                                               client: httpx.AsyncClient) -> None:
    from sgbridge.emulators.sendgrid.state import SuppressionEntry

    state = app.state.emulator.state
    state.bounces["bounced@example.com"] = SuppressionEntry(int(NOW), "550 no such user", "5.1.1")
    state.spam_reports["spam@example.com"] = SuppressionEntry(int(NOW), ip="10.0.0.1")
    state.invalid_emails["invalid@example.com"] = SuppressionEntry(int(NOW), "Mail domain mentioned in email "
                                                                   "address is unknown")
    group = (await client.post("/v3/asm/groups", json={"name": "News", "description": "weekly"})).json()
    await client.post(f"/v3/asm/groups/{group['id']}/suppressions", json={"recipient_emails": ["g@example.com"]})
    await client.post("/v3/asm/suppressions/global", json={"recipient_emails": ["global@example.com"]})
    to = ["bounced@example.com", "spam@example.com", "invalid@example.com", "global@example.com", "g@example.com",
          "ok@example.com"]
    outcomes = {}
    for bypass in (None, "bypass_bounce_management", "bypass_spam_management", "bypass_unsubscribe_management"):
        settings = {"mail_settings": {bypass: {"enable": True}}} if bypass else {}
        body = message(asm={"group_id": group["id"]}, **settings)
        body["personalizations"][0]["to"] = [{"email": e} for e in to]
        assert (await client.post("/v3/mail/send", json=body)).status_code == 202
        outcomes[bypass] = {r["email"]: r["reason"] for r in (await sent(client))[-1]["recipients"]}
    assert outcomes[None] == {"bounced@example.com": "Bounced Address", "spam@example.com": "Spam Reporting Address",
                              "invalid@example.com": "Invalid", "global@example.com": "Unsubscribed Address",
                              "g@example.com": "Unsubscribed Address", "ok@example.com": None}
    assert outcomes["bypass_bounce_management"]["bounced@example.com"] is None
    assert outcomes["bypass_spam_management"]["spam@example.com"] is None
    assert outcomes["bypass_spam_management"]["bounced@example.com"] == "Bounced Address"
    # the global list only: a group's unsubscribes still hold
    assert outcomes["bypass_unsubscribe_management"]["global@example.com"] is None
    assert outcomes["bypass_unsubscribe_management"]["g@example.com"] == "Unsubscribed Address"
