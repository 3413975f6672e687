"""Twilio Messages API emulator: sends, validation, auth, statuses and signed status callbacks."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sgbridge.emulators.serving import serve_in_thread
from sgbridge.emulators.twilio import create_twilio_emulator

pytestmark = pytest.mark.anyio

SID = "AC" + "a" * 32
TOKEN = "secret-token"
FROM = "+15005550006"
MESSAGES = f"/2010-04-01/Accounts/{SID}/Messages.json"


@pytest.fixture
def app() -> Starlette:
    return create_twilio_emulator({SID: TOKEN}, numbers=[FROM], messaging_services={"MG" + "b" * 32: ["+15005550007"]},
                                  api_keys={"SK" + "c" * 32: (SID, "key-secret")},
                                  outcomes={"+15005550009": ("undelivered", 30003), "+15005550010": ("failed", 30008)},
                                  status_delay_seconds=0.01)


@pytest.fixture
async def client(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://api.twilio.com",
                                 auth=(SID, TOKEN)) as c:
        yield c


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A status callback endpoint on a real socket: the emulator POSTs to it over HTTP."""
    received: list[dict[str, Any]] = []

    async def hook(request: Request) -> Response:
        form = parse_qs((await request.body()).decode(), keep_blank_values=True, strict_parsing=True)
        received.append({"url": str(request.url), "params": {k: v[0] for k, v in form.items()},
                         "signature": request.headers.get("x-twilio-signature"),
                         "content_type": request.headers.get("content-type")})
        return Response(status_code=204)

    with serve_in_thread(Starlette(routes=[Route("/twilio/status", hook, methods=["POST"])])) as url:
        yield f"{url}/twilio/status", received


def expected_signature(token: str, url: str, params: dict[str, str]) -> str:
    # Written out independently of the emulator: Twilio's documented algorithm.
    data = url
    for key in sorted(params):
        data += key + params[key]
    return base64.b64encode(hmac.new(token.encode("utf-8"), data.encode("utf-8"), hashlib.sha1).digest()).decode()


async def test_send_answers_a_queued_message(client: httpx.AsyncClient) -> None:
    response = await client.post(MESSAGES, data={"To": "+15558675310", "From": FROM, "Body": "Hello"})
    assert response.status_code == 201
    message = response.json()
    assert message["sid"].startswith("SM") and len(message["sid"]) == 34
    assert (message["status"], message["to"], message["from"], message["body"]) == ("queued", "+15558675310", FROM,
                                                                                  "Hello")
    assert message["account_sid"] == SID and message["num_segments"] == "1" and message["direction"] == "outbound-api"
    assert message["date_created"].endswith("+0000")
    await client.post("/_emulator/settle")
    fetched = await client.get(f"/2010-04-01/Accounts/{SID}/Messages/{message['sid']}.json")
    assert fetched.json()["status"] == "delivered" and fetched.json()["date_sent"] is not None
    listed = await client.get(MESSAGES, params={"To": "+15558675310"})
    assert [m["sid"] for m in listed.json()["messages"]] == [message["sid"]]


@pytest.mark.parametrize(("form", "code"), [
    ({"From": FROM, "Body": "x"}, 21604),
    ({"To": "5558675310", "From": FROM, "Body": "x"}, 21211),
    ({"To": "+15558675310", "Body": "x"}, 21603),
    ({"To": "+15558675310", "From": "+15550000000", "Body": "x"}, 21606),
    ({"To": "+15558675310", "From": "ACME", "Body": "x"}, 21212),
    ({"To": "+15558675310", "MessagingServiceSid": "MG" + "0" * 32, "Body": "x"}, 21701),
    ({"To": "+15558675310", "From": FROM}, 21602),
    ({"To": "+15558675310", "From": FROM, "Body": "x" * 1601}, 21617),
    ({"To": FROM, "From": FROM, "Body": "x"}, 21266),
    ({"To": "+15558675310", "From": FROM, "Body": "x", "StatusCallback": "not a url"}, 21609),
])
async def test_validation_errors(client: httpx.AsyncClient, form: dict[str, str], code: int) -> None:
    response = await client.post(MESSAGES, data=form)
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == code and body["status"] == 400
    assert body["more_info"] == f"https://www.twilio.com/docs/errors/{code}"
    assert (await client.get("/_emulator/messages")).json()["total"] == 0


async def test_auth(app: Starlette) -> None:
    transport = httpx.ASGITransport(app=app)
    form = {"To": "+15558675310", "From": FROM, "Body": "x"}
    async with httpx.AsyncClient(transport=transport, base_url="https://api.twilio.com") as anonymous:
        for auth in (None, (SID, "wrong"), ("AC" + "f" * 32, TOKEN)):
            response = await anonymous.post(MESSAGES, data=form, auth=auth)
            assert response.status_code == 401 and response.json()["code"] == 20003
        with_key = await anonymous.post(MESSAGES, data=form, auth=("SK" + "c" * 32, "key-secret"))
        assert with_key.status_code == 201 and with_key.json()["account_sid"] == SID
        unknown = await anonymous.get(f"/2010-04-01/Accounts/{SID}/Messages/SM{'0' * 32}.json", auth=(SID, TOKEN))
        assert unknown.status_code == 404 and unknown.json()["code"] == 20404


