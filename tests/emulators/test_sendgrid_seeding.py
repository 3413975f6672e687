"""SendGrid emulator: the seeded account (``seeding.seed_account``): sized as asked, realistic, deterministic."""

from __future__ import annotations

import csv
import gzip
import io
from collections import Counter
from datetime import datetime
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from sgbridge.cli import main
from sgbridge.emulators.sendgrid import SendGridEmulatorState, create_sendgrid_emulator
from sgbridge.emulators.sendgrid.seeding import seed_account
from sgbridge.emulators.sendgrid.util import is_valid_email

pytestmark = pytest.mark.anyio

NOW = 1_700_000_000.0
YEAR = 365 * 86_400


async def export_csv(client: httpx.AsyncClient) -> str:
    export_id = (await client.post("/v3/marketing/contacts/exports")).json()["id"]
    status = (await client.get(f"/v3/marketing/contacts/exports/{export_id}")).json()
    assert status["status"] == "ready"
    parts = [gzip.decompress((await client.get(url)).content).decode() for url in status["urls"]]
    return "".join(parts)


async def snapshot(seed: int, contacts: int) -> tuple[str, list[dict[str, Any]], dict[str, Any]]:
    """(CSV export, lists, suppressions) of a freshly seeded emulator, over HTTP."""
    app = create_sendgrid_emulator(job_delay_seconds=0, clock=lambda: NOW, seed_contacts=contacts, seed=seed)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://api.sendgrid.com",
                                 headers={"Authorization": "Bearer SG.any"}) as client:
        lists = (await client.get("/v3/marketing/lists")).json()["result"]
        return await export_csv(client), lists, (await client.get("/_emulator/suppressions")).json()


async def test_seeding_is_deterministic_for_a_seed_and_differs_between_seeds() -> None:
    first, second, other = await snapshot(5, 800), await snapshot(5, 800), await snapshot(6, 800)
    assert first == second
    assert first[0] != other[0] and first[1] != other[1]


async def test_the_control_route_seeds_an_account_of_the_asked_size() -> None:
    app = create_sendgrid_emulator(job_delay_seconds=0, clock=lambda: NOW)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://api.sendgrid.com",
                                 headers={"Authorization": "Bearer SG.any"}) as client:
        assert (await client.get("/v3/marketing/contacts/count")).json()["contact_count"] == 0
        made = (await client.post("/_emulator/seed", json={"contacts": 6000, "seed": 9})).json()
        count = (await client.get("/v3/marketing/contacts/count")).json()["contact_count"]
        lists = (await client.get("/v3/marketing/lists")).json()["_metadata"]["count"]
        segments = (await client.get("/v3/marketing/segments/2.0")).json()["results"]
        sends = (await client.get("/v3/marketing/singlesends")).json()["_metadata"]["count"]
        fields = (await client.get("/v3/marketing/field_definitions")).json()["custom_fields"]
        groups = (await client.get("/v3/asm/groups")).json()
        bounces = (await client.get("/v3/suppression/bounces")).json()
        assert (await client.post("/_emulator/seed", json={"contacts": -1})).status_code == 400
    assert count == made["contacts"] == 6000 and lists == made["lists"] == 6000 // 2000 + 3
    assert len(segments) == made["segments"] == 5 and sends == made["single_sends"] == 20
    assert {f["field_type"] for f in fields} == {"Text", "Number", "Date"}
    assert len(groups) == 4 and all(g["unsubscribes"] > 0 for g in groups)
    assert len(bounces) == made["bounces"] and 0.01 * 6000 < len(bounces) < 0.05 * 6000
    for name in ("blocks", "spam_reports", "invalid_emails", "global_unsubscribes"):
        assert 0.002 * 6000 < made[name] < 0.05 * 6000, name


async def test_seeded_contacts_look_real_and_were_made_over_the_last_year() -> None:
    text, lists, suppressions = await snapshot(2, 3000)
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == 3000 and len({r["EMAIL"] for r in rows}) == 3000
    assert all(is_valid_email(r["EMAIL"]) for r in rows)
    created = [datetime.fromisoformat(r["CREATED_AT"]).timestamp() for r in rows]
    updated = [datetime.fromisoformat(r["UPDATED_AT"]).timestamp() for r in rows]
    assert min(created) >= NOW - YEAR and max(updated) <= NOW
    assert all(u >= c for c, u in zip(created, updated, strict=True))
    assert max(created) - min(created) > 0.9 * YEAR  # spread over the year, not bunched
    assert 0.5 < sum(bool(r["FIRST_NAME"]) for r in rows) / 3000 < 1
    assert 0.3 < sum(bool(r["CITY"]) for r in rows) / 3000 < 0.9
    assert len(Counter(r["COUNTRY"] for r in rows if r["COUNTRY"])) >= 10
    assert sum(bool(r["PLAN"]) for r in rows) > 1000 and any(r["LIFETIME_VALUE"] for r in rows)
    assert all(r["SIGNUP_DATE"][:10] == r["CREATED_AT"][:10] for r in rows if r["SIGNUP_DATE"])
    members = [item["contact_count"] for item in lists]
    assert members[0] == max(members) > 3 * min(members)  # the first list is the big one
    emails = {r["EMAIL"] for r in rows}
    assert {row["email"] for row in suppressions["bounces"]} <= emails  # bounces hit the account's contacts
    assert not {row["email"] for row in suppressions["invalid_emails"]} & emails  # mistyped, never contacts


def test_seed_account_replaces_the_account_and_reports_what_it_made() -> None:
    state = SendGridEmulatorState(clock=lambda: NOW)
    first = seed_account(state, 1000, seed=1)
    ids = set(state.contacts)
    again = seed_account(state, 1000, seed=1)
    assert first == again and set(state.contacts) == ids and len(ids) == 1000
    assert seed_account(state, 10, seed=1)["contacts"] == 10
    with pytest.raises(ValueError, match="contacts"):
        seed_account(state, -1)


def test_cli_offers_seeding_and_the_no_marketing_account() -> None:
    help_text = CliRunner().invoke(main, ["emulate", "sendgrid", "--help"]).output
    for option in ("--seed-contacts", "--seed", "--no-marketing-campaigns"):
        assert option in help_text
