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
    POST   /_emulator/seed {"contacts": N, "seed": S}        -> replace the account with a generated one
                                                                (seeding.seed_account); answers the counts
    GET|POST /_emulator/exports/config                       -> show / set {"rows_per_file": N|null,
                                                                "fail_next": K, "failure_message": "..."}
    POST   /_emulator/suppressions/{list} [{"email", "created"?, "reason"?, "status"?, "ip"?}]
                                                             -> add or replace bounces / blocks / spam_reports /
                                                                invalid_emails entries (created: epoch s)
    GET    /_emulator/downloads/{export_id}/{file}?token=    -> export files (module ``downloads``)
"""

from __future__ import annotations

import csv
import io
from typing import Any, TypeGuard

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sgbridge.emulators.faults import faults_control
from sgbridge.emulators.sendgrid.contact_ops import contact_json
from sgbridge.emulators.sendgrid.lists import list_json
from sgbridge.emulators.sendgrid.pipeline import SendGridEmulator
from sgbridge.emulators.sendgrid.ratelimit import RateLimit
from sgbridge.emulators.sendgrid.seeding import seed_account
from sgbridge.emulators.sendgrid.state import SuppressionEntry
from sgbridge.emulators.sendgrid.suppression_lists import LISTS
from sgbridge.emulators.sendgrid.suppressions import group_json
from sgbridge.emulators.sendgrid.util import is_valid_email, json_response

MAX_SEEDED_CONTACTS = 10_000_000


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
        {**contact_json(state, c, _base(request)), "custom_field_ids": dict(c.custom or {})}
        for c in state.contacts.values()
    ]
    return json_response({"contacts": contacts, "total": len(contacts)})


async def lists_endpoint(request: Request) -> Response:
    state = _emulator(request).state
    lists = []
    for item in state.lists.values():
        members = [c.id for c in state.list_members(item.id)]
        lists.append({**list_json(item, len(members), _base(request)), "contact_ids": members})
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
    lists = {name: [render(email, entry) for email, entry in container(state).items()]
             for name, (container, render) in LISTS.items()}
    return json_response({"global": list(state.global_suppressions), "groups": groups, **lists})


def _is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


async def add_suppressions_endpoint(request: Request) -> Response:
    state = _emulator(request).state
    name = request.path_params["list"]
    if name not in LISTS:
        return json_response({"error": f"unknown list {name!r}: one of {', '.join(LISTS)}"}, 404)
    rows = await _json_body(request)
    rows = rows if isinstance(rows, list) else [rows]
    for row in rows:
        if not isinstance(row, dict) or not is_valid_email(row.get("email")):
            return json_response({"error": 'each entry is an object with a valid "email"'}, 400)
        if "created" in row and not _is_int(row["created"]):
            return json_response({"error": '"created" is epoch seconds (an integer)'}, 400)
    container = LISTS[name][0](state)
    for row in rows:
        container[row["email"].lower()] = SuppressionEntry(
            int(row.get("created", state.now())), str(row.get("reason", "")), str(row.get("status", "")),
            str(row.get("ip", "")))
    return json_response({"list": name, "total": len(container)})


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
    return await faults_control(_emulator(request).faults, request.method, await request.body())


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


async def seed_endpoint(request: Request) -> Response:
    spec = await _json_body(request)
    spec = spec if isinstance(spec, dict) else {}
    contacts, seed = spec.get("contacts"), spec.get("seed", 0)
    if not _is_int(contacts) or not 0 <= contacts <= MAX_SEEDED_CONTACTS or not _is_int(seed):
        return json_response({"error": f'{{"contacts": 0..{MAX_SEEDED_CONTACTS}, "seed": integer}}'}, 400)
    # Blocks the server while it runs (seconds for a million contacts): it replaces the account.
    return json_response(seed_account(_emulator(request).state, contacts, seed))


async def exports_config_endpoint(request: Request) -> Response:
    state = _emulator(request).state
    if request.method == "POST":
        spec = await _json_body(request)
        if not isinstance(spec, dict):
            return json_response({"error": "expected a JSON object"}, 400)
        rows = spec.get("rows_per_file", state.export_rows_per_file)
        fail_next = spec.get("fail_next", state.export_failures_pending)
        message = spec.get("failure_message", state.export_failure_message)
        if (rows is not None and (not _is_int(rows) or rows < 1)) or not _is_int(fail_next) or fail_next < 0 \
                or not isinstance(message, str):
            return json_response({"error": 'expected {"rows_per_file": N >= 1 or null, "fail_next": K >= 0, '
                                           '"failure_message": "..."}'}, 400)
        state.export_rows_per_file, state.export_failures_pending = rows, fail_next
        state.export_failure_message = message
    return json_response({"rows_per_file": state.export_rows_per_file, "fail_next": state.export_failures_pending,
                          "failure_message": state.export_failure_message})


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
    Route("/_emulator/suppressions/{list}", add_suppressions_endpoint, methods=["POST"]),
    Route("/_emulator/jobs", jobs_endpoint, methods=["GET"]),
    Route("/_emulator/jobs/run", run_jobs_endpoint, methods=["POST"]),
    Route("/_emulator/jobs/{job_id}/errors", job_errors_endpoint, methods=["GET"]),
    Route("/_emulator/faults", faults_endpoint, methods=["GET", "POST", "DELETE"]),
    Route("/_emulator/rate_limits", rate_limits_endpoint, methods=["GET", "POST"]),
    Route("/_emulator/reset", reset_endpoint, methods=["POST"]),
    Route("/_emulator/seed", seed_endpoint, methods=["POST"]),
    Route("/_emulator/exports/config", exports_config_endpoint, methods=["GET", "POST"]),
]