async def test_status_callbacks_are_posted_and_signed(client: httpx.AsyncClient,
                                                      receiver: tuple[str, list[dict[str, Any]]]) -> None:
    url, received = receiver
    sent = (await client.post(MESSAGES, data={"To": "+15558675310", "From": FROM, "Body": "Hi",
                                              "StatusCallback": url})).json()
    failing = (await client.post(MESSAGES, data={"To": "+15005550009", "From": FROM, "Body": "Hi",
                                                 "StatusCallback": url})).json()
    await client.post("/_emulator/settle")
    by_sid: dict[str, list[dict[str, Any]]] = {}
    for call in received:
        by_sid.setdefault(call["params"]["MessageSid"], []).append(call)
    assert [c["params"]["MessageStatus"] for c in by_sid[sent["sid"]]] == ["sent", "delivered"]
    assert [c["params"]["MessageStatus"] for c in by_sid[failing["sid"]]] == ["sent", "undelivered"]
    assert by_sid[failing["sid"]][-1]["params"]["ErrorCode"] == "30003"
    for call in received:
        assert call["content_type"].startswith("application/x-www-form-urlencoded")
        assert call["params"]["AccountSid"] == SID and call["params"]["SmsSid"] == call["params"]["MessageSid"]
        assert call["signature"] == expected_signature(TOKEN, url, call["params"])
        assert call["signature"] != expected_signature("other-token", url, call["params"])
    logged = (await client.get("/_emulator/callbacks")).json()["callbacks"]
    assert len(logged) == 4 and {c["status"] for c in logged} == {204}
    assert (await client.get(f"/2010-04-01/Accounts/{SID}/Messages/{failing['sid']}.json")).json()["error_code"] \
        == 30003


async def test_messaging_service_and_failed_outcome(client: httpx.AsyncClient,
                                                    receiver: tuple[str, list[dict[str, Any]]]) -> None:
    url, received = receiver
    accepted = await client.post(MESSAGES, data={"To": "+15005550010", "MessagingServiceSid": "MG" + "b" * 32,
                                                 "Body": "Hi", "StatusCallback": url})
    assert accepted.status_code == 201
    assert accepted.json()["status"] == "accepted" and accepted.json()["from"] is None
    await client.post("/_emulator/settle")
    assert [c["params"]["MessageStatus"] for c in received] == ["queued", "failed"]
    assert received[-1]["params"]["From"] == "+15005550007"
    assert received[-1]["params"]["MessagingServiceSid"] == "MG" + "b" * 32
    history = (await client.get("/_emulator/messages")).json()["messages"][0]["history"]
    assert history == ["accepted", "queued", "failed"]


async def test_unreachable_callback_is_logged(client: httpx.AsyncClient) -> None:
    await client.post(MESSAGES, data={"To": "+15558675310", "From": FROM, "Body": "Hi",
                                      "StatusCallback": "http://127.0.0.1:9/status"})
    await client.post("/_emulator/settle")
    logged = (await client.get("/_emulator/callbacks")).json()["callbacks"]
    assert logged and all(c["status"] is None and c["error"] for c in logged)


async def test_faults(client: httpx.AsyncClient) -> None:
    await client.post("/_emulator/faults", json=[{"status": 429, "count": 1}, {"status": 503, "count": 1}])
    form = {"To": "+15558675310", "From": FROM, "Body": "x"}
    limited = await client.post(MESSAGES, data=form)
    assert limited.status_code == 429 and limited.json()["code"] == 20429
    failed = await client.post(MESSAGES, data=form)
    assert failed.status_code == 503 and failed.json()["code"] == 20500
    assert (await client.get("/_emulator/messages")).json()["total"] == 0
    await client.post("/_emulator/faults", json={"status": 500, "process": True})
    lost = await client.post(MESSAGES, data=form)
    assert lost.status_code == 500 and (await client.get("/_emulator/messages")).json()["total"] == 1
    requests = (await client.get("/_emulator/requests")).json()["requests"]
    assert [r["status"] for r in requests] == [429, 503, 500] and requests[0]["form"]["Body"] == "x"
    await client.post("/_emulator/reset")
    assert (await client.get("/_emulator/messages")).json()["total"] == 0


async def test_outcomes_can_be_set_at_run_time(client: httpx.AsyncClient) -> None:
    set_ = await client.post("/_emulator/outcomes", json={"+15558670000": {"status": "failed", "error_code": 30006}})
    assert set_.json()["outcomes"]["+15558670000"] == {"status": "failed", "error_code": 30006}
    sid = (await client.post(MESSAGES, data={"To": "+15558670000", "From": FROM, "Body": "x"})).json()["sid"]
    await client.post("/_emulator/settle")
    message = (await client.get(f"/2010-04-01/Accounts/{SID}/Messages/{sid}.json")).json()
    assert (message["status"], message["error_code"]) == ("failed", 30006)
    assert (await client.post("/_emulator/outcomes", json={"bad": {}})).status_code == 400
