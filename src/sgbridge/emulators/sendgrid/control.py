"""``/_emulator/...``: inspection and control of a SendGrid emulator (never faulted, no auth).

    GET    /_emulator/requests?method=&path=&host=&status=  -> {"requests": [...], "total": N}
    DELETE /_emulator/requests                               -> forget recorded requests
    GET    /_emulator/contacts | lists | mail | suppressions -> current data
    GET    /_emulator/jobs                                   -> every async job, with row errors
    POST   /_emulator/jobs/run                               -> finish all pending jobs now
    GET    /_emulator/jobs/{id}/errors                       -> CSV of a job's failed rows (errors_url)
    GET|POST|DELETE /_emulator/faults                        -> list / add / clear faults
    GET|POST /_emulator/rate_limits                          -> show / set {"bucket", "limit", "period"}
    POST   /_emulator/reset                                  -> empty account, no faults, fresh windows
"""

from __future__ import annotations

import csv
import io
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sgbridge.emulators.faults import FaultSpecError
from sgbridge.emulators.sendgrid.contact_ops import contact_json
from sgbridge.emulators.sendgrid.lists import list_json
from sgbridge.emulators.sendgrid.pipeline import SendGridEmulator
from sgbridge.emulators.sendgrid.ratelimit import RateLimit
from sgbridge.emulators.sendgrid.suppressions import group_json
from sgbridge.emulators.sendgrid.util import json_response


def _emulator(request: Request) -> SendGridEmulator:
    emulator: SendGridEmulator = request.app.state.emulator
    emulator.state.tick()  # what a test inspects is what a client would see now
    return emulator


def _base(request: Request) -> str:
    return f"{request.url.scheme}://{request.headers.get('host', request.url.netloc)}"


async def _json_body(request: Request) -> Any:
    try:
        return orjson.loads(await request.body())
    except orjson.JSONDecodeError:
        return None


async def requests_endpoint(request: Request) -> Response:
    state = _emulator(request).state
    if request.method == "DELETE":
        state.requests.clear()
        return json_response({"success": True})
    filters = [(k, v) for k, v in request.query_params.items() if k in ("method", "path", "host", "status")]
    found = state.recorded_requests(filters)
    return json_response({"requests": found, "total": len(found)})


async def contacts_endpoint(request: Request) -> Response:
    state = _emulator(request).state
    contacts = [
        {**contact_json(state, c, _base(request)), "custom_field_ids": dict(c.custom)} for c in state.contacts.values()
    ]
    return json_response({"contacts": contacts, "total": len(contacts)})


async def lists_endpoint(request: Request) -> Response:
    state = _emulator(request).state
    lists = [
        {**list_json(state, item, _base(request)), "contact_ids": [c.id for c in state.list_members(item.id)]}
        for item in state.lists.values()
    ]
    return json_response({"lists": lists, "total": len(lists)})


async def mail_endpoint(request: Request) -> Response:
    state = _emulator(request).state
    params = request.query_params
    messages = state.messages
    if "message_id" in params:
        messages = [m for m in messages if m["message_id"] == params["message_id"]]
    if "template_id" in params:
        messages = [m for m in messages if m["template_id"] == params["template_id"]]
    if "category" in params:
        messages = [m for m in messages if params["category"] in m["categories"]]
    if "to" in params:
        messages = [m for m in messages if any(r["email"] == params["to"].lower() for r in m["recipients"])]
    return json_response({"messages": messages, "total": len(messages)})


async def suppressions_endpoint(request: Request) -> Response:
    state = _emulator(request).state
    groups = [{**group_json(g), "members": list(g.members)} for g in state.groups.values()]
    return json_response({"global": list(state.global_suppressions), "groups": groups})


async def jobs_endpoint(request: Request) -> Response:
    state = _emulator(request).state
    jobs = [{**state.job_json(j), "errors": j.errors, "payload_size": len(j.payload.get("contacts", []))}
            for j in state.jobs.values()]
    return json_response({"jobs": jobs, "total": len(jobs)})


async def run_jobs_endpoint(request: Request) -> Response:
    return json_response({"ran": _emulator(request).state.tick(force=True)})


async def job_errors_endpoint(request: Request) -> Response:
    job = _emulator(request).state.jobs.get(request.path_params["job_id"])
    if job is None:
        return json_response({"errors": [{"field": None, "message": "job not found"}]}, 404)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["row", "identifiers", "error"])
    for error in job.errors:
        writer.writerow(["" if error["row"] is None else error["row"], orjson.dumps(error["identifiers"]).decode(),
                         error["message"]])
    return Response(out.getvalue(), media_type="text/csv")


async def faults_endpoint(request: Request) -> Response:
    faults = _emulator(request).faults
    if request.method == "DELETE":
        faults.clear()
    elif request.method == "POST":
        spec = await _json_body(request)
        specs = spec if isinstance(spec, list) else [spec]
        if not all(isinstance(s, dict) for s in specs):
            return json_response({"error": "a fault is a JSON object (or a list of them)"}, 400)
        try:
            for one in specs:
                faults.add(one)
        except FaultSpecError as exc:
            return json_response({"error": str(exc)}, 400)
    return json_response(faults.describe())


async def rate_limits_endpoint(request: Request) -> Response:
    limiter = _emulator(request).limiter
    if request.method == "POST":
        spec = await _json_body(request)
        specs = spec if isinstance(spec, list) else [spec]
        try:
            for one in specs:
                if not isinstance(one, dict) or not isinstance(one.get("bucket"), str):
                    raise ValueError('each rate limit needs "bucket" ("METHOD /path" or "default")')
                if one["bucket"] == "default":
                    limiter.default = RateLimit.parse(one)
                    limiter.reset()
                else:
                    limiter.configure(one["bucket"], one)
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
    Route("/_emulator/contacts", contacts_endpoint, methods=["GET"]),
    Route("/_emulator/lists", lists_endpoint, methods=["GET"]),
    Route("/_emulator/mail", mail_endpoint, methods=["GET"]),
    Route("/_emulator/suppressions", suppressions_endpoint, methods=["GET"]),
    Route("/_emulator/jobs", jobs_endpoint, methods=["GET"]),
    Route("/_emulator/jobs/run", run_jobs_endpoint, methods=["POST"]),
    Route("/_emulator/jobs/{job_id}/errors", job_errors_endpoint, methods=["GET"]),
    Route("/_emulator/faults", faults_endpoint, methods=["GET", "POST", "DELETE"]),
    Route("/_emulator/rate_limits", rate_limits_endpoint, methods=["GET", "POST"]),
    Route("/_emulator/reset", reset_endpoint, methods=["POST"]),
]
