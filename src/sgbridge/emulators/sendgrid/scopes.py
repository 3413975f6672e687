"""``GET /v3/scopes``: the scopes of the calling API key (how a client checks its permissions)."""

from __future__ import annotations

from starlette.responses import Response

from sgbridge.emulators.sendgrid.pipeline import Call, Endpoint
from sgbridge.emulators.sendgrid.util import json_response


def list_scopes(call: Call) -> Response:
    _, scopes = call.emulator.keys.authenticate(call.request.headers.get("authorization"))
    return json_response({"scopes": sorted(scopes)})


ENDPOINTS = [Endpoint("GET", "/v3/scopes", list_scopes)]
