"""SendGrid emulator: contact exports as Airbyte's contacts stream reads them (sendgrid-api.md §3.1, §4.1).

POST /v3/marketing/contacts/exports -> poll until "ready" -> download every URL (gzip, no API key)
-> parse. The CSV format is checked against a row of SendGrid's own (Airbyte's fixture).
"""

from __future__ import annotations

import csv
import gzip
import io
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
from starlette.applications import Starlette
from tests.emulators.conftest import Clock

from sgbridge.emulators.sendgrid import create_sendgrid_emulator
from sgbridge.emulators.serving import serve_in_thread

pytestmark = pytest.mark.anyio

KEY = "SG.export-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
JOB_DELAY = 5.0
RESERVED_HEADER = [
    "EMAIL", "FIRST_NAME", "LAST_NAME", "ADDRESS_LINE_1", "ADDRESS_LINE_2", "CITY", "STATE_PROVINCE_REGION",
    "POSTAL_CODE", "COUNTRY", "ALTERNATE_EMAILS", "PHONE_NUMBER", "WHATSAPP", "LINE", "FACEBOOK", "UNIQUE_NAME",
]
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")


def seeded_app(clock: Clock, contacts: int = 300, **options: Any) -> Starlette:
    return create_sendgrid_emulator([KEY], job_delay_seconds=JOB_DELAY, clock=clock, seed_contacts=contacts, seed=11,
                                    **options)


@pytest.fixture
def app(clock: Clock) -> Starlette:
    return seeded_app(clock)


@pytest.fixture
async def client(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://api.sendgrid.com",
                                 headers=AUTH) as c:
        yield c


async def start_export(client: httpx.AsyncClient, **body: Any) -> str:
    response = await client.post("/v3/marketing/contacts/exports", json=body)
    assert response.status_code == 202, response.text
    created = response.json()
    base = str(client.base_url).rstrip("/")
    assert created["_metadata"]["self"] == f"{base}/v3/marketing/contacts/exports/{created['id']}"
    export_id: str = created["id"]
    return export_id


async def ready_export(client: httpx.AsyncClient, clock: Clock, **body: Any) -> dict[str, Any]:
    export_id = await start_export(client, **body)
    clock.advance(JOB_DELAY)
    status: dict[str, Any] = (await client.get(f"/v3/marketing/contacts/exports/{export_id}")).json()
    assert status["status"] == "ready", status
    return status


async def download(client: httpx.AsyncClient, url: str) -> bytes:
    response = await client.get(url, headers={"Authorization": ""})  # pre-signed: no API key
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/gzip"
    assert "content-encoding" not in response.headers  # the client gunzips, as from S3
    return gzip.decompress(response.content)


async def csv_rows(client: httpx.AsyncClient, urls: list[str]) -> tuple[list[list[str]], list[dict[str, str]]]:
    """(the header of every file, all rows as dicts)."""
    headers: list[list[str]] = []
    rows: list[dict[str, str]] = []
    for url in urls:
        reader = csv.reader(io.StringIO((await download(client, url)).decode()))
        header = next(reader)
        headers.append(header)
        rows += [dict(zip(header, row, strict=True)) for row in reader]
    return headers, rows


async def all_contact_ids(client: httpx.AsyncClient) -> set[str]:
    return {c["id"] for c in (await client.get("/_emulator/contacts")).json()["contacts"]}


# -- the job --------------------------------------------------------------------------------------


async def test_export_is_pending_for_the_job_delay_then_ready_with_urls(
    client: httpx.AsyncClient, clock: Clock
) -> None:
    export_id = await start_export(client)  # Airbyte posts no body at all: csv, every contact
    pending = (await client.get(f"/v3/marketing/contacts/exports/{export_id}")).json()
    assert (pending["status"], pending["urls"], pending["export_type"]) == ("pending", [], "contacts_export")
    assert "completed_at" not in pending and TIMESTAMP.fullmatch(pending["expires_at"])
    clock.advance(JOB_DELAY - 1)
    assert (await client.get(f"/v3/marketing/contacts/exports/{export_id}")).json()["status"] == "pending"
    clock.advance(1)
    ready = (await client.get(f"/v3/marketing/contacts/exports/{export_id}")).json()
    count = (await client.get("/v3/marketing/contacts/count")).json()["contact_count"]
    assert ready["status"] == "ready" and ready["contact_count"] == count == 300
    assert ready["completed_at"] == "2023-11-14T22:13:25Z"  # the clock when the job ran
    assert ready["expires_at"] == "2023-11-17T22:13:25Z"  # 72 hours later
    assert ready["user_id"] and len(ready["urls"]) == 1
    assert ready["urls"][0].startswith(f"https://api.sendgrid.com/_emulator/downloads/{export_id}/1.csv.gz?token=")
    listed = (await client.get("/v3/marketing/contacts/exports")).json()["result"]
    assert [(e["id"], e["status"]) for e in listed] == [(export_id, "ready")]


