"""SendGrid emulator: the read endpoints a warehouse sync pages through (sendgrid-api.md §3.3-3.9, §4.1).

Lists and single sends by following ``_metadata.next``; segments unpaginated; the suppression
lists by offset and time window; the plan and scope rules; SendGrid's 400 for invalid paging.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from sgbridge.emulators.sendgrid import create_sendgrid_emulator

pytestmark = pytest.mark.anyio

KEY = "SG.sync-key"
NOW = 1_700_000_000.0
CONTACTS = 9000  # 9000 // 2000 + 3 = 7 lists
BOUNCES_ONLY = "SG.bounces-only"


@pytest.fixture
def app() -> Starlette:
    return create_sendgrid_emulator({KEY: None, BOUNCES_ONLY: ["suppression.bounces.read"]}, job_delay_seconds=0,
                                    clock=lambda: NOW, seed_contacts=CONTACTS, seed=3)


@pytest.fixture
async def client(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://api.sendgrid.com",
                                 headers={"Authorization": f"Bearer {KEY}"}) as c:
        yield c


async def follow_next(client: httpx.AsyncClient, url: str, **params: Any) -> tuple[list[dict[str, Any]], int]:
    """Every item of a token-paged listing, following _metadata.next as it is; and the pages read."""
    items: list[dict[str, Any]] = []
    response = await client.get(url, params=params)
    pages = 0
    while True:
        assert response.status_code == 200, response.text
        page = response.json()
        pages += 1
        items += page["result"]
        assert page["_metadata"]["count"] >= len(items)
        next_url = page["_metadata"].get("next")
        if next_url is None:
            assert page["_metadata"]["count"] == len(items)
            return items, pages
        assert next_url.startswith("https://api.sendgrid.com/")  # a full URL, kept as it is
        response = await client.get(next_url)


async def offset_pages(client: httpx.AsyncClient, path: str, limit: int, **params: Any) -> list[dict[str, Any]]:
    """Airbyte's OffsetIncrement: offset += limit until a page is shorter than the limit."""
    rows: list[dict[str, Any]] = []
    while True:
        response = await client.get(path, params={**params, "limit": limit, "offset": len(rows)})
        assert response.status_code == 200, response.text
        rows += response.json()
        if len(response.json()) < limit:
            return rows


# -- lists and single sends: token pagination ----------------------------------------------------------


async def test_lists_paging_visits_every_list_once_with_its_member_count(client: httpx.AsyncClient) -> None:
    lists, pages = await follow_next(client, "/v3/marketing/lists", page_size=3)
    assert pages == 3 and len(lists) == len({item["id"] for item in lists}) == CONTACTS // 2000 + 3
    members = {item["id"]: len(item["contact_ids"]) for item in (await client.get("/_emulator/lists")).json()["lists"]}
    assert {item["id"]: item["contact_count"] for item in lists} == members
    counts = [item["contact_count"] for item in lists]
    assert counts[0] > 3 * counts[-1] > 0  # skewed: a big first list, a long tail
    assert sum(counts) > CONTACTS  # contacts are on several lists


async def test_single_sends_page_with_tokens_and_match_their_details(client: httpx.AsyncClient) -> None:
    sends, pages = await follow_next(client, "/v3/marketing/singlesends", page_size=7)
    assert pages == 3 and len({s["id"] for s in sends}) == len(sends) == 20
    assert {s["status"] for s in sends} == {"draft", "scheduled", "triggered"}
    _, exact_pages = await follow_next(client, "/v3/marketing/singlesends", page_size=5)
    assert exact_pages == 4  # no empty page after the last full one
    first_page = (await client.get("/v3/marketing/singlesends")).json()  # default page size holds all 20
    assert [s["id"] for s in first_page["result"]] == [s["id"] for s in sends] and "next" not in first_page["_metadata"]
    now = datetime.fromtimestamp(NOW, UTC)
    for short in sends:
        assert set(short) >= {"id", "name", "status", "categories", "send_at", "is_abtest", "created_at", "updated_at"}
        details = (await client.get(f"/v3/marketing/singlesends/{short['id']}")).json()
        assert {k: details[k] for k in ("name", "status", "categories", "send_at", "created_at")} == {
            k: short[k] for k in ("name", "status", "categories", "send_at", "created_at")}
        assert details["send_to"]["list_ids"] and details["email_config"]["subject"]
        send_at = short["send_at"] and datetime.fromisoformat(short["send_at"])
        if short["status"] == "draft":
            assert send_at is None
        elif short["status"] == "scheduled":
            assert send_at and send_at > now
        else:
            assert send_at and datetime.fromisoformat(short["created_at"]) <= send_at <= now
        assert (short["abtest"] is not None) == short["is_abtest"]
    assert (await client.get("/v3/marketing/singlesends/nope")).status_code == 404


# -- segments --------------------------------------------------------------------------------------------


