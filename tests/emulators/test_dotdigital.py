"""Dotdigital emulator, driven over HTTP as Segment's Dotdigital destinations drive the real API.

The fixture replay sends the exact requests of ../shared/fixtures/peers/segment-action-destinations/
dotdigital*/ and checks the emulator answers what those fixtures say the real API answered
(status codes and the fields Segment's code reads: contactId, lists, messageId...).
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from sgbridge.emulators.dotdigital import create_dotdigital_emulator
from sgbridge.emulators.faults import EmulatedConnectionDrop

pytestmark = pytest.mark.anyio

FIXTURES = Path(__file__).resolve().parents[2] / ".." / "shared" / "fixtures" / "peers" / "segment-action-destinations"
AUTH = "Basic " + base64.b64encode(b"api_username:api_password").decode()
R1 = "https://r1-api.dotdigital.com"
START = 1_699_999_980.0  # a multiple of 60


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def app(clock: Clock) -> Starlette:
    return create_dotdigital_emulator({"api_username": "api_password"}, job_delay_seconds=5, clock=clock,
                                      fault_seed=3)


@pytest.fixture
async def client(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=R1,
                                 headers={"Authorization": AUTH}) as c:
        yield c


async def seed(client: httpx.AsyncClient) -> None:
    for path, rows in (
        ("/_emulator/lists", [{"id": 123456, "name": "Segment audience"}]),
        ("/_emulator/data-fields", [{"name": "FIRSTNAME"}, {"name": "LASTNAME"}, {"name": "AGE", "type": "Numeric"},
                                    {"name": "VIP", "type": "Boolean"}, {"name": "BIRTHDAY", "type": "Date"}]),
        ("/_emulator/programs", [{"id": 456, "name": "Welcome"}, {"id": 457, "name": "Old", "status": "Draft"}]),
        ("/_emulator/campaigns", [{"id": 123456, "name": "Newsletter"}]),
    ):
        assert (await client.post(path, json=rows)).status_code == 200


def load(folder: str) -> list[dict[str, Any]]:
    directory = FIXTURES / folder
    if not directory.is_dir():
        pytest.skip(f"fixtures not available: {directory}")
    return [json.loads(p.read_text()) | {"_file": p.name} for p in sorted(directory.glob("*.json"))]


def path_of(url: str) -> str:
    return httpx.URL(url).raw_path.decode()


# -- the Segment fixtures, replayed ----------------------------------------------------------


@pytest.mark.parametrize("folder", ["dotdigital", "dotdigital-audiences"])
async def test_segment_fixture_requests_get_the_answers_segment_expects(client: httpx.AsyncClient,
                                                                       folder: str) -> None:
    await seed(client)
    cases = [c for c in load(folder) if c.get("expected_requests")]
    assert cases
    for case in cases:
        contact_id = None
        for i, expected in enumerate(case["expected_requests"]):
            if expected["method"] in ("GET", "DELETE") and "/contacts/v3/" in expected["url"]:
                # Reads and deletes of a contact need one: create it as the earlier action would have.
                ident = expected["url"].split("/contacts/v3/")[1]
                await client.patch(f"/contacts/v3/{ident}", json={})
            url, body = path_of(expected["url"]), expected.get("json")
            if contact_id is not None:
                # Segment's code sends the contactId the previous answer gave (the fixture's mock said "123").
                url = url.replace("/contacts/123", f"/contacts/{contact_id}")
                body = json.loads(json.dumps(body).replace('["123"]', f'["{contact_id}"]'))
            response = await client.request(expected["method"], url, json=body)
            if response.headers.get("content-type") == "application/json" and isinstance(response.json(), dict):
                contact_id = response.json().get("contactId", contact_id)
            mocks = [m for m in case.get("mock_responses", []) if m.get("method", expected["method"])
                     == expected["method"]]
            where = f"{case['_file']} request {i} {expected['method']} {expected['url']}"
            assert response.status_code < 300, (where, response.text)
            if mocks and "status" in mocks[0] and expected["method"] != "PATCH":
                # Segment's mocks are test doubles; where Dotdigital's own spec gives another 2xx the spec
                # wins: POST /v2/campaigns/send* 202 ApiCampaignSend (mock 200); DELETE /contacts/v3/... 200
                # {"contactId"} (mock 204).
                spec = {"/v2/campaigns/send": 202, "DELETE /contacts/v3/": 200}
                wanted = next((code for key, code in spec.items() if key in f"{expected['method']} {url}"),
                              mocks[0]["status"])
                assert response.status_code == wanted, where
            if expected["method"] == "PATCH":
                assert response.status_code in (200, 201), where
                assert isinstance(response.json()["contactId"], int), where  # enrolContact reads it
            if "/cpaas/messages" in expected["url"]:
                assert response.status_code == 201 and response.json()["messageId"], where
            if expected["url"].endswith("/v2/data-fields/"):
                assert {f["name"] for f in response.json()} >= {"FIRSTNAME", "AGE"}, where


async def test_upsert_then_remove_from_list_as_segment_does(client: httpx.AsyncClient) -> None:
    await seed(client)
    created = await client.patch("/contacts/v3/email/test@example.com?merge-option=overwrite", json={
        "identifiers": {"email": "test@example.com"},
        "channelProperties": {"email": {"emailType": "html", "optInType": "single"}}, "lists": [123456],
        "dataFields": {"FIRSTNAME": "John", "AGE": "30"}})
    assert created.status_code == 201
    body = created.json()
    assert body["lists"] == [{"id": 123456, "name": "Segment audience", "status": "subscribed"}]
    assert body["dataFields"]["AGE"] == 30 and body["dataFields"]["FIRSTNAME"] == "John"
    assert body["channelProperties"]["email"] == {"emailType": "Html", "optInType": "Single", "status": "subscribed"}
    again = await client.patch("/contacts/v3/email/TEST@example.com",
                               json={"identifiers": {"email": "test@example.com"}})
    assert again.status_code == 200 and again.json()["contactId"] == body["contactId"]
    got = await client.get("/contacts/v3/email/test@example.com")
    assert got.json()["lists"][0]["id"] == 123456
    removed = await client.delete(f"/v2/address-books/123456/contacts/{body['contactId']}")
    assert removed.status_code == 204
    assert (await client.get("/contacts/v3/email/test@example.com")).json()["lists"] == []
    lists = (await client.get("/_emulator/lists")).json()["lists"]
    assert lists[0]["contact_ids"] == []


# -- contacts v3 behaviour --------------------------------------------------------------------


async def test_unknown_contact_is_404_with_v3_error_shape(client: httpx.AsyncClient) -> None:
    response = await client.get("/contacts/v3/email/unknown@example.com")
    assert response.status_code == 404
    assert response.json() == {"errorCode": "contacts:contactNotFound",
                               "description": "The following contacts could not be found",
                               "details": [{"item": "unknown@example.com",
                                            "description": "Not found using the identifier 'email'"}]}


async def test_invalid_identifiers_and_fields_are_400(client: httpx.AsyncClient) -> None:
    await seed(client)
    bad_email = await client.patch("/contacts/v3/email/not-an-email", json={})
    assert bad_email.status_code == 400 and bad_email.json()["errorCode"] == "contacts:invalidId"
    assert "'not-an-email' is invalid for the identifier 'email'" in bad_email.json()["description"]
    bad_mobile = await client.get("/contacts/v3/mobileNumber/12ab")
    assert bad_mobile.status_code == 400 and bad_mobile.json()["errorCode"] == "contacts:invalidId"
    unknown_field = await client.patch("/contacts/v3/email/a@example.com", json={"dataFields": {"NOPE": "x"}})
    assert unknown_field.status_code == 400
    assert unknown_field.json()["details"][0]["item"] == "NOPE"
    wrong_type = await client.patch("/contacts/v3/email/a@example.com", json={"dataFields": {"AGE": "old"}})
    assert wrong_type.status_code == 400 and wrong_type.json()["errorCode"] == "contacts:invalidDataFields"
    unknown_list = await client.patch("/contacts/v3/email/a@example.com", json={"lists": [999]})
    assert unknown_list.status_code == 400 and unknown_list.json()["details"] == [
        {"item": "999", "description": "List not found"}]
    bad_option = await client.patch("/contacts/v3/email/a@example.com?merge-option=merge", json={})
    assert bad_option.status_code == 400
    assert (await client.get("/_emulator/contacts")).json()["total"] == 0  # nothing was written


async def test_merge_options(client: httpx.AsyncClient) -> None:
    await seed(client)
    url = "/contacts/v3/email/m@example.com"
    await client.patch(url, json={"dataFields": {"FIRSTNAME": "Ann", "LASTNAME": "Old"}})
    await client.patch(url + "?merge-option=overwrite-if-empty", json={"dataFields": {"FIRSTNAME": "Bea", "AGE": 4}})
    fields = (await client.get(url)).json()["dataFields"]
    assert fields["FIRSTNAME"] == "Ann" and fields["AGE"] == 4
    await client.patch(url + "?merge-option=overwrite-if-not-empty", json={"dataFields": {"FIRSTNAME": "",
                                                                                          "LASTNAME": "New"}})
    fields = (await client.get(url)).json()["dataFields"]
    assert fields["FIRSTNAME"] == "Ann" and fields["LASTNAME"] == "New"
    await client.patch(url, json={"dataFields": {"FIRSTNAME": None}})
    assert (await client.get(url)).json()["dataFields"]["FIRSTNAME"] is None


async def test_identifier_conflict_is_409(client: httpx.AsyncClient) -> None:
    await client.patch("/contacts/v3/mobileNumber/447700900001", json={})
    conflict = await client.patch("/contacts/v3/email/c@example.com",
                                  json={"identifiers": {"email": "c@example.com", "mobileNumber": "+447700900001"}})
    assert conflict.status_code == 409 and conflict.json()["errorCode"] == "contacts:idAlreadyExists"


async def test_resubscribe_with_and_without_challenge(client: httpx.AsyncClient) -> None:
    url = "/contacts/v3/email/r@example.com"
    unsub = {"channelProperties": {"email": {"status": "unsubscribed"}}}
    await client.patch(url, json=unsub)
    assert (await client.get(url)).json()["channelProperties"]["email"]["status"] == "unsubscribed"
    challenged = await client.patch(url, json={"channelProperties": {"email": {
        "status": "subscribed", "resubscribeOptions": {"resubscribeWithNoChallenge": False, "preferredLocale": "en-EN",
                                                       "redirectUrlAfterChallenge": "https://example.com/welcome"}}}})
    assert challenged.json()["channelProperties"]["email"]["status"] == "pendingOptIn"
    challenges = (await client.get("/_emulator/challenges")).json()["challenges"]
    assert challenges[0]["email"] == "r@example.com" and challenges[0]["preferredLocale"] == "en-EN"
    await client.patch(url, json=unsub)
    direct = await client.patch(url, json={"channelProperties": {"email": {
        "status": "subscribed", "resubscribeOptions": {"resubscribeWithNoChallenge": True}}}})
    assert direct.json()["channelProperties"]["email"]["status"] == "subscribed"


async def test_mobile_contact_and_audience_delete(client: httpx.AsyncClient) -> None:
    created = await client.patch("/contacts/v3/mobileNumber/+1234567890", json={
        "identifiers": {"mobileNumber": "+1234567890"}, "channelProperties": {"sms": {"status": "subscribed"}}})
    assert created.status_code == 201
    assert created.json()["identifiers"] == {"mobileNumber": "1234567890"}
    assert created.json()["channelProperties"]["sms"] == {"countryCode": "US", "status": "subscribed"}
    deleted = await client.delete("/contacts/v3/mobileNumber/+1234567890")
    assert deleted.status_code == 200 and deleted.json() == {"contactId": created.json()["contactId"]}
    assert (await client.get("/contacts/v3/mobileNumber/1234567890")).status_code == 404


# -- v2 ---------------------------------------------------------------------------------------


async def test_lists_data_fields_and_paging(client: httpx.AsyncClient) -> None:
    made = await client.post("/v2/address-books", json={"name": "Audience A", "visibility": "Private"})
    assert made.status_code == 201 and made.json()["name"] == "Audience A" and isinstance(made.json()["id"], int)
    duplicate = await client.post("/v2/address-books", json={"name": "audience a"})
    assert duplicate.status_code == 400 and "ERROR_ADDRESSBOOK_DUPLICATE" in duplicate.json()["message"]
    page = await client.get("/v2/address-books?select=200&skip=0")
    assert [b["name"] for b in page.json()] == ["Audience A"]
    assert (await client.get("/v2/address-books?select=200&skip=200")).json() == []
    field = await client.post("/v2/data-fields", json={"name": "score", "type": "Numeric"})
    assert field.status_code == 201 and field.json()["name"] == "SCORE"
    assert (await client.post("/v2/data-fields", json={"name": "SCORE"})).json()["message"].endswith(
        "ERROR_NON_UNIQUE_DATAFIELD")
    assert (await client.get("/v2/data-fields")).json() == [
        {"name": "SCORE", "type": "Numeric", "visibility": "Private", "defaultValue": None}]
    missing = await client.delete("/v2/address-books/1/contacts/1")
    assert missing.status_code == 404 and missing.json() == {"message": "Error: ERROR_ADDRESSBOOK_NOT_FOUND"}


async def test_enrolment_is_asynchronous(client: httpx.AsyncClient, clock: Clock) -> None:
    await seed(client)
    contact = (await client.patch("/contacts/v3/email/e@example.com", json={})).json()["contactId"]
    made = await client.post("/v2/programs/enrolments", json={"contacts": [str(contact)], "programId": "456"})
    assert made.status_code == 201
    assert made.json()["status"] == "Processing" and made.json()["contacts"] == [contact]
    clock.now += 6
    assert (await client.get(f"/v2/programs/enrolments/{made.json()['id']}")).json()["status"] == "Finished"
    unknown = await client.post("/v2/programs/enrolments", json={"contacts": [contact], "programId": 9})
    assert unknown.status_code == 404 and unknown.json()["message"] == "Error: ERROR_PROGRAM_NOT_FOUND"
    draft = await client.post("/v2/programs/enrolments", json={"contacts": [contact], "programId": 457})
    assert draft.status_code == 400 and draft.json()["message"].endswith("ERROR_PROGRAM_NOT_ACTIVE")
    programs = (await client.get("/v2/programs?select=200&skip=0")).json()
    assert [(p["id"], p["status"]) for p in programs] == [(456, "Active"), (457, "Draft")]


async def test_campaign_sends_immediate_scheduled_and_optimised(client: httpx.AsyncClient, clock: Clock) -> None:
    await seed(client)
    contact = (await client.patch("/contacts/v3/email/s@example.com", json={})).json()["contactId"]
    now = await client.post("/v2/campaigns/send", json={"campaignID": 123456, "contactIDs": [str(contact)]})
    assert now.status_code == 202 and now.json()["status"] == "Sending"
    later = await client.post("/v2/campaigns/send", json={"campaignID": 123456, "contactIDs": [contact],
                                                          "sendDate": "2023-11-14T23:00:00Z"})
    assert later.json()["status"] == "Scheduled" and later.json()["sendDate"] == "2023-11-14T23:00:00Z"
    sto = await client.post("/v2/campaigns/send-time-optimised", json={"campaignID": 123456,
                                                                       "contactIDs": [contact]})
    assert sto.status_code == 202 and sto.json()["status"] == "Scheduled"
    clock.now += 6
    assert (await client.get(f"/v2/campaigns/send/{now.json()['id']}")).json()["status"] == "Sent"
    assert (await client.get(f"/v2/campaigns/send/{later.json()['id']}")).json()["status"] == "Scheduled"
    assert (await client.post("/_emulator/jobs/run")).json()["ran"] == 2
    sends = (await client.get("/_emulator/sends")).json()["sends"]
    assert [s["sendTimeOptimised"] for s in sends] == [False, False, True]
    unknown = await client.post("/v2/campaigns/send", json={"campaignID": 1, "contactIDs": [contact]})
    assert unknown.status_code == 404 and unknown.json()["message"] == "Error: ERROR_CAMPAIGN_NOT_FOUND"


async def test_transactional_email_and_sms_validation(client: httpx.AsyncClient) -> None:
    ok = await client.post("/v2/email", json={"ToAddresses": ["Jo <jo@example.com>"], "CCAddresses": [],
                                              "BCCAddresses": ["b@example.com"], "Subject": "Hi",
                                              "FromAddress": "from@example.com", "HtmlContent": "<p>x</p>"})
    assert ok.status_code == 200
    bad = await client.post("/v2/email", json={"ToAddresses": ["nope"], "Subject": "Hi",
                                               "FromAddress": "from@example.com", "HtmlContent": "x"})
    assert bad.status_code == 400 and bad.json()["message"].endswith("ERROR_PARAMETER_INVALID")
    emails = (await client.get("/_emulator/emails")).json()["emails"]
    assert len(emails) == 1 and emails[0]["bcc"] == ["b@example.com"] and emails[0]["subject"] == "Hi"
    assert (await client.post("/v2/sms-messages/send-to/441234567890", json={"message": "hey"})).status_code == 204
    assert (await client.post("/v2/sms-messages/send-to/12", json={"message": "hey"})).status_code == 400
    cpaas = await client.post("/cpaas/messages", json={
        "to": {"phoneNumber": "441234567890"}, "body": "hello", "rules": ["sms"],
        "channelOptions": {"sms": {"from": "ACME", "allowUnicode": True}}, "shortenLinks": "on"})
    assert cpaas.status_code == 201
    bad_cpaas = await client.post("/cpaas/messages", json={"to": {"phoneNumber": "x"}, "body": "", "rules": []})
    assert bad_cpaas.status_code == 400 and {d["item"] for d in bad_cpaas.json()["details"]} == {
        "to.phoneNumber", "body", "rules"}
    sms = (await client.get("/_emulator/sms")).json()["sms"]
    assert [(s["kind"], s["to"], s["from"], s["shortenLinks"], s["allowUnicode"]) for s in sms] == [
        ("send-to", "441234567890", None, None, None), ("cpaas", "441234567890", "ACME", "on", True)]


# -- auth, regions, limits, faults -------------------------------------------------------------


async def test_basic_auth(app: Starlette) -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=R1) as anonymous:
        missing = await anonymous.get("/v2/data-fields/")
        wrong = await anonymous.get("/v2/data-fields/", auth=("api_username", "nope"))
    for response in (missing, wrong):
        assert response.status_code == 401
        assert response.json() == {"message": "Authorization has been denied for this request."}


async def test_other_regions_host_is_403_but_account_info_on_r1_answers(clock: Clock) -> None:
    app = create_dotdigital_emulator({"api_username": "api_password"}, region="r2", clock=clock)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=R1, headers={"Authorization": AUTH}) as r1:
        assert (await r1.get("/v2/data-fields/")).status_code == 403
        assert (await r1.get("/v2/data-fields/")).json() == {"message": "Access is denied"}
        info = (await r1.get("/v2/account-info")).json()
        assert {"name": "ApiEndpoint", "type": "String", "value": "https://r2-api.dotdigital.com"} in info["properties"]
    async with httpx.AsyncClient(transport=transport, base_url="https://r2-api.dotdigital.com",
                                 headers={"Authorization": AUTH}) as r2:
        assert (await r2.get("/v2/data-fields/")).status_code == 200
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8767",
                                 headers={"Authorization": AUTH}) as local:
        assert (await local.get("/v2/data-fields/")).status_code == 200


async def test_rate_limit_headers_and_429(clock: Clock) -> None:
    app = create_dotdigital_emulator(None, clock=clock, rate_limits={"high": (2, 60)})
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=R1,
                                 headers={"Authorization": AUTH}) as client:
        first = await client.get("/contacts/v3/email/x@example.com")
        assert first.status_code == 404
        assert (first.headers["X-RateLimit-Scope"], first.headers["X-RateLimit-Limit"],
                first.headers["X-RateLimit-Remaining"], first.headers["X-RateLimit-Reset"]) == ("high", "2", "1", "60")
        await client.get("/contacts/v3/email/x@example.com")
        clock.now += 15
        limited = await client.get("/contacts/v3/email/x@example.com")
        assert limited.status_code == 429
        assert limited.headers["X-RateLimit-Remaining"] == "0" and limited.headers["X-RateLimit-Reset"] == "45"
        assert limited.json()["errorCode"] == "tooManyRequests"
        assert (await client.patch("/contacts/v3/email/x@example.com", json={})).status_code == 201  # medium tier
        sms = await client.post("/v2/sms-messages/send-to/441234567890", json={"message": "x"})
        assert sms.status_code == 204 and "X-RateLimit-Limit" not in sms.headers  # sends are unlimited
        clock.now += 45
        assert (await client.get("/contacts/v3/email/x@example.com")).status_code == 200


async def test_faults(client: httpx.AsyncClient) -> None:
    await client.post("/_emulator/faults", json=[{"status": 503, "count": 1, "path": "/contacts/v3"},
                                                 {"status": 429, "count": 1, "retry_after": 7}])
    failed = await client.patch("/contacts/v3/email/f@example.com", json={})
    assert failed.status_code == 503 and failed.json()["errorCode"] == "emulated:fault"
    limited = await client.get("/v2/data-fields/")
    assert limited.status_code == 429 and limited.headers["X-RateLimit-Reset"] == "7"
    assert (await client.get("/_emulator/contacts")).json()["total"] == 0
    await client.post("/_emulator/faults", json={"status": 500, "process": True})
    lost = await client.patch("/contacts/v3/email/f@example.com", json={})
    assert lost.status_code == 500 and (await client.get("/_emulator/contacts")).json()["total"] == 1
    await client.post("/_emulator/faults", json={"drop": True})
    with pytest.raises(EmulatedConnectionDrop):
        await client.get("/v2/data-fields/")
    recorded = (await client.get("/_emulator/requests?path=/v2/data-fields/")).json()["requests"]
    assert [r["status"] for r in recorded] == [429, "dropped"]
    assert "authorization" not in recorded[0]["headers"]


async def test_reset(client: httpx.AsyncClient) -> None:
    await seed(client)
    await client.patch("/contacts/v3/email/z@example.com", json={})
    await client.post("/_emulator/reset")
    assert (await client.get("/_emulator/contacts")).json()["total"] == 0
    assert (await client.get("/v2/data-fields")).json() == []
