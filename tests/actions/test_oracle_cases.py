"""Segment's own code as the referee: sgbridge's effects on the generated oracle cases.

``tests/fixtures/oracle/<destination>.json`` holds a few hundred cases per destination, each run
through Segment's published destination code by ``tools/generate_oracle_cases.py`` (see its
docstring for what they cover and how to regenerate). Here each case runs on sgbridge against a
server that gives the case's mocked answers exactly as the oracle picks them, and the *effects*
are compared: the write requests (method, URL, JSON body as data) that the server accepted
(2xx). Reads are not effects: GETs, and the SGQL search, which is a POST. A write the server
refused wrote nothing, so a request Segment never makes after a failed read and one sgbridge
makes and sees refused are the same effect: none.

The documented differences (docs/actions.md, "Differences from Segment's destinations") are
applied before comparing, each as a named rule:

* ``mail-custom-args``: sgbridge adds ``segment_user_id`` (the userId), ``segment_anonymous_id`` and
  ``segment_message_id`` to a mail's ``custom_args``; checked, then removed.
* ``nulls-left-out``: Segment sends ``null`` for mapped traits that are null; sgbridge leaves
  them out.
* ``coalesced``: sgbridge merges the rows of one contact in a PUT (later values win, docs
  "Guarantees: Batched"); Segment's PUT is merged the same way before comparing.
* ``bad-row-alone``: where Segment fails (or, for Sync Audience, retries) a whole batch for one
  bad row, sgbridge rejects that row alone: its effects must be Segment's for the batch without
  the bad rows (the case's ``reference``, also run through Segment's code).
* ``not-membership-dropped``: Sync Audience events without a boolean membership are dropped by
  sgbridge, where Segment removes the contact: compared with Segment's batch without them.
* ``field-definitions-cached``: sgbridge reads ``/v3/marketing/field_definitions`` only when a
  custom field needs it, so a failing read does not stop the contacts that map none: compared
  with what Segment writes once the read works again, less the contacts with custom fields.

The test prints the match rate and every mismatching case with a one-line reason, and fails
below 99 %. Dotdigital's cases are generated but not compared until sgbridge has the destination.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import anyio
import httpx
import orjson
import pytest

from sgbridge.actions.sendgrid.plans import ANONYMOUS_ID_ARG, MESSAGE_ID_ARG, USER_ID_ARG
from sgbridge.actions.testing import run_action_test
from tests.actions.replay import Received

ORACLE_CASES = Path(__file__).resolve().parents[1] / "fixtures" / "oracle"
REQUIRED_RATE = 0.99
CASE_TIMEOUT = 20.0
IDENTIFIERS = ("email", "phone_number_id", "external_id", "anonymous_id")

# Cases whose difference is known and documented, by id, with the reason (none so far).
KNOWN: dict[str, str] = {}
# ... and by scenario. These are accepted without checking the writes against Segment's: its
# writes are not what sgbridge means to do, and the oracle has no "in order" variant to compare with.
KNOWN_SCENARIOS = {
    "batch-attempt": "docs/actions.md: Segment's Dotdigital actions have no batch mode, so Segment calls them one "
                     "event at a time (a batch is refused); sgbridge runs each event of a window as Segment runs "
                     "it alone (the single-event cases check that)",
    "same-contact-add-and-remove": "docs/actions.md: Segment's Sync Audience adds before it removes, whatever "
                                   "the order of the events; sgbridge runs a contact's events in order",
}
# Below 99 % because of real differences, reported for the owner to decide (measured rates).
XFAIL: dict[str, str] = {}


# -- the mock server, as the oracle picks its answers ----------------------------------------------

def _same_url(a: str, b: str) -> bool:
    return a == b or _norm_url(a) == _norm_url(b)


def _norm_url(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.lower()}{unquote(parts.path)}" + (f"?{unquote(parts.query)}"
                                                                            if parts.query else "")


class OraclePicker:
    """``pickMock`` of run-oracle.js: same tiers, same reuse of the last URL match."""

    def __init__(self, mocks: list[dict[str, Any]]) -> None:
        self.mocks = mocks
        self.used: set[int] = set()

    def _tiers(self, method: str, url: str) -> list[Callable[[dict[str, Any]], bool]]:
        def method_ok(m: dict[str, Any]) -> bool:
            return not m.get("method") or str(m["method"]).upper() == method

        base = url.split("?", 1)[0]
        return [
            lambda m: bool(m.get("url")) and method_ok(m) and _same_url(m["url"], url),
            lambda m: bool(m.get("url_regex")) and method_ok(m) and re.search(m["url_regex"], url) is not None,
            lambda m: bool(m.get("url")) and method_ok(m) and m["url"].split("?", 1)[0] == base and "?" not in m["url"],
            lambda m: not m.get("url") and not m.get("url_regex") and method_ok(m),
        ]

    def pick(self, method: str, url: str) -> dict[str, Any] | None:
        tiers = self._tiers(method.upper(), url)
        for tier in tiers:
            for i, mock in enumerate(self.mocks):
                if i not in self.used and tier(mock):
                    self.used.add(i)
                    return mock
        for tier in tiers[:3]:
            for mock in reversed(self.mocks):
                if tier(mock):
                    return mock
        return None

    def status(self, method: str, url: str) -> int:
        mock = self.pick(method, url)
        return int(mock.get("status", 200)) if mock else 200


@dataclass
class OracleReplay:
    """An ASGI stand-in for SendGrid answering with the case's mocks; records what it received."""

    mocks: list[dict[str, Any]]
    received: list[tuple[Received, int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.picker = OraclePicker(self.mocks)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert scope["type"] == "http"
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        host = next((v.decode() for k, v in scope["headers"] if k == b"host"), "")
        query = scope.get("query_string", b"").decode()
        path = (scope.get("raw_path") or scope["path"].encode()).decode()
        url = f"{scope['scheme']}://{host}{path}" + (f"?{query}" if query and "?" not in path else "")
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        mock = self.picker.pick(scope["method"], url)
        status = int(mock.get("status", 200)) if mock else 200
        self.received.append((Received(scope["method"], url, headers, body), status))
        if mock is None or "json" in mock:
            payload = orjson.dumps(mock["json"]) if mock else b"{}"
        else:
            payload = (mock.get("body") or "").encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": payload})


# -- effects ----------------------------------------------------------------------------------------

Effect = tuple[str, str, str]


def _is_write(method: str, url: str) -> bool:
    return method.upper() != "GET" and not urlsplit(url).path.endswith("/contacts/search")


def _contact_key(row: dict[str, Any]) -> tuple[str, str] | None:
    for kind in IDENTIFIERS:
        value = row.get(kind)
        if value not in (None, ""):
            return kind, str(value).lower() if kind == "email" else str(value)
    return None


def _coalesce(rows: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], bool]:
    merged: list[dict[str, Any]] = []
    by_key: dict[tuple[str, str], dict[str, Any]] = {}
    changed = False
    for row in rows:
        key = _contact_key(row)
        if key is not None and key in by_key:
            target = by_key[key]
            custom = {**(target.get("custom_fields") or {}), **(row.get("custom_fields") or {})}
            target.update(row)
            if custom or "custom_fields" in target:
                target["custom_fields"] = custom
            changed = True
            continue
        copy = dict(row)
        merged.append(copy)
        if key is not None:
            by_key[key] = copy
    return merged, changed


def _normal_body(method: str, url: str, body: Any, side: str, event: dict[str, Any] | None,
                 rules: set[str]) -> Any:
    path = urlsplit(url).path
    if isinstance(body, dict) and path.endswith("/v3/mail/send") and side == "sgbridge":
        args = body["personalizations"][0].get("custom_args") or {}
        user = args.pop(USER_ID_ARG, None)
        anonymous = args.pop(ANONYMOUS_ID_ARG, None)
        message = args.pop(MESSAGE_ID_ARG, None)
        if event is not None:
            assert user == (None if event.get("userId") in (None, "") else str(event["userId"])), user
            assert anonymous == (None if event.get("anonymousId") in (None, "") else str(event["anonymousId"])), \
                anonymous
            assert message == event.get("messageId"), message
        if not args:
            body["personalizations"][0].pop("custom_args", None)
        rules.add("mail-custom-args")
    if isinstance(body, dict) and path.endswith("/v3/marketing/contacts") and method == "PUT":
        rows = body.get("contacts") or []
        if side == "segment":
            cleaned = [{k: v for k, v in row.items() if v is not None} for row in rows]
            if cleaned != rows:
                rules.add("nulls-left-out")
            rows = cleaned
        rows, changed = _coalesce(rows)
        if changed:
            rules.add("coalesced")
        body = {**body, "contacts": rows}
    return body


def _effects(requests: list[tuple[str, str, Any, int]], side: str, event: dict[str, Any] | None,
             rules: set[str]) -> list[Effect]:
    out = []
    for method, url, body, status in requests:
        if not _is_write(method, url) or status >= 300:
            continue
        normal = _normal_body(method.upper(), url, body, side, event, rules)
        out.append((method.upper(), _norm_url(url), json.dumps(normal, sort_keys=True, ensure_ascii=False)))
    return out


def segment_effects(expected: dict[str, Any], mocks: list[dict[str, Any]], rules: set[str]) -> list[Effect]:
    picker = OraclePicker(mocks)
    requests = [(r["method"], r["url"], r.get("json", r.get("body_raw")), picker.status(r["method"], r["url"]))
                for r in expected.get("expected_requests") or []]
    return _effects(requests, "segment", None, rules)


def _without_custom_fields(effects: list[Effect]) -> list[Effect]:
    out = []
    for method, url, body in effects:
        data = json.loads(body)
        if method == "PUT" and isinstance(data, dict) and "contacts" in data:
            data["contacts"] = [c for c in data["contacts"] if not c.get("custom_fields")]
            if not data["contacts"]:
                continue
            body = json.dumps(data, sort_keys=True, ensure_ascii=False)
        out.append((method, url, body))
    return out


def _short(effects: list[Effect]) -> str:
    if not effects:
        return "nothing"
    parts = []
    for method, url, body in effects[:3]:
        data = json.loads(body) if body and body != "null" else None
        if isinstance(data, dict) and "contacts" in data:
            ids = [_contact_key(c) for c in data["contacts"]]
            text = f"{len(data['contacts'])} contacts, list_ids={data.get('list_ids')}, first={data['contacts'][:1]}"
            text += f" keys={[i[1] if i else None for i in ids][:6]}"
        else:
            text = body
        parts.append(f"{method} {urlsplit(url).path}{'?' + urlsplit(url).query if urlsplit(url).query else ''} "
                     f"{text[:220]}")
    more = f" (+{len(effects) - 3} more)" if len(effects) > 3 else ""
    return "; ".join(parts) + more


def _first_difference(a: list[Effect], b: list[Effect]) -> str:
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return f"write {i}: segment {_short([x])} | sgbridge {_short([y])}"
    return f"segment {len(a)} writes: {_short(a)} | sgbridge {len(b)} writes: {_short(b)}"


# -- running ----------------------------------------------------------------------------------------

@dataclass
class Outcome:
    case_id: str
    matched: bool
    rules: set[str]
    reason: str = ""


REFERENCE_RULES = {"bad-row-in-batch": "bad-row-alone", "invalid-email-in-batch": "bad-row-alone",
                   "missing-audience-id": "bad-row-alone", "not-membership-in-batch": "not-membership-dropped",
                   "read-error": "field-definitions-cached"}

# Single events sgbridge drops on purpose: it must write nothing.
NOTHING_RULES = {"not-membership": "not-membership-dropped"}


async def run_case(case: dict[str, Any]) -> Outcome:
    api = OracleReplay(case.get("mock_responses") or [])
    events = case["events"] if "events" in case else [case["event"]]
    payload: Any = events if "events" in case else events[0]
    now = datetime.fromisoformat(case["now"].replace("Z", "+00:00")).timestamp()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=api)) as client:
        with anyio.move_on_after(CASE_TIMEOUT) as scope:
                await run_action_test(case["destination"], case["action"], case.get("settings") or {},
                                  case.get("mapping") or {}, payload,
                                  use_defaults=bool(case.get("useDefaultMappings")),
                                  client=client, clock=lambda: now, job_poll_seconds=0.001)
    if scope.cancelled_caught:
        return Outcome(case["id"], False, set(), f"sgbridge did not finish within {CASE_TIMEOUT} s")
    rules: set[str] = set()
    got = _effects([(r.method, r.url, r.json() if r.body else None, status) for r, status in api.received],
                   "sgbridge", events[0] if len(events) == 1 else None, rules)
    want = segment_effects(case, case.get("mock_responses") or [], rules)
    if case["destination"] == "dotdigital-audiences":
        got, want = _audience_removals(got, "sgbridge", case, rules), _audience_removals(want, "segment", case, rules)
    if got == want:
        return Outcome(case["id"], True, rules)
    if sorted(got) == sorted(want):
        return Outcome(case["id"], False, rules, "same writes, another order: " + _first_difference(want, got))
    reference = case.get("reference")
    if reference is not None:
        ref_rules: set[str] = set()
        wanted = segment_effects(reference, reference.get("mock_responses") or case.get("mock_responses") or [],
                                 ref_rules)
        rule = REFERENCE_RULES.get(case["scenario"], "reference")
        if rule == "field-definitions-cached":
            # Only the contacts that map no custom field go on while the definitions cannot be read.
            wanted = _without_custom_fields(wanted)
        if got == wanted:
            return Outcome(case["id"], True, rules | ref_rules | {rule})
        return Outcome(case["id"], False, rules, f"[{rule}: not even Segment's batch without rows "
                       f"{reference.get('drop_rows')}] " + _first_difference(wanted, got))
    if case["scenario"] in NOTHING_RULES and not got:
        return Outcome(case["id"], True, rules | {NOTHING_RULES[case["scenario"]]})
    if case["id"] in KNOWN:
        return Outcome(case["id"], True, rules | {f"known: {KNOWN[case['id']]}"})
    if case["scenario"] in KNOWN_SCENARIOS:
        return Outcome(case["id"], True, rules | {f"known: {case['scenario']}"})
    return Outcome(case["id"], False, rules, _first_difference(want, got))