async def test_csv_export_has_sendgrids_header_and_one_row_per_contact(client: httpx.AsyncClient, clock: Clock) -> None:
    status = await ready_export(client, clock)
    headers, rows = await csv_rows(client, status["urls"])
    fields = (await client.get("/v3/marketing/field_definitions")).json()["custom_fields"]
    assert fields, "the seeded account has custom fields"
    assert headers == [[*RESERVED_HEADER, *(f["name"].upper() for f in fields), "CREATED_AT", "UPDATED_AT",
                        "CONTACT_ID"]]
    assert len(rows) == status["contact_count"]
    assert {r["CONTACT_ID"] for r in rows} == await all_contact_ids(client)
    assert all(TIMESTAMP.fullmatch(r["CREATED_AT"]) and r["UPDATED_AT"] >= r["CREATED_AT"] for r in rows)
    # Every row agrees with the API's view of the same contact, custom fields included.
    for row in rows[:25]:
        contact = (await client.get(f"/v3/marketing/contacts/{row['CONTACT_ID']}")).json()
        assert row["EMAIL"] == contact["email"] and row["FIRST_NAME"] == contact["first_name"]
        assert row["CITY"] == contact["city"] and row["CREATED_AT"] == contact["created_at"]
        assert row["ALTERNATE_EMAILS"] == ",".join(contact["alternate_emails"])
        for name, value in contact["custom_fields"].items():
            whole = isinstance(value, float) and value.is_integer()
            assert row[name.upper()] == (str(int(value)) if whole else str(value))


async def test_csv_rows_are_written_exactly_like_sendgrids(clock: Clock) -> None:
    """A row of a real export (Airbyte's decompressed_response.csv), reproduced from the same contact."""
    clock.now = 1612182922.0  # 2021-02-01T12:35:22Z
    app = create_sendgrid_emulator([KEY], job_delay_seconds=0, clock=clock)
    contact = {"email": "fake_email_10@lmail.c", "first_name": "Fake contact", "last_name": "Lastname",
               "postal_code": "22341"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://api.sendgrid.com",
                                 headers=AUTH) as client:
        assert (await client.put("/v3/marketing/contacts", json={"contacts": [contact]})).status_code == 202
        assert (await client.get("/v3/marketing/contacts/count")).json()["contact_count"] == 1
        clock.advance(29)  # updated 29 s later, as in the sample
        assert (await client.put("/v3/marketing/contacts", json={"contacts": [contact]})).status_code == 202
        export_id = await start_export(client)
        status = (await client.get(f"/v3/marketing/contacts/exports/{export_id}")).json()
        (contact_id,) = await all_contact_ids(client)
        text = (await download(client, status["urls"][0])).decode()
    header, row = text.splitlines()
    assert header == ",".join(f'"{name}"' for name in [*RESERVED_HEADER, "CREATED_AT", "UPDATED_AT", "CONTACT_ID"])
    assert row == ('"fake_email_10@lmail.c","Fake contact","Lastname",,,,,"22341",,,,,,,,'
                   f'"2021-02-01T12:35:22Z","2021-02-01T12:35:51Z","{contact_id}"')
    assert text.endswith("\n") and "\r" not in text


async def test_quotes_and_alternate_emails_are_escaped_inside_one_value(clock: Clock) -> None:
    app = create_sendgrid_emulator([KEY], job_delay_seconds=0, clock=clock)
    contact = {"email": "q@example.com", "first_name": 'Ann "The Hammer"', "city": "St. John's",
               "alternate_emails": ["a1@example.com", "a2@example.com"]}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://api.sendgrid.com",
                                 headers=AUTH) as client:
        await client.put("/v3/marketing/contacts", json={"contacts": [contact]})
        export_id = await start_export(client)
        status = (await client.get(f"/v3/marketing/contacts/exports/{export_id}")).json()
        raw = (await download(client, status["urls"][0])).decode()
        _, rows = await csv_rows(client, status["urls"])
    assert '"Ann ""The Hammer"""' in raw and '"a1@example.com,a2@example.com"' in raw
    assert rows[0]["FIRST_NAME"] == 'Ann "The Hammer"' and rows[0]["CITY"] == "St. John's"
    assert rows[0]["ALTERNATE_EMAILS"].split(",") == ["a1@example.com", "a2@example.com"]


async def test_json_export_has_one_contact_per_line_as_the_api_shows_it(
    client: httpx.AsyncClient, clock: Clock
) -> None:
    status = await ready_export(client, clock, file_type="json")
    assert status["urls"][0].split("?")[0].endswith("/1.json.gz")
    lines = (await download(client, status["urls"][0])).decode().splitlines()
    contacts = [orjson.loads(line) for line in lines]
    assert len(contacts) == status["contact_count"] == 300
    assert {c["id"] for c in contacts} == await all_contact_ids(client)
    for exported in contacts[:20]:
        shown = (await client.get(f"/v3/marketing/contacts/{exported['id']}")).json()
        del shown["_metadata"]
        assert exported == shown


