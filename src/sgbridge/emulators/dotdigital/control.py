"""``/_emulator/...``: inspection and control of a Dotdigital emulator (no auth, never faulted).

    GET    /_emulator/requests?method=&path=&host=&status=   recorded API requests (Authorization hidden)
    DELETE /_emulator/requests
    GET    /_emulator/contacts | lists | enrolments | sends | emails | sms | challenges
    POST   /_emulator/data-fields  [{"name", "type": String|Numeric|Date|Boolean, "default"?}]
    POST   /_emulator/lists        [{"name", "id"?, "visibility"?}]       answers the lists with their ids
    POST   /_emulator/programs     [{"id", "name", "status"?: Active|Draft|Deactivated|ReadOnly}]
    POST   /_emulator/campaigns    [{"id", "name", "subject"?, "fromName"?, "status"?}]
    POST   /_emulator/jobs/run                                finish every enrolment and send now
    GET|POST|DELETE /_emulator/faults                         the shared fault rules (emulators/faults.py)
    GET|POST /_emulator/rate_limits                           {"tier": low|medium|high|enrolments, "limit", "period"}
    POST   /_emulator/reset                                   an empty account, no faults, fresh windows
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sgbridge.emulators.dotdigital.contacts import contact_json
from sgbridge.emulators.dotdigital.pipeline import DotdigitalEmulator, json_response
from sgbridge.emulators.dotdigital.state import (
    DATA_FIELD_TYPES,
    PROGRAM_STATUSES,
    Campaign,
    DataField,
    Program,
)
from sgbridge.emulators.faults import faults_control


def _emulator(request: Request) -> DotdigitalEmulator:
    emulator: DotdigitalEmulator = request.app.state.emulator
    emulator.state.tick()
    return emulator


async def _rows(request: Request) -> list[Any] | None:
    try:
        body = orjson.loads(await request.body())
    except orjson.JSONDecodeError:
        return None
    rows = body if isinstance(body, list) else [body]
    return rows if all(isinstance(r, dict) for r in rows) else None


async def requests_endpoint(request: Request) -> Response:
    state = _emulator(request).state
    if request.method == "DELETE":
        state.requests.clear()
        return json_response({"success": True})
    found = state.requests
    for key in ("method", "path", "host", "status"):
        if key in request.query_params:
            wanted = request.query_params[key]
            found = [r for r in found if str(r[key]) == wanted]
    return json_response({"requests": found, "total": len(found)})


def _listing(name: str, rows: Callable[[DotdigitalEmulator], list[Any]]) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        found = rows(_emulator(request))
        return json_response({name: found, "total": len(found)})

    return endpoint


def _contacts(emulator: DotdigitalEmulator) -> list[Any]:
    return [contact_json(emulator.state, c) for c in emulator.state.contacts.values()]


def _lists(emulator: DotdigitalEmulator) -> list[Any]:
    state = emulator.state
    return [{"id": b.id, "name": b.name, "visibility": b.visibility,
             "contact_ids": [c.contact_id for c in state.members(b.id)]} for b in state.address_books.values()]


def _enrolments(emulator: DotdigitalEmulator) -> list[Any]:
    return [{"id": e.id, "programId": e.program_id, "contacts": e.contacts, "addressBooks": e.address_books,
             "status": e.status, "faults": e.faults} for e in emulator.state.enrolments.values()]


def _sends(emulator: DotdigitalEmulator) -> list[Any]:
    return [{"id": s.id, "campaignId": s.campaign_id, "contactIds": s.contact_ids,
             "addressBookIds": s.address_book_ids, "sendDate": s.send_date,
             "sendTimeOptimised": s.send_time_optimised, "status": s.status} for s in emulator.state.sends.values()]


async def seed_data_fields(request: Request) -> Response:
    rows = await _rows(request)
    state = _emulator(request).state
    if rows is None or not all(isinstance(r.get("name"), str) and r.get("type", "String") in DATA_FIELD_TYPES
                               for r in rows):
        return json_response({"error": f'expected [{{"name", "type": {"|".join(DATA_FIELD_TYPES)}, "default"?}}]'},
                             400)
    for r in rows:
        field = DataField(r["name"].upper(), r.get("type", "String"), r.get("visibility", "Private"), r.get("default"))
        state.data_fields[field.name] = field
    return json_response({"data_fields": [f.as_json() for f in state.data_fields.values()]})


async def seed_lists(request: Request) -> Response:
    rows = await _rows(request)
    state = _emulator(request).state
    if rows is None or not all(isinstance(r.get("name"), str) and isinstance(r.get("id", 0), int) for r in rows):
        return json_response({"error": 'expected [{"name", "id"?, "visibility"?}]'}, 400)
    made = [state.add_address_book(r["name"], r.get("visibility", "Private"), r.get("id")) for r in rows]
    return json_response({"lists": [{"id": b.id, "name": b.name, "visibility": b.visibility} for b in made]})


async def seed_programs(request: Request) -> Response:
    rows = await _rows(request)
    state = _emulator(request).state
    if rows is None or not all(isinstance(r.get("id"), int) and isinstance(r.get("name"), str)
                               and r.get("status", "Active") in PROGRAM_STATUSES for r in rows):
        return json_response({"error": f'expected [{{"id", "name", "status"?: {"|".join(PROGRAM_STATUSES)}}}]'}, 400)
    for r in rows:
        state.programs[r["id"]] = Program(r["id"], r["name"], r.get("status", "Active"), state.now())
    return json_response({"programs": sorted(state.programs)})


async def seed_campaigns(request: Request) -> Response:
    rows = await _rows(request)
    state = _emulator(request).state
    if rows is None or not all(isinstance(r.get("id"), int) and isinstance(r.get("name"), str) for r in rows):
        return json_response({"error": 'expected [{"id", "name", "subject"?, "fromName"?, "status"?}]'}, 400)
    for r in rows:
        state.campaigns[r["id"]] = Campaign(r["id"], r["name"], r.get("subject", ""), r.get("fromName", ""),
                                            r.get("status", "Unsent"))
    return json_response({"campaigns": sorted(state.campaigns)})


async def run_jobs(request: Request) -> Response:
    return json_response({"ran": _emulator(request).state.run_all()})


async def faults_endpoint(request: Request) -> Response:
    return await faults_control(_emulator(request).faults, request.method, await request.body())


async def rate_limits_endpoint(request: Request) -> Response:
    limiter = _emulator(request).limiter
    if request.method == "POST":
        rows = await _rows(request)
        try:
            if rows is None:
                raise ValueError('expected {"tier", "limit", "period"}')
            for one in rows:
                limiter.configure(str(one.get("tier")), one)
        except ValueError as exc:
            return json_response({"error": str(exc)}, 400)
    return json_response(limiter.describe())


async def reset_endpoint(request: Request) -> Response:
    emulator = _emulator(request)
    emulator.state.reset()
    emulator.faults.clear()
    emulator.limiter.reset()
    return json_response({"success": True})


ROUTES = [
    Route("/_emulator/requests", requests_endpoint, methods=["GET", "DELETE"]),
    Route("/_emulator/contacts", _listing("contacts", _contacts), methods=["GET"]),
    Route("/_emulator/lists", _listing("lists", _lists), methods=["GET"]),
    Route("/_emulator/lists", seed_lists, methods=["POST"]),
    Route("/_emulator/enrolments", _listing("enrolments", _enrolments), methods=["GET"]),
    Route("/_emulator/sends", _listing("sends", _sends), methods=["GET"]),
    Route("/_emulator/emails", _listing("emails", lambda e: list(e.state.emails)), methods=["GET"]),
    Route("/_emulator/sms", _listing("sms", lambda e: list(e.state.sms)), methods=["GET"]),
    Route("/_emulator/challenges", _listing("challenges", lambda e: list(e.state.challenges)), methods=["GET"]),
    Route("/_emulator/data-fields", seed_data_fields, methods=["POST"]),
    Route("/_emulator/programs", seed_programs, methods=["POST"]),
    Route("/_emulator/campaigns", seed_campaigns, methods=["POST"]),
    Route("/_emulator/jobs/run", run_jobs, methods=["POST"]),
    Route("/_emulator/faults", faults_endpoint, methods=["GET", "POST", "DELETE"]),
    Route("/_emulator/rate_limits", rate_limits_endpoint, methods=["GET", "POST"]),
    Route("/_emulator/reset", reset_endpoint, methods=["POST"]),
]