async def test_segments_are_listed_without_pagination_and_filter_like_the_spec_table(
    client: httpx.AsyncClient,
) -> None:
    listing = (await client.get("/v3/marketing/segments/2.0")).json()
    segments = listing["results"]
    assert set(listing) == {"results"} and len(segments) == 5
    for segment in segments:
        assert segment["query_version"] == "2" and segment["status"] == {"query_validation": "VALID"}
        assert segment["next_sample_update"] > segment["sample_updated_at"] >= segment["updated_at"]
        assert segment["contacts_count"] > 0
    with_parent = [s for s in segments if s["parent_list_ids"]]
    without_parent = [s for s in segments if not s["parent_list_ids"]]
    assert with_parent and without_parent
    parent = with_parent[0]["parent_list_ids"][0]
    by_parent = (await client.get("/v3/marketing/segments/2.0", params={"parent_list_ids": parent})).json()
    assert {s["id"] for s in by_parent["results"]} == {s["id"] for s in with_parent if parent in s["parent_list_ids"]}
    orphans = (await client.get("/v3/marketing/segments/2.0", params={"no_parent_list_id": "true"})).json()
    assert {s["id"] for s in orphans["results"]} == {s["id"] for s in without_parent}
    both = (await client.get("/v3/marketing/segments/2.0",
                             params={"parent_list_ids": parent, "no_parent_list_id": "true"})).json()
    assert len(both["results"]) == len(by_parent["results"]) + len(orphans["results"])
    picked = (await client.get("/v3/marketing/segments/2.0",
                               params=[("ids", segments[0]["id"]), ("ids", segments[3]["id"]),
                                       ("parent_list_ids", parent)])).json()  # ids win over the rest
    assert [s["id"] for s in picked["results"]] == [segments[0]["id"], segments[3]["id"]]


async def test_a_segment_counts_members_still_on_its_parent_list(client: httpx.AsyncClient) -> None:
    segments = (await client.get("/v3/marketing/segments/2.0")).json()["results"]
    segment = next(s for s in segments if s["parent_list_ids"])
    one = (await client.get(f"/v3/marketing/segments/2.0/{segment['id']}")).json()
    assert one["contacts_count"] == segment["contacts_count"] and one["query_dsl"].startswith("SELECT ")
    assert 0 < len(one["contacts_sample"]) <= 50
    sample = one["contacts_sample"][0]
    assert segment["id"] in (await client.get(f"/v3/marketing/contacts/{sample['id']}")).json()["segment_ids"]
    # Leaving the parent list takes a contact out of the segment.
    removal = await client.delete(f"/v3/marketing/lists/{segment['parent_list_ids'][0]}/contacts",
                                  params={"contact_ids": sample["id"]})
    assert removal.status_code == 202
    after = (await client.get(f"/v3/marketing/segments/2.0/{segment['id']}", params={"contacts_sample": "false"}))
    assert after.json()["contacts_count"] == segment["contacts_count"] - 1 and after.json()["contacts_sample"] == []
    assert segment["id"] not in (await client.get(f"/v3/marketing/contacts/{sample['id']}")).json()["segment_ids"]
    assert (await client.get("/v3/marketing/segments/2.0/nope")).status_code == 404


# -- suppression lists: offset pagination and time windows ------------------------------------------------


@pytest.mark.parametrize(("name", "keys"), [
    ("bounces", {"created", "email", "reason", "status"}), ("blocks", {"created", "email", "reason", "status"}),
    ("spam_reports", {"created", "email", "ip"}), ("invalid_emails", {"created", "email", "reason"}),
    ("unsubscribes", {"created", "email"}),
])
async def test_offset_paging_visits_each_row_once_newest_first(
    client: httpx.AsyncClient, name: str, keys: set[str]
) -> None:
    everything = (await client.get("/_emulator/suppressions")).json()
    expected = {row["email"] for row in everything[name]} if name != "unsubscribes" else set(everything["global"])
    assert len(expected) >= CONTACTS * 0.003  # a few per cent (at least a few per mille) of the contacts
    rows = await offset_pages(client, f"/v3/suppression/{name}", limit=37)
    assert [row["email"] for row in rows if set(row) != keys] == []
    assert len(rows) == len(expected) and {row["email"] for row in rows} == expected
    assert rows == sorted(rows, key=lambda row: (-row["created"], row["email"]))
    window_end = int(NOW) - 30 * 86_400
    assert all(NOW - 91 * 86_400 <= row["created"] <= NOW for row in rows if name != "invalid_emails")
    older = await offset_pages(client, f"/v3/suppression/{name}", limit=500, end_time=window_end)
    newer = await offset_pages(client, f"/v3/suppression/{name}", limit=500, start_time=window_end + 1)
    assert older and newer and newer + older == rows  # the two windows split the list where they meet