async def test_list_and_segment_exports_hold_the_union_of_their_members(
    client: httpx.AsyncClient, clock: Clock
) -> None:
    lists = {item["id"]: set(item["contact_ids"]) for item in (await client.get("/_emulator/lists")).json()["lists"]}
    smallest_list = min(lists, key=lambda lid: len(lists[lid]))
    segments = (await client.get("/v3/marketing/segments/2.0")).json()["results"]
    segment = next(s for s in segments if not s["parent_list_ids"])
    only_segment = await ready_export(client, clock, segment_ids=[segment["id"]], file_type="json")
    segment_members = {orjson.loads(line)["id"]
                       for line in (await download(client, only_segment["urls"][0])).decode().splitlines()}
    assert only_segment["export_type"] == "segment_export"
    assert len(segment_members) == segment["contacts_count"] == only_segment["contact_count"] > 0
    both = await ready_export(client, clock, list_ids=[smallest_list], segment_ids=[segment["id"]])
    _, rows = await csv_rows(client, both["urls"])
    assert both["export_type"] == "list_export"
    assert {r["CONTACT_ID"] for r in rows} == lists[smallest_list] | segment_members
    assert len(rows) == len(lists[smallest_list] | segment_members)  # once each, though in both
    assert both["lists"] == [{"ID": smallest_list, "Name": next(
        i["name"] for i in (await client.get("/_emulator/lists")).json()["lists"] if i["id"] == smallest_list)}]


async def test_exports_snapshot_the_contacts_when_they_become_ready(client: httpx.AsyncClient, clock: Clock) -> None:
    export_id = await start_export(client)
    await client.put("/v3/marketing/contacts", json={"contacts": [{"email": "late@example.com"}]})
    clock.advance(JOB_DELAY)  # the upsert, accepted after the export, is applied after it too
    status = (await client.get(f"/v3/marketing/contacts/exports/{export_id}")).json()
    _, rows = await csv_rows(client, status["urls"])
    assert "late@example.com" not in {r["EMAIL"] for r in rows} and len(rows) == 300
    later = await ready_export(client, clock)
    _, rows = await csv_rows(client, later["urls"])
    assert "late@example.com" in {r["EMAIL"] for r in rows} and len(rows) == 301


# -- several files ----------------------------------------------------------------------------------


async def test_rows_per_file_knob_splits_an_export_into_several_urls(client: httpx.AsyncClient, clock: Clock) -> None:
    config = await client.post("/_emulator/exports/config", json={"rows_per_file": 70})
    assert config.json()["rows_per_file"] == 70
    status = await ready_export(client, clock)
    assert [url.split("?")[0].rsplit("/", 1)[1] for url in status["urls"]] == [f"{n}.csv.gz" for n in range(1, 6)]
    headers, rows = await csv_rows(client, status["urls"])
    assert all(header == headers[0] for header in headers)  # every file decodes on its own
    assert len(rows) == 300 and len({r["CONTACT_ID"] for r in rows}) == 300


async def test_max_file_size_splits_by_uncompressed_megabytes(clock: Clock) -> None:
    app = seeded_app(clock, contacts=12_000)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://api.sendgrid.com",
                                 headers=AUTH) as client:
        status = await ready_export(client, clock, max_file_size=1)
        files = [await download(client, url) for url in status["urls"]]
        whole = await ready_export(client, clock)
    assert len(files) >= 2 and len(whole["urls"]) == 1
    assert all(len(data) <= 1024 * 1024 for data in files)
    assert sum(data.count(b"\n") - 1 for data in files) == 12_000  # minus each file's header


# -- downloads ----------------------------------------------------------------------------------------


async def test_download_needs_the_token_not_an_api_key(client: httpx.AsyncClient, clock: Clock) -> None:
    url = (await ready_export(client, clock))["urls"][0]
    base = url.split("?")[0]
    for bad in (base, f"{base}?token=wrong", url.replace("token=", "token=x")):
        response = await client.get(bad, headers={"Authorization": ""})
        assert response.status_code == 403 and b"AccessDenied" in response.content
    missing = await client.get(base.replace("/1.csv.gz", "/2.csv.gz") + "?" + url.split("?")[1])
    assert missing.status_code == 404
    assert (await client.get(url, headers={"Authorization": ""})).status_code == 200


