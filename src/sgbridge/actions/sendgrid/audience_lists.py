"""Sync Audience without Segment: create (or find) the audience's list in SendGrid.

In Segment, Engage calls the destination's ``createAudience`` when an audience is connected: it
creates a SendGrid list (named ``listName``, else the audience's name) and stores its id, which
every event then carries as ``context.personas.external_audience_id``. Events sent to sgbridge
straight from Engage carry that id; events from anywhere else do not, and Segment's action refuses
them ("external_audience_id value is missing").

With the destination setting ``createAudienceLists = true`` (sgbridge's own), such an event gets a
placeholder id naming the list (the ``listName`` setting, else the audience key from
``context.personas.computation_key`` or the mapped ``segment_audience_key``). Before a window runs,
each placeholder is resolved once: an existing list of that name, or a new one
(``POST /v3/marketing/lists``); ids are cached for the life of the process.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

from sgbridge.actions.operations import ListRemoval, PlannedEvent, Upsert
from sgbridge.actions.sendgrid.api import SendGridApi, rejection, response_json

PLACEHOLDER = "sgbridge-list-named:"
SETTING = "createAudienceLists"
MAX_NAME = 100  # SendGrid's limit on list names


def with_list_placeholder(event: dict[str, Any], settings: dict[str, Any]) -> dict[str, Any]:
    """The event with a placeholder audience id when it has none and lists may be created."""
    personas = (event.get("context") or {}).get("personas")
    personas = personas if isinstance(personas, dict) else {}
    if not settings.get(SETTING) or personas.get("external_audience_id"):
        return event
    name = settings.get("listName") or personas.get("computation_key") or _audience_key(event)
    if not name:
        return event  # nothing to name the list after: Segment's own error follows
    patched = copy.copy(event)
    patched["context"] = {**(event.get("context") or {}),
                          "personas": {**personas, "external_audience_id": PLACEHOLDER + str(name)[:MAX_NAME]}}
    return patched


def _audience_key(event: dict[str, Any]) -> str | None:
    """An audience-shaped trait or property: the one boolean Engage sets (``{key: true}``)."""
    for container in (event.get("traits"), event.get("properties")):
        if isinstance(container, dict):
            flags = [k for k, v in container.items() if isinstance(v, bool)]
            if len(flags) == 1:
                return str(flags[0])
    return None


def _names(planned: Sequence[PlannedEvent]) -> set[str]:
    names: set[str] = set()
    for event in planned:
        for op in event.operations:
            ids = op.list_ids if isinstance(op, Upsert) else (op.list_id,) if isinstance(op, ListRemoval) else ()
            names.update(i.removeprefix(PLACEHOLDER) for i in ids if i.startswith(PLACEHOLDER))
    return names


def needs_list(event: PlannedEvent) -> bool:
    """Whether the event names a list that is still to be found or created."""
    return bool(_names([event]))


class AudienceLists:
    """Names → list ids, looked up or created once per name."""

    def __init__(self, api: SendGridApi) -> None:
        self.api = api
        self.ids: dict[str, str] = {}

    async def resolve(self, planned: Sequence[PlannedEvent]) -> None:
        """Replace every placeholder in the events' operations with the list's id.

        Raises ``Transient`` (the window is retried) or ``Rejection`` (its events are rejected).
        """
        missing = _names(planned) - set(self.ids)
        if missing:
            existing = await self._existing()
            for name in sorted(missing):
                self.ids[name] = existing[name] if name in existing else await self._create(name)
        for event in planned:
            for op in event.operations:
                if isinstance(op, Upsert):
                    op.list_ids = tuple(self._id(i) for i in op.list_ids)
                elif isinstance(op, ListRemoval):
                    op.list_id = self._id(op.list_id)

    def _id(self, list_id: str) -> str:
        return self.ids[list_id.removeprefix(PLACEHOLDER)] if list_id.startswith(PLACEHOLDER) else list_id

    async def _existing(self) -> dict[str, str]:
        found: dict[str, str] = {}
        url: str | None = "/v3/marketing/lists?page_size=1000"
        while url:
            response = await self.api.call("GET", url)
            if response.status_code >= 400:
                raise rejection(response, "list lookup")
            data = response_json(response) or {}
            for item in data.get("result") or []:
                found.setdefault(str(item.get("name")), str(item.get("id")))
            url = (data.get("_metadata") or {}).get("next")
        return found

    async def _create(self, name: str) -> str:
        response = await self.api.call("POST", "/v3/marketing/lists", body={"name": name})
        if response.status_code >= 400:
            raise rejection(response, f"creating list {name!r}")
        return str((response_json(response) or {}).get("id"))