async def test_time_window_is_inclusive_and_readding_moves_an_address(client: httpx.AsyncClient) -> None:
    base = int(NOW) - 1000
    entries = [{"email": f"r{n}@example.com", "created": base + n * 10, "reason": "550 no such user",
                "status": "5.1.1"} for n in range(10)]
    added = await client.post("/_emulator/suppressions/bounces", json=entries)
    assert added.status_code == 200
    window = {"start_time": base + 20, "end_time": base + 60, "email": "r%"}
    found = (await client.get("/v3/suppression/bounces", params=window)).json()
    assert [row["email"] for row in found] == [f"r{n}@example.com" for n in (6, 5, 4, 3, 2)]  # ends included
    await client.post("/_emulator/suppressions/bounces", json=[{"email": "R8@example.com", "created": base + 40}])
    again = (await client.get("/v3/suppression/bounces", params=window)).json()
    assert [row["email"] for row in again] == [f"r{n}@example.com" for n in (6, 5, 4, 8, 3, 2)]  # ties: by email
    assert len((await client.get("/v3/suppression/bounces", params={"email": "r8@"})).json()) == 1
    prefix = (await client.get("/v3/suppression/bounces", params={"email": "r1", "start_time": base})).json()
    assert [row["email"] for row in prefix] == ["r1@example.com"]


async def test_group_suppressions_accept_airbytes_paging_parameters(client: httpx.AsyncClient) -> None:
    everything = (await client.get("/v3/asm/suppressions")).json()  # no parameters: every member, as before
    groups = (await client.get("/v3/asm/groups")).json()
    assert len(everything) == sum(g["unsubscribes"] for g in groups) > 500
    paged = await offset_pages(client, "/v3/asm/suppressions", limit=500, start_time=0, end_time=int(NOW))
    assert paged == everything
    recent = (await client.get("/v3/asm/suppressions", params={"start_time": int(NOW) - 86_400})).json()
    assert 0 < len(recent) < len(everything) and all(row["created_at"] >= NOW - 86_400 for row in recent)


# -- plans, scopes and validation ---------------------------------------------------------------------------


async def test_an_account_without_marketing_campaigns_gets_403_on_marketing_endpoints_only() -> None:
    app = create_sendgrid_emulator([KEY], clock=lambda: NOW, marketing_campaigns=False, seed_contacts=200)
    forbidden = {"errors": [{"field": None, "message": "access forbidden"}]}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://api.sendgrid.com",
                                 headers={"Authorization": f"Bearer {KEY}"}) as client:
        for method, path in [("GET", "/v3/marketing/lists"), ("GET", "/v3/marketing/segments/2.0"),
                             ("GET", "/v3/marketing/singlesends"), ("POST", "/v3/marketing/contacts/exports"),
                             ("GET", "/v3/marketing/contacts/count"), ("GET", "/v3/marketing/field_definitions")]:
            response = await client.request(method, path)
            assert (response.status_code, response.json()) == (403, forbidden), path
        assert (await client.get("/v3/marketing/lists", headers={"Authorization": "Bearer nope"})).status_code == 401
        assert len((await client.get("/v3/suppression/bounces")).json()) > 0
        assert (await client.get("/v3/asm/groups")).status_code == 200
        assert (await client.get("/v3/scopes")).status_code == 200
        sent = await client.post("/v3/mail/send", json={
            "personalizations": [{"to": [{"email": "a@example.com"}]}], "from": {"email": "shop@example.com"},
            "subject": "Hi", "content": [{"type": "text/plain", "value": "Hello"}]})
        assert sent.status_code == 202


async def test_full_access_lists_the_read_scopes_and_narrow_scopes_open_one_list(client: httpx.AsyncClient) -> None:
    scopes = set((await client.get("/v3/scopes")).json()["scopes"])
    assert {"marketing.read", "suppression.read", "suppression.bounces.read", "suppression.blocks.read",
            "suppression.spam_reports.read", "suppression.invalid_emails.read", "asm.groups.read"} <= scopes
    narrow = {"Authorization": f"Bearer {BOUNCES_ONLY}"}
    assert (await client.get("/v3/suppression/bounces", headers=narrow)).status_code == 200
    for path in ("/v3/suppression/blocks", "/v3/suppression/spam_reports", "/v3/marketing/segments/2.0",
                 "/v3/marketing/singlesends"):
        assert (await client.get(path, headers=narrow)).status_code == 403, path


@pytest.mark.parametrize(("path", "params", "field"), [
    ("/v3/suppression/bounces", {"limit": 501}, "limit"),
    ("/v3/suppression/blocks", {"limit": 0}, "limit"),
    ("/v3/suppression/spam_reports", {"offset": -1}, "offset"),
    ("/v3/suppression/invalid_emails", {"start_time": "yesterday"}, "start_time"),
    ("/v3/marketing/lists", {"page_size": 1001}, "page_size"),
    ("/v3/marketing/singlesends", {"page_size": "ten"}, "page_size"),
    ("/v3/marketing/singlesends", {"page_token": "!!"}, "page_token"),
    ("/v3/marketing/segments/2.0", {"no_parent_list_id": "maybe"}, "no_parent_list_id"),
])
async def test_invalid_paging_gets_sendgrids_400(
    client: httpx.AsyncClient, path: str, params: dict[str, Any], field: str
) -> None:
    response = await client.get(path, params=params)
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == field and response.json()["errors"][0]["message"]