async def test_downloads_expire_72_hours_after_the_export_was_ready(client: httpx.AsyncClient, clock: Clock) -> None:
    status = await ready_export(client, clock)
    clock.advance(72 * 3600)
    assert (await client.get(status["urls"][0])).status_code == 200  # the last second of the window
    clock.advance(1)
    expired = await client.get(status["urls"][0])
    assert expired.status_code == 403 and b"Request has expired" in expired.content
    still_listed = (await client.get(f"/v3/marketing/contacts/exports/{status['id']}")).json()
    assert still_listed["status"] == "ready" and still_listed["urls"] == status["urls"]


async def test_failure_can_be_injected_for_the_next_export(client: httpx.AsyncClient, clock: Clock) -> None:
    configured = await client.post("/_emulator/exports/config",
                                   json={"fail_next": 1, "failure_message": "disk on fire"})
    assert configured.json()["fail_next"] == 1
    export_id = await start_export(client)
    clock.advance(JOB_DELAY)
    failed = (await client.get(f"/v3/marketing/contacts/exports/{export_id}")).json()
    assert (failed["status"], failed["message"], failed["urls"]) == ("failure", "disk on fire", [])
    assert "completed_at" in failed
    assert (await client.get("/_emulator/exports/config")).json()["fail_next"] == 0
    assert (await ready_export(client, clock))["status"] == "ready"  # only the next one failed


async def test_export_files_live_in_a_folder_removed_on_reset(app: Starlette, client: httpx.AsyncClient,
                                                              clock: Clock) -> None:
    status = await ready_export(client, clock)
    store = app.state.emulator.state.export_store
    path = store.file(status["id"], "1.csv.gz")
    assert path is not None and path.is_file()
    assert (await client.post("/_emulator/reset")).status_code == 200
    assert not path.exists() and not path.parent.parent.exists()
    assert (await client.get(status["urls"][0])).status_code == 404


async def test_download_urls_point_at_the_emulator_over_a_real_socket(clock: Clock) -> None:
    app = seeded_app(clock, contacts=50)
    with serve_in_thread(app) as url:
        async with httpx.AsyncClient(base_url=url, headers=AUTH) as client:
            status = await ready_export(client, clock)
            assert status["urls"][0].startswith(f"{url}/_emulator/downloads/")
            async with httpx.AsyncClient() as anonymous, anonymous.stream("GET", status["urls"][0]) as response:
                assert response.status_code == 200
                body = b"".join([chunk async for chunk in response.aiter_raw()])
    assert gzip.decompress(body).count(b"\n") == 51


# -- validation ---------------------------------------------------------------------------------------


async def test_invalid_export_requests_get_sendgrids_errors(client: httpx.AsyncClient) -> None:
    xml = await client.post("/v3/marketing/contacts/exports", json={"file_type": "xml"})
    assert xml.status_code == 400 and xml.json()["errors"][0]["field"] == "file_type"
    size = await client.post("/v3/marketing/contacts/exports", json={"max_file_size": "big"})
    assert size.status_code == 400 and size.json()["errors"][0]["field"] == "max_file_size"
    zero = await client.post("/v3/marketing/contacts/exports", json={"max_file_size": 0})
    assert zero.status_code == 400
    unknown = await client.post("/v3/marketing/contacts/exports",
                                json={"list_ids": ["3a1c7e52-0000-4000-8000-000000000000"]})
    assert unknown.status_code == 404 and unknown.json()["errors"][0]["field"] == "list_ids"
    assert (await client.get("/v3/marketing/contacts/exports/nope")).status_code == 404
    assert (await client.get("/v3/marketing/contacts/exports")).json()["result"] == []


async def test_a_large_export_is_written_while_the_emulator_goes_on_answering(clock: Clock) -> None:
    """A large account's export used to be written inside one request: ~15 s of silence for 1M contacts."""
    import time

    import anyio

    from sgbridge.emulators.sendgrid.exports import INLINE_EXPORT_CONTACTS

    count = INLINE_EXPORT_CONTACTS * 3
    app = seeded_app(clock, contacts=count)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://api.sendgrid.com",
                                 headers=AUTH) as client:
        export_id = await start_export(client)
        clock.advance(JOB_DELAY)
        started = time.perf_counter()
        first = (await client.get(f"/v3/marketing/contacts/exports/{export_id}")).json()  # starts the writer
        answered_in = time.perf_counter() - started
        lists = await client.get("/v3/marketing/lists")  # and the emulator answers meanwhile
        assert lists.status_code == 200
        with anyio.fail_after(120):
            while (status := (await client.get(f"/v3/marketing/contacts/exports/{export_id}")).json())[
                    "status"] == "pending":
                await anyio.sleep(0.05)
        written_in = time.perf_counter() - started
        ids = [row["CONTACT_ID"] for row in (await csv_rows(client, status["urls"]))[1]]
    assert first["status"] == "pending"
    assert status["status"] == "ready" and status["contact_count"] == count
    assert len(ids) == len(set(ids)) == count
    assert answered_in < written_in / 3, (answered_in, written_in)