def _audience_removals(effects: list[Effect], side: str, case: dict[str, Any], rules: set[str]) -> list[Effect]:
    """Dotdigital Audiences' exit: Segment deletes the whole contact (``DELETE /contacts/v3/…``);
    sgbridge takes it off the audience's list (``DELETE /v2/address-books/{list}/contacts/{id}``),
    as docs/actions.md says. Both become "off the list"."""
    out: list[Effect] = []
    for method, url, body in effects:
        parts = urlsplit(url)
        if side == "segment" and method == "DELETE" and parts.path.startswith("/contacts/v3/"):
            event = case.get("event") or {}
            audience = ((event.get("context") or {}).get("personas") or {}).get("external_audience_id")
            url = f"{parts.scheme}://{parts.netloc}/v2/address-books/{audience}/contacts/<contact>"
            rules.add("removal-keeps-contact")
        elif side == "sgbridge" and method == "DELETE" and parts.path.startswith("/v2/address-books/"):
            url = re.sub(r"/contacts/[^/]+$", "/contacts/<contact>", url)
        out.append((method, url, body))
    return out


def _load(destination: str) -> list[dict[str, Any]]:
    data = json.loads((ORACLE_CASES / f"{destination}.json").read_text(encoding="utf-8"))
    cases: list[dict[str, Any]] = data["cases"]
    return cases


