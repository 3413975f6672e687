"""The Segment emulator's Profile API answers as Segment documents it (segment-api.md §4), and
sgbridge's client (workflows/profile_api.py) reads it: pages, 404s, retries, refusals, its cache."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
from pydantic import SecretStr
from starlette.applications import Starlette

from sgbridge.emulators.segment import create_segment_emulator
from sgbridge.workflows.profile_api import ProfileApi, ProfileApiRefused, ProfileApiUnavailable, identity_of
from sgbridge.workflows.settings import WorkflowEngineSettings

pytestmark = pytest.mark.anyio
SPACE, TOKEN = "spa_test", "tok-secret"
TRAITS = "/v1/spaces/spa_test/collections/users/profiles/{}/traits"


def basic(user: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:".encode()).decode()}


@pytest.fixture
def app() -> Starlette:
    return create_segment_emulator(write_keys=["wk"], profile_tokens={SPACE: TOKEN})


@pytest.fixture
async def client(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://segment") as c:
        yield c


async def identify(client: httpx.AsyncClient, **body: Any) -> None:
    response = await client.post("/v1/identify", content=orjson.dumps({"type": "identify", **body}),
                                 headers=basic("wk"))
    assert response.status_code == 200, response.text


async def test_identify_calls_become_one_profile_under_each_of_their_identities(client: httpx.AsyncClient) -> None:
    await identify(client, userId="u-1", anonymousId="a-1", traits={"email": "Ada@Example.com", "plan": "pro"})
    await identify(client, userId="u-1", traits={"plan": "team", "seats": 5})
    for identity in ("user_id:u-1", "anonymous_id:a-1", "email:ada@example.com", "email:ADA@example.com"):
        response = await client.get(TRAITS.format(identity), headers=basic(TOKEN))
        assert response.status_code == 200, identity
        assert response.json()["traits"] == {"email": "Ada@Example.com", "plan": "team", "seats": 5}
        assert response.headers["Request-Id"]


async def test_errors_are_segments_own(client: httpx.AsyncClient) -> None:
    await identify(client, userId="u-1", traits={"plan": "pro"})
    wrong = await client.get(TRAITS.format("user_id:u-1"), headers=basic("not-the-token"))
    assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "authentication_error"
    assert (await client.get(TRAITS.format("user_id:u-1"))).status_code == 401
    other_space = await client.get(TRAITS.format("user_id:u-1").replace(SPACE, "spa_other"), headers=basic(TOKEN))
    assert other_space.status_code == 401
    missing = await client.get(TRAITS.format("user_id:nobody"), headers=basic(TOKEN))
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "invalid_request_error"
    bad_id = await client.get(TRAITS.format("phone:1"), headers=basic(TOKEN))
    assert bad_id.status_code == 400 and bad_id.json()["error"]["code"] == "validation_error"
    bad_limit = await client.get(TRAITS.format("user_id:u-1"), params={"limit": "201"}, headers=basic(TOKEN))
    assert bad_limit.status_code == 400


async def test_traits_come_in_pages_of_limit_and_include_filters(client: httpx.AsyncClient) -> None:
    await identify(client, userId="u-1", traits={f"t{i:02d}": i for i in range(5)})
    first = (await client.get(TRAITS.format("user_id:u-1"), params={"limit": "2"}, headers=basic(TOKEN))).json()
    assert first["traits"] == {"t00": 0, "t01": 1} and first["cursor"]["has_more"] is True
    rest = (await client.get(TRAITS.format("user_id:u-1"), params={"limit": "10", "next": first["cursor"]["next"]},
                             headers=basic(TOKEN))).json()
    assert rest["traits"] == {"t02": 2, "t03": 3, "t04": 4} and rest["cursor"]["has_more"] is False
    only = (await client.get(TRAITS.format("user_id:u-1"), params={"include": "t03,t04"},
                             headers=basic(TOKEN))).json()
    assert only["traits"] == {"t03": 3, "t04": 4}


async def test_more_than_100_requests_a_second_are_rate_limited_with_retry_after(client: httpx.AsyncClient) -> None:
    await identify(client, userId="u-1", traits={"plan": "pro"})
    statuses = [(await client.get(TRAITS.format("user_id:u-1"), headers=basic(TOKEN))) for _ in range(130)]
    limited = [r for r in statuses if r.status_code == 429]
    assert limited, "no request was rate limited"
    assert limited[0].json()["error"]["code"] == "rate_limit_error" and limited[0].headers["Retry-After"]
    assert sum(r.status_code == 200 for r in statuses) >= 100


def _settings(**extra: Any) -> WorkflowEngineSettings:
    return WorkflowEngineSettings(profile_api_space=SPACE, profile_api_token=SecretStr(TOKEN),
                                  profile_api_endpoint="http://segment", **extra)


def test_run_keys_become_the_profile_apis_external_ids() -> None:
    assert identity_of("userId:u-1") == "user_id:u-1"
    assert identity_of("anonymousId:a:b") == "anonymous_id:a:b"
    assert identity_of("email:Ada@Example.com") == "email:ada@example.com"
    assert identity_of("properties.account_id:7") is None


async def test_the_client_reads_every_page_and_caches(app: Starlette, client: httpx.AsyncClient) -> None:
    many = {f"trait_{i:03d}": i for i in range(450)}  # three pages of 200
    await identify(client, userId="u-1", traits=many)
    api = ProfileApi(_settings(), client)
    assert await api.traits("userId:u-1") == many
    lookups = app.state.emulator.state.profiles.lookups
    assert lookups == 3
    assert await api.traits("userId:u-1") == many
    assert app.state.emulator.state.profiles.lookups == lookups  # from the cache
    assert await api.traits("userId:nobody") is None
    assert await api.traits("properties.x:1") is None


async def test_the_client_retries_rate_limits_and_5xx_then_gives_up_or_refuses(client: httpx.AsyncClient) -> None:
    await identify(client, userId="u-1", traits={"plan": "pro"})
    api = ProfileApi(_settings(profile_cache_seconds=0), client)
    await client.post("/_emulator/faults", json={"status": 429, "count": 2, "retry_after": 0.01,
                                                 "path": "/v1/spaces"})
    assert await api.traits("userId:u-1") == {"plan": "pro"}
    await client.post("/_emulator/faults", json={"status": 503, "count": 10, "path": "/v1/spaces"})
    with pytest.raises(ProfileApiUnavailable, match="503"):
        await api.traits("userId:u-1")
    await client.delete("/_emulator/faults")
    refused = ProfileApi(WorkflowEngineSettings(profile_api_space=SPACE, profile_api_token=SecretStr("wrong"),
                                                profile_api_endpoint="http://segment"), client)
    with pytest.raises(ProfileApiRefused, match="401"):
        await refused.traits("userId:u-1")
