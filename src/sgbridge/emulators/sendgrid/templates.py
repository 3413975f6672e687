"""Transactional templates: the seeded ones that ``mail/send`` checks ``template_id`` against.

Only listing is implemented (``GET /v3/templates?generations=dynamic&page_size=N``, which is
how Segment's SendGrid destination offers templates); the set is fixed per emulator
(``templates=`` of the factory, default ``state.DEFAULT_TEMPLATES``) and restored on reset.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from starlette.responses import Response

from sgbridge.emulators.sendgrid.paging import token_page
from sgbridge.emulators.sendgrid.pipeline import Call, Endpoint
from sgbridge.emulators.sendgrid.state import Template
from sgbridge.emulators.sendgrid.util import json_response


def template_json(template: Template) -> dict[str, Any]:
    updated = datetime.fromtimestamp(template.updated_at, UTC).strftime("%Y-%m-%d %H:%M:%S")
    return {"id": template.id, "name": template.name, "generation": template.generation,
            "updated_at": updated, "versions": []}


def list_templates(call: Call) -> Response:
    generations = str(call.params.get("generations", "legacy")).split(",")  # the spec's default is legacy
    templates = [t for t in call.state.templates.values() if t.generation in generations]
    page, metadata = token_page(
        templates, url=f"{call.base_url}/v3/templates", size=int(call.params["page_size"]),
        token=call.params.get("page_token"), query={"generations": ",".join(generations)},
    )
    return json_response({"result": [template_json(t) for t in page], "_metadata": metadata})


ENDPOINTS = [Endpoint("GET", "/v3/templates", list_templates, ("templates.read",))]