def test_every_destination_has_300_cases() -> None:
    for destination in ("sendgrid", "sendgrid-audiences", "dotdigital", "dotdigital-audiences", "webhook"):
        cases = _load(destination)
        assert len(cases) >= 300, destination
        assert len({c["id"] for c in cases}) == len(cases)
        assert all("expected_requests" in c and ("expected_result" in c or "expected_error" in c) for c in cases)


@pytest.mark.anyio
@pytest.mark.parametrize("destination", [
    pytest.param(d, marks=[pytest.mark.xfail(strict=False, reason=XFAIL[d])] if d in XFAIL else [])
    for d in ("sendgrid", "sendgrid-audiences", "dotdigital", "dotdigital-audiences", "webhook")])
async def test_oracle_match_rate(destination: str, capsys: pytest.CaptureFixture[str]) -> None:
    outcomes = [await run_case(case) for case in _load(destination)]
    matched = [o for o in outcomes if o.matched]
    rate = len(matched) / len(outcomes)
    used: dict[str, int] = {}
    for o in matched:
        for rule in o.rules:
            used[rule] = used.get(rule, 0) + 1
    lines = [f"{destination}: {len(matched)}/{len(outcomes)} cases with Segment's effects ({rate:.1%}); "
             f"documented differences applied: {dict(sorted(used.items()))}"]
    lines += [f"  MISMATCH {o.case_id}: {o.reason}" for o in outcomes if not o.matched]
    with capsys.disabled():
        print("\n" + "\n".join(lines))
    assert rate >= REQUIRED_RATE, "\n".join(lines)
