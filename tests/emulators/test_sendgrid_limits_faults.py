"""SendGrid emulator: X-RateLimit-* headers and 429s per endpoint bucket, and injected faults."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.applications import Starlette

from sgbridge.emulators.faults import EmulatedConnectionDrop
from sgbridge.emulators.sendgrid import create_sendgrid_emulator

pytestmark = pytest.mark.anyio

KEY = "SG.key"
START = 1_699_999_980.0  # a multiple of 60: windows start here


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
    return create_sendgrid_emulator(
        [KEY], job_delay_seconds=0, clock=clock, rate_limits={"GET /v3/marketing/lists": (2, 60)},
        default_rate_limit=(100, 1), fault_seed=7,
    )


@pytest.fixture
async def client(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://api.sendgrid.com",
                                 headers={"Authorization": f"Bearer {KEY}"}) as c:
        yield c


def limits(response: httpx.Response) -> tuple[str, str, str]:
    h = response.headers
    return h["X-RateLimit-Limit"], h["X-RateLimit-Remaining"], h["X-RateLimit-Reset"]


# -- rate limits ---------------------------------------------------------------------------------


async def test_each_response_carries_its_buckets_headers_and_the_limit_gives_429(
    client: httpx.AsyncClient, clock: Clock
) -> None:
    reset = str(int(START) + 60)
    first = await client.get("/v3/marketing/lists")
    second = await client.get("/v3/marketing/lists")
    assert limits(first) == ("2", "1", reset) and limits(second) == ("2", "0", reset)
    refused = await client.get("/v3/marketing/lists")
    assert refused.status_code == 429
    assert refused.json() == {"errors": [{"field": None, "message": "too many requests"}]}
    assert limits(refused) == ("2", "0", reset)
    other = await client.post("/v3/marketing/lists", json={"name": "x"})  # another bucket is unaffected
    assert other.status_code == 201 and limits(other) == ("100", "99", str(int(START) + 1))
    clock.now = START + 60
    again = await client.get("/v3/marketing/lists")
    assert again.status_code == 200 and limits(again) == ("2", "1", str(int(START) + 120))


async def test_validation_errors_still_count_and_carry_the_headers(client: httpx.AsyncClient) -> None:
    bad = await client.get("/v3/marketing/lists", params={"page_size": "0"})
    assert bad.status_code == 400 and limits(bad)[1] == "1"


async def test_limits_can_be_changed_at_run_time(client: httpx.AsyncClient) -> None:
    response = await client.post("/_emulator/rate_limits",
                                  json={"bucket": "PUT /v3/marketing/contacts", "limit": 1, "period": 10})
    assert response.json()["limits"]["PUT /v3/marketing/contacts"] == {"limit": 1, "period": 10.0}
    body = {"contacts": [{"email": "a@example.com"}]}
    assert (await client.put("/v3/marketing/contacts", json=body)).status_code == 202
    assert (await client.put("/v3/marketing/contacts", json=body)).status_code == 429
    invalid = await client.post("/_emulator/rate_limits", json={"bucket": "GET /v3/x", "limit": 0})
    assert invalid.status_code == 400


async def test_mail_send_has_the_documented_10000_per_second_limit(client: httpx.AsyncClient) -> None:
    response = await client.post("/v3/mail/send", json={})
    assert response.status_code == 400 and limits(response)[:2] == ("10000", "9999")


# -- faults --------------------------------------------------------------------------------------


async def test_status_faults_use_sendgrids_error_shape_and_then_clear(client: httpx.AsyncClient) -> None:
    added = await client.post("/_emulator/faults", json={"status": 503, "count": 2, "path": "/v3/marketing"})
    assert added.status_code == 200 and len(added.json()["faults"]) == 1
    unaffected = await client.get("/v3/scopes")
    assert unaffected.status_code == 200
    for _ in range(2):
        failed = await client.get("/v3/marketing/lists")
        assert failed.status_code == 503
        assert failed.json() == {"errors": [{"field": None, "message": "internal server error"}]}
    assert (await client.get("/v3/marketing/lists")).status_code == 200
    recorded = (await client.get("/_emulator/requests", params={"path": "/v3/marketing/lists"})).json()["requests"]
    assert [r["status"] for r in recorded] == [503, 503, 200]
    assert recorded[0]["fault"] is not None and recorded[2]["fault"] is None


async def test_429_fault_carries_rate_limit_headers_with_the_retry_time(client: httpx.AsyncClient) -> None:
    await client.post("/_emulator/faults", json={"status": 429, "retry_after": 30})
    response = await client.get("/v3/marketing/lists")
    assert response.status_code == 429
    assert response.json()["errors"][0]["message"] == "too many requests"
    assert limits(response) == ("2", "0", str(int(START) + 30))


async def test_process_fault_does_the_work_but_loses_the_answer(client: httpx.AsyncClient) -> None:
    await client.post("/_emulator/faults", json={"status": 500, "process": True, "path": "/v3/marketing/contacts"})
    response = await client.put("/v3/marketing/contacts", json={"contacts": [{"email": "a@example.com"}]})
    assert response.status_code == 500
    assert (await client.get("/_emulator/contacts")).json()["total"] == 1
    normal = await client.put("/v3/marketing/contacts", json={"contacts": [{"email": "b@example.com"}]})
    assert normal.status_code == 202


async def test_faulted_request_does_nothing(client: httpx.AsyncClient) -> None:
    await client.post("/_emulator/faults", json={"status": 502})
    response = await client.put("/v3/marketing/contacts", json={"contacts": [{"email": "a@example.com"}]})
    assert response.status_code == 502
    assert (await client.get("/_emulator/jobs")).json()["total"] == 0


async def test_drop_fault_breaks_the_connection(client: httpx.AsyncClient) -> None:
    await client.post("/_emulator/faults", json={"drop": True})
    with pytest.raises(httpx.RemoteProtocolError) as info:
        await client.get("/v3/marketing/lists")
    assert isinstance(info.value, EmulatedConnectionDrop)
    recorded = (await client.get("/_emulator/requests")).json()["requests"]
    assert recorded[-1]["status"] == "dropped"
    assert (await client.get("/v3/marketing/lists")).status_code == 200


async def test_delay_fault_slows_the_answer_down(client: httpx.AsyncClient) -> None:
    await client.post("/_emulator/faults", json={"delay": 0.2})
    started = time.monotonic()
    response = await client.get("/v3/marketing/lists")
    assert response.status_code == 200 and time.monotonic() - started >= 0.2


async def test_invalid_fault_specs_are_refused_and_faults_can_be_cleared(client: httpx.AsyncClient) -> None:
    assert (await client.post("/_emulator/faults", json={"status": 200})).status_code == 400
    assert (await client.post("/_emulator/faults", json=["x"])).status_code == 400
    await client.post("/_emulator/faults", json={"status": 500, "count": 3})
    assert (await client.delete("/_emulator/faults")).json()["faults"] == []
    assert (await client.get("/v3/marketing/lists")).status_code == 200


async def test_probabilistic_faults_are_reproducible_with_a_seed(clock: Clock) -> None:
    async def pattern() -> list[int]:
        app = create_sendgrid_emulator([KEY], clock=clock, fault_seed=42)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://api.sendgrid.com",
                                     headers={"Authorization": f"Bearer {KEY}"}) as c:
            await c.post("/_emulator/faults", json={"status": 500, "probability": 0.5, "count": 100})
            return [(await c.get("/v3/scopes")).status_code for _ in range(20)]

    first, second = await pattern(), await pattern()
    assert first == second and {200, 500} == set(first)
