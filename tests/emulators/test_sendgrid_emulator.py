"""The SendGrid emulator behaves like SendGrid's v3 API (sendgrid-api.md §3): auth, contacts, lists, fields."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from starlette.applications import Starlette
from tests.emulators.conftest import Clock

from sgbridge.cli import main
from sgbridge.emulators.sendgrid import create_sendgrid_emulator
from sgbridge.emulators.serving import serve_in_thread

pytestmark = pytest.mark.anyio

KEY = "SG.full-access-key"
AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture
def app(clock: Clock) -> Starlette:
    return create_sendgrid_emulator(
        {KEY: None, "SG.mail-only": ["mail.send"]}, job_delay_seconds=5, clock=clock
    )


@pytest.fixture
async def client(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="https://api.sendgrid.com", headers=AUTH) as c:
        yield c


async def upsert(client: httpx.AsyncClient, contacts: list[dict[str, Any]], **body: Any) -> str:
    response = await client.put("/v3/marketing/contacts", json={"contacts": contacts, **body})
    assert response.status_code == 202, response.text
    job_id: str = response.json()["job_id"]
    return job_id


async def finish_jobs(client: httpx.AsyncClient) -> None:
    assert (await client.post("/_emulator/jobs/run")).status_code == 200


async def job(client: httpx.AsyncClient, job_id: str) -> dict[str, Any]:
    response = await client.get(f"/v3/marketing/contacts/imports/{job_id}")
    assert response.status_code == 200
    data: dict[str, Any] = response.json()
    return data


async def create_list(client: httpx.AsyncClient, name: str) -> str:
    response = await client.post("/v3/marketing/lists", json={"name": name})
    assert response.status_code == 201
    list_id: str = response.json()["id"]
    return list_id


async def contact_ids(client: httpx.AsyncClient, *emails: str) -> list[str]:
    quoted = ",".join(f"'{e}'" for e in emails)
    response = await client.post("/v3/marketing/contacts/search", json={"query": f"email IN ({quoted})"})
    return [c["id"] for c in response.json()["result"]]


# -- auth and scopes ---------------------------------------------------------------------------


async def test_missing_and_unknown_keys_get_sendgrids_401(client: httpx.AsyncClient) -> None:
    missing = await client.get("/v3/marketing/lists", headers={"Authorization": ""})
    unknown = await client.get("/v3/marketing/lists", headers={"Authorization": "Bearer SG.nope"})
    basic = await client.get("/v3/marketing/lists", headers={"Authorization": "Basic Zm9vOmJhcg=="})
    assert missing.status_code == unknown.status_code == basic.status_code == 401
    assert missing.json() == {"errors": [{"field": None, "message": "authorization required"}]}
    assert unknown.json()["errors"][0]["message"] == "The provided authorization grant is invalid, expired, or revoked"
    assert "x-ratelimit-limit" not in unknown.headers  # no key, no bucket


async def test_restricted_key_gets_403_outside_its_scopes_and_lists_them(client: httpx.AsyncClient) -> None:
    mail_only = {"Authorization": "Bearer SG.mail-only"}
    forbidden = await client.get("/v3/marketing/lists", headers=mail_only)
    assert forbidden.status_code == 403
    assert forbidden.json() == {"errors": [{"field": None, "message": "access forbidden"}]}
    assert (await client.get("/v3/scopes", headers=mail_only)).json() == {"scopes": ["mail.send"]}
    full = (await client.get("/v3/scopes")).json()["scopes"]
    assert {"mail.send", "marketing.read", "marketing.write", "asm.groups.read"} <= set(full)


async def test_without_configured_keys_any_bearer_key_is_accepted() -> None:
    app = create_sendgrid_emulator()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://api.sendgrid.com") as c:
        ok = await c.get("/v3/marketing/lists", headers={"Authorization": "Bearer anything"})
        empty = await c.get("/v3/marketing/lists", headers={"Authorization": "Bearer "})
    assert (ok.status_code, empty.status_code) == (200, 401)


# -- contacts: the asynchronous upsert job -------------------------------------------------------


async def test_upsert_is_a_job_that_stays_pending_until_its_delay_has_passed(
    client: httpx.AsyncClient, clock: Clock
) -> None:
    job_id = await upsert(client, [{"email": "Ann@Example.com", "first_name": "Ann"}, {"external_id": "u-2"}])
    pending = await job(client, job_id)
    assert pending["status"] == "pending" and "results" not in pending and "finished_at" not in pending
    assert (await client.get("/v3/marketing/contacts/count")).json()["contact_count"] == 0
    clock.advance(4.9)
    assert (await job(client, job_id))["status"] == "pending"
    clock.advance(0.2)
    done = await job(client, job_id)
    assert done["status"] == "completed" and done["job_type"] == "upsert"
    assert done["results"] == {"requested_count": 2, "created_count": 2, "updated_count": 0, "errored_count": 0}
    assert "errors_url" not in done["results"]
    assert done["finished_at"].endswith("Z")
    found = (await client.post("/v3/marketing/contacts/search/emails", json={"emails": ["ann@example.com"]})).json()
    contact = found["result"]["ann@example.com"]["contact"]
    assert (contact["email"], contact["first_name"]) == ("ann@example.com", "Ann")  # e-mails are lower-cased
    assert (await client.get(f"/v3/marketing/contacts/{contact['id']}")).json()["id"] == contact["id"]


async def test_second_upsert_updates_and_leaves_omitted_fields_alone(client: httpx.AsyncClient) -> None:
    await upsert(client, [{"email": "a@example.com", "first_name": "A", "city": "Oslo"}])
    await finish_jobs(client)
    second = await upsert(client, [{"email": "A@EXAMPLE.COM", "last_name": "Z"}])
    await finish_jobs(client)
    assert (await job(client, second))["results"]["updated_count"] == 1
    contacts = (await client.get("/_emulator/contacts")).json()["contacts"]
    assert len(contacts) == 1
    assert (contacts[0]["first_name"], contacts[0]["last_name"], contacts[0]["city"]) == ("A", "Z", "Oslo")


async def test_invalid_emails_reject_the_whole_put_with_the_address_in_the_message(client: httpx.AsyncClient) -> None:
    response = await client.put("/v3/marketing/contacts", json={"contacts": [
        {"email": "good@example.com"}, {"email": "not-an-email"}, {"email": "x@y.com", "alternate_emails": ["bad@"]},
    ]})
    assert response.status_code == 400
    assert response.json()["errors"] == [
        {"field": "contacts.1.email", "message": "email 'not-an-email' is not valid"},
        {"field": "contacts.2.alternate_emails.0", "message": "email 'bad@' is not valid"},
    ]
    assert (await client.get("/_emulator/jobs")).json()["total"] == 0


async def test_invalid_emails_can_instead_be_per_row_job_errors_with_an_errors_url(clock: Clock) -> None:
    app = create_sendgrid_emulator([KEY], job_delay_seconds=0, reject_invalid_emails=False, clock=clock)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://api.sendgrid.com",
                                 headers=AUTH) as c:
        job_id = await upsert(c, [{"email": "good@example.com"}, {"email": "not-an-email"}])
        done = await job(c, job_id)
        assert done["status"] == "errored"
        assert {k: done["results"][k] for k in ("requested_count", "created_count", "errored_count")} == {
            "requested_count": 2, "created_count": 1, "errored_count": 1}
        errors_url = done["results"]["errors_url"]
        assert errors_url.startswith("https://api.sendgrid.com/_emulator/jobs/")
        rows = list(csv.reader(io.StringIO((await c.get(errors_url)).text)))
        assert rows[0] == ["row", "identifiers", "error"]
        assert rows[1][0] == "1" and "not-an-email" in rows[1][2]
        all_bad = await job(c, await upsert(c, [{"email": "nope"}]))
        assert all_bad["status"] == "failed"


async def test_every_row_needs_an_identifier(client: httpx.AsyncClient) -> None:
    response = await client.put("/v3/marketing/contacts", json={"contacts": [{"first_name": "No id"}]})
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "contacts.0"


async def test_updating_needs_all_existing_identifiers(client: httpx.AsyncClient) -> None:
    await upsert(client, [{"email": "a@example.com", "external_id": "u-1"}, {"email": "b@example.com"}])
    await finish_jobs(client)
    only_email = await upsert(client, [{"email": "a@example.com", "first_name": "X"}])
    conflict = await upsert(client, [{"email": "b@example.com", "external_id": "u-1"}])
    complete = await upsert(client, [{"email": "a@example.com", "external_id": "u-1", "first_name": "Y"}])
    adds_id = await upsert(client, [{"email": "b@example.com", "anonymous_id": "anon-b"}])
    await finish_jobs(client)
    assert (await job(client, only_email))["status"] == "failed"
    assert (await job(client, conflict))["status"] == "failed"
    assert (await job(client, complete))["results"]["updated_count"] == 1
    assert (await job(client, adds_id))["status"] == "completed"
    by_anon = await client.post("/v3/marketing/contacts/search", json={"query": "anonymous_id = 'anon-b'"})
    assert [c["email"] for c in by_anon.json()["result"]] == ["b@example.com"]
    names = {c["email"]: c["first_name"] for c in (await client.get("/_emulator/contacts")).json()["contacts"]}
    assert names == {"a@example.com": "Y", "b@example.com": ""}


async def test_custom_fields_must_exist_and_match_their_type(client: httpx.AsyncClient) -> None:
    ids = {}
    for name, kind in (("tier", "Text"), ("orders", "Number"), ("birthday", "Date")):
        created = await client.post("/v3/marketing/field_definitions", json={"name": name, "field_type": kind})
        assert created.status_code == 200
        ids[name] = created.json()["id"]
    assert ids == {"tier": "e1_T", "orders": "e2_N", "birthday": "e3_D"}
    unknown = await client.put("/v3/marketing/contacts", json={
        "contacts": [{"email": "a@example.com", "custom_fields": {"e9_T": "x", "w1": "y"}}]})
    assert unknown.status_code == 400
    assert unknown.json()["errors"] == [
        {"field": "custom_fields", "message": "invalid custom field ids supplied - e9_T,w1"}]
    good = await upsert(client, [{"email": "a@example.com",
                                  "custom_fields": {"e1_T": "gold", "e2_N": "42", "e3_D": "01/24/2024"}}])
    wrong = await upsert(client, [{"email": "b@example.com", "custom_fields": {"e2_N": "many"}}])
    await finish_jobs(client)
    assert (await job(client, good))["status"] == "completed"
    assert (await job(client, wrong))["status"] == "failed"
    contact = (await client.get("/_emulator/contacts")).json()["contacts"][0]
    assert contact["custom_fields"] == {"tier": "gold", "orders": 42, "birthday": "2024-01-24T00:00:00Z"}


async def test_field_definitions_list_reserved_fields_and_refuse_duplicates(client: httpx.AsyncClient) -> None:
    assert (await client.post("/v3/marketing/field_definitions",
                              json={"name": "Tier", "field_type": "Text"})).status_code == 200
    for name in ("tier", "first_name", "2bad"):
        refused = await client.post("/v3/marketing/field_definitions", json={"name": name, "field_type": "Text"})
        assert refused.status_code == 400, name
    listing = (await client.get("/v3/marketing/field_definitions")).json()
    assert [f["name"] for f in listing["custom_fields"]] == ["Tier"]
    reserved = {f["id"]: f["name"] for f in listing["reserved_fields"]}
    assert reserved["_rf0_T"] == "first_name" and reserved["_rf23_T"] == "contact_id"
    assert (await client.delete("/v3/marketing/field_definitions/e1_T")).status_code == 204
    assert (await client.get("/v3/marketing/field_definitions")).json()["custom_fields"] == []


async def test_delete_contacts_is_a_job_too(client: httpx.AsyncClient) -> None:
    await upsert(client, [{"email": "a@example.com"}, {"email": "b@example.com"}])
    await finish_jobs(client)
    ids = await contact_ids(client, "a@example.com")
    neither = await client.delete("/v3/marketing/contacts")
    assert neither.status_code == 400
    deleting = await client.delete("/v3/marketing/contacts", params={"ids": ",".join(ids)})
    assert deleting.status_code == 202
    assert (await client.get("/v3/marketing/contacts/count")).json()["contact_count"] == 2
    await finish_jobs(client)
    done = await job(client, deleting.json()["job_id"])
    assert (done["job_type"], done["results"]["deleted_count"]) == ("delete", 1)
    assert (await client.get(f"/v3/marketing/contacts/{ids[0]}")).status_code == 404
    assert (await client.get("/v3/marketing/contacts/count")).json() == {"contact_count": 1, "billable_count": 1}


# -- search --------------------------------------------------------------------------------------


async def test_sgql_search_by_each_identifier_with_and_or(client: httpx.AsyncClient) -> None:
    await upsert(client, [
        {"email": "a@example.com", "external_id": "ext-a", "phone_number_id": "+353123456789"},
        {"email": "b@example.com", "anonymous_id": "anon-b", "first_name": "Bea"},
        {"email": "c@example.com"},
    ])
    await finish_jobs(client)

    async def emails(query: str) -> list[str]:
        response = await client.post("/v3/marketing/contacts/search", json={"query": query})
        assert response.status_code == 200, response.text
        assert response.json()["contact_count"] == len(response.json()["result"])
        return sorted(c["email"] for c in response.json()["result"])

    assert await emails("email = 'c@example.com'") == ["c@example.com"]
    assert await emails("email = 'C@EXAMPLE.COM'") == []  # stored lower-case, compared exactly
    assert await emails("lower(email) = 'c@example.com'") == ["c@example.com"]
    assert await emails("email IN ('a@example.com','c@example.com')") == ["a@example.com", "c@example.com"]
    assert await emails("external_id IN ('ext-a') OR anonymous_id IN ('anon-b')") == ["a@example.com", "b@example.com"]
    assert await emails("phone_number_id = '+353123456789' AND email = 'a@example.com'") == ["a@example.com"]
    assert await emails("phone_number_id = '+353123456789' AND email = 'b@example.com'") == []
    assert await emails("first_name = 'Bea' AND (email LIKE 'b%' OR email = 'x')") == ["b@example.com"]
    bad = await client.post("/v3/marketing/contacts/search", json={"query": "email ~ 'x'"})
    assert bad.status_code == 400 and bad.json()["errors"][0]["field"] == "query"


async def test_search_returns_only_the_first_50_matches(client: httpx.AsyncClient) -> None:
    await upsert(client, [{"email": f"user{i}@example.com"} for i in range(60)])
    await finish_jobs(client)
    found = (await client.post("/v3/marketing/contacts/search", json={"query": "email LIKE 'user%'"})).json()
    assert (len(found["result"]), found["contact_count"]) == (50, 60)


async def test_search_by_emails_matches_alternates_and_reports_misses(client: httpx.AsyncClient) -> None:
    await upsert(client, [{"email": "a@example.com", "alternate_emails": ["a.alt@example.com"]}])
    await finish_jobs(client)
    response = await client.post("/v3/marketing/contacts/search/emails",
                                 json={"emails": ["A.ALT@example.com", "zz@example.com"]})
    assert response.status_code == 200
    result = response.json()["result"]
    assert result["a.alt@example.com"]["contact"]["email"] == "a@example.com"
    assert result["zz@example.com"] == {"error": "contact not found"}
    none = await client.post("/v3/marketing/contacts/search/emails", json={"emails": ["zz@example.com"]})
    invalid = await client.post("/v3/marketing/contacts/search/emails", json={"emails": ["zz"]})
    assert (none.status_code, invalid.status_code) == (404, 400)


# -- lists ---------------------------------------------------------------------------------------


async def test_list_ids_add_members_and_unknown_lists_are_refused(client: httpx.AsyncClient) -> None:
    list_id = await create_list(client, "Customers")
    missing = await client.put("/v3/marketing/contacts", json={
        "list_ids": ["3a1c7e52-0000-4000-8000-000000000000"], "contacts": [{"email": "a@example.com"}]})
    assert missing.status_code == 404
    await upsert(client, [{"email": "a@example.com"}, {"email": "b@example.com"}], list_ids=[list_id])
    await finish_jobs(client)
    assert (await client.get(f"/v3/marketing/lists/{list_id}/contacts/count")).json()["contact_count"] == 2
    got = (await client.get(f"/v3/marketing/lists/{list_id}", params={"contact_sample": "true"})).json()
    assert got["contact_count"] == 2 and list_id in got["contact_sample"]["list_ids"]
    in_list = await client.post("/v3/marketing/contacts/search", json={"query": f"CONTAINS(list_ids, '{list_id}')"})
    assert in_list.json()["contact_count"] == 2


async def test_removing_list_members_is_a_job_and_keeps_the_contacts(client: httpx.AsyncClient, clock: Clock) -> None:
    list_id = await create_list(client, "Audience")
    await upsert(client, [{"email": f"{n}@example.com"} for n in "abc"], list_ids=[list_id])
    await finish_jobs(client)
    ids = await contact_ids(client, "a@example.com", "b@example.com")
    removal = await client.delete(f"/v3/marketing/lists/{list_id}/contacts", params={"contact_ids": ",".join(ids)})
    assert removal.status_code == 202 and "job_id" in removal.json()
    assert (await client.get(f"/v3/marketing/lists/{list_id}/contacts/count")).json()["contact_count"] == 3
    clock.advance(5)
    assert (await client.get(f"/v3/marketing/lists/{list_id}/contacts/count")).json()["contact_count"] == 1
    assert (await client.get("/v3/marketing/contacts/count")).json()["contact_count"] == 3
    unknown = await client.delete(f"/v3/marketing/lists/{list_id}/contacts", params={"contact_ids": "nope"})
    no_ids = await client.delete(f"/v3/marketing/lists/{list_id}/contacts")
    assert (unknown.status_code, no_ids.status_code) == (404, 400)
    assert no_ids.json()["errors"][0]["field"] == "contact_ids"


async def test_lists_page_with_page_token_until_next_is_absent(client: httpx.AsyncClient) -> None:
    for i in range(5):
        await create_list(client, f"list-{i}")
    names: list[str] = []
    url: str | None = "/v3/marketing/lists?page_size=2"
    pages = 0
    while url:
        page = (await client.get(url)).json()
        names += [item["name"] for item in page["result"]]
        assert page["_metadata"]["count"] == 5
        url = page["_metadata"].get("next")
        assert url is None or url.startswith("https://api.sendgrid.com/v3/marketing/lists?page_size=2&page_token=")
        pages += 1
    assert (names, pages) == ([f"list-{i}" for i in range(5)], 3)
    bad = await client.get("/v3/marketing/lists", params={"page_token": "!!"})
    assert bad.status_code == 400


async def test_list_update_and_delete(client: httpx.AsyncClient) -> None:
    list_id = await create_list(client, "Old")
    renamed = await client.patch(f"/v3/marketing/lists/{list_id}", json={"name": "New"})
    assert renamed.json()["name"] == "New"
    await upsert(client, [{"email": "a@example.com"}], list_ids=[list_id])
    await finish_jobs(client)
    assert (await client.delete(f"/v3/marketing/lists/{list_id}")).status_code == 204
    assert (await client.get(f"/v3/marketing/lists/{list_id}")).status_code == 404
    contact = (await client.get("/_emulator/contacts")).json()["contacts"][0]
    assert contact["list_ids"] == []
    other = await create_list(client, "Doomed")
    await upsert(client, [{"email": "a@example.com"}], list_ids=[other])
    await finish_jobs(client)
    with_contacts = await client.delete(f"/v3/marketing/lists/{other}", params={"delete_contacts": "true"})
    assert with_contacts.status_code == 200 and "job_id" in with_contacts.json()
    await finish_jobs(client)
    assert (await client.get("/v3/marketing/contacts/count")).json()["contact_count"] == 0


# -- recording, hosts, control -------------------------------------------------------------------


async def test_every_request_is_recorded_without_its_credentials(client: httpx.AsyncClient) -> None:
    await client.post("/v3/marketing/lists", json={"name": "L"})
    await client.get("/v3/marketing/lists", params={"page_size": "3"}, headers={"on-behalf-of": "sub1"})
    await client.get("/v3/not/implemented")
    recorded = (await client.get("/_emulator/requests")).json()
    assert recorded["total"] == 3
    first, second, third = recorded["requests"]
    assert (first["method"], first["path"], first["json"], first["status"]) == (
        "POST", "/v3/marketing/lists", {"name": "L"}, 201)
    assert second["query"] == {"page_size": "3"} and second["headers"]["on-behalf-of"] == "sub1"
    assert all("authorization" not in {k.lower() for k in r["headers"]} for r in recorded["requests"])
    assert (third["status"], third["host"]) == (404, "api.sendgrid.com")
    only_posts = (await client.get("/_emulator/requests", params={"method": "POST"})).json()
    assert only_posts["total"] == 1


async def test_eu_host_is_served_by_the_same_app_and_recorded(app: Starlette) -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://api.eu.sendgrid.com",
                                 headers=AUTH) as eu:
        created = await eu.post("/v3/marketing/lists", json={"name": "EU list"})
        assert created.json()["_metadata"]["self"].startswith("https://api.eu.sendgrid.com/v3/marketing/lists/")
        hosts = [r["host"] for r in (await eu.get("/_emulator/requests")).json()["requests"]]
    assert hosts == ["api.eu.sendgrid.com"]


async def test_reset_forgets_everything(client: httpx.AsyncClient) -> None:
    await create_list(client, "L")
    await upsert(client, [{"email": "a@example.com"}])
    await client.post("/_emulator/faults", json={"status": 500, "count": 5})
    assert (await client.post("/_emulator/reset")).status_code == 200
    assert (await client.get("/_emulator/lists")).json()["total"] == 0
    assert (await client.get("/_emulator/jobs")).json()["total"] == 0
    assert (await client.get("/_emulator/faults")).json()["faults"] == []
    assert (await client.get("/_emulator/requests")).json()["total"] == 0
    assert (await client.get("/v3/marketing/lists")).status_code == 200


async def test_serves_on_a_real_socket_with_any_host_header() -> None:
    app = create_sendgrid_emulator([KEY], job_delay_seconds=0)
    with serve_in_thread(app) as url:
        async with httpx.AsyncClient(base_url=url, headers={**AUTH, "Host": "api.eu.sendgrid.com"}) as c:
            created = await c.post("/v3/marketing/lists", json={"name": "live"})
    assert created.status_code == 201 and int(created.headers["X-RateLimit-Remaining"]) >= 0
    assert app.state.emulator.state.requests[-1]["host"] == "api.eu.sendgrid.com"


def test_cli_has_an_emulate_sendgrid_command() -> None:
    result = CliRunner().invoke(main, ["emulate", "sendgrid", "--help"])
    assert result.exit_code == 0, result.output
    assert "--api-key" in result.output and "--job-delay" in result.output and "--port" in result.output
