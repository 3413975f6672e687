"""The action catalog: Segment's destinations and actions by their Segment names, plus sgbridge's.

``catalog/<destination>.json`` is generated from Segment's published packages
(``tools/generate_action_catalog.js``): titles, fields with their defaults, each action's
default trigger and the JSON schema actions-core checks payloads against. Settings and
mappings copied from Segment's UI therefore mean the same here. sgbridge adds what Segment's
destinations cannot do, marked ``origin="sgbridge"``: ``list_ids`` on Upsert Contact, list
membership and suppression actions, and an ``endpoint`` setting for the EU host everywhere.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import orjson

SEGMENT_DESTINATIONS = ("sendgrid", "sendgrid-audiences", "webhook", "dotdigital", "dotdigital-audiences")
GLOBAL_ENDPOINT = "https://api.sendgrid.com"
EU_ENDPOINT = "https://api.eu.sendgrid.com"


@dataclass(frozen=True)
class ActionSpec:
    destination: str
    key: str
    title: str
    description: str
    default_subscription: str | None
    batch: bool
    fields: dict[str, Any]
    default_mapping: dict[str, Any]
    schema: dict[str, Any]
    origin: str = "segment"


@dataclass(frozen=True)
class DestinationSpec:
    key: str
    name: str
    slug: str
    settings: dict[str, Any]
    actions: dict[str, ActionSpec]


class UnknownAction(LookupError):
    pass


def _identifier_field(label: str, trait: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(field, schema property) of a contact identifier, with Upsert Contact's default."""
    default = {"@if": {"exists": {"@path": f"$.traits.{trait}"}, "then": {"@path": f"$.traits.{trait}"},
                       "else": {"@path": f"$.properties.{trait}"}}}
    field = {"label": label, "type": "string", "allowNull": True, "default": default}
    return field, {"title": label, "type": ["string", "null"], "default": default}


def _contact_identifier_fields() -> tuple[dict[str, Any], dict[str, Any]]:
    fields: dict[str, Any] = {}
    props: dict[str, Any] = {}
    for key, label, trait in (("primary_email", "Email Address", "email"), ("phone_number_id", "Phone Number ID",
                              "phone"), ("external_id", "External ID", "external_id")):
        fields[key], props[key] = _identifier_field(label, trait)
    anonymous = {"@path": "$.anonymousId"}
    fields["anonymous_id"] = {"label": "Anonymous ID", "type": "string", "allowNull": True, "default": anonymous}
    props["anonymous_id"] = {"title": "Anonymous ID", "type": ["string", "null"], "default": anonymous}
    return fields, props


def _action(destination: str, key: str, title: str, description: str, fields: dict[str, Any],
            props: dict[str, Any], required: list[str]) -> ActionSpec:
    schema = {"$schema": "http://json-schema.org/schema#", "type": "object", "additionalProperties": False,
              "properties": props, "required": required}
    defaults = {k: f["default"] for k, f in fields.items() if "default" in f}
    return ActionSpec(destination, key, title, description, None, True, fields, defaults, schema, "sgbridge")


def _list_action(key: str, title: str, description: str) -> ActionSpec:
    fields, props = _contact_identifier_fields()
    fields["list_id"] = {"label": "List ID", "type": "string", "required": True,
                         "description": "The SendGrid Marketing list id."}
    props["list_id"] = {"title": "List ID", "type": "string"}
    return _action("sendgrid", key, title, description, fields, props, ["list_id"])


def _suppression_action(key: str, title: str, description: str) -> ActionSpec:
    field, prop = _identifier_field("Email Address", "email")
    group = {"label": "Unsubscribe Group ID", "type": "integer", "required": False,
             "description": "The unsubscribe (ASM) group; leave empty for the global unsubscribe list."}
    fields = {"email": field, "group_id": group}
    props = {"email": {**prop, "type": "string", "format": "email"},
             "group_id": {"title": group["label"], "type": "integer", "minimum": 1}}
    return _action("sendgrid", key, title, description, fields, props, ["email"])


def _sgbridge_extensions(destinations: dict[str, DestinationSpec]) -> None:
    sendgrid = destinations["sendgrid"]
    upsert = sendgrid.actions["updateUserProfile"]
    upsert.fields["list_ids"] = {
        "label": "List IDs", "type": "string", "multiple": True, "required": False, "origin": "sgbridge",
        "description": "sgbridge: SendGrid list ids to add the contact to (Segment's destination cannot set lists).",
    }
    upsert.schema["properties"]["list_ids"] = {"title": "List IDs", "type": "array", "items": {"type": "string"}}
    extra = [
        _list_action("addToList", "Add Contact to List", "Upsert the contact with the list in list_ids."),
        _list_action("removeFromList", "Remove Contact from List",
                     "Find the contact by its identifiers and remove it from the list (the contact stays)."),
        _suppression_action("addSuppression", "Add Suppression",
                            "Add the address to an unsubscribe group, or to the global unsubscribe list."),
        _suppression_action("removeSuppression", "Remove Suppression",
                            "Remove the address from an unsubscribe group, or from the global unsubscribe list."),
    ]
    sendgrid.actions.update({a.key: a for a in extra})
    endpoint = copy.deepcopy(sendgrid.settings["endpoint"])
    endpoint["origin"] = "sgbridge"
    destinations["sendgrid-audiences"].settings["endpoint"] = endpoint


def _load(key: str) -> DestinationSpec:
    raw = orjson.loads(resources.files("sgbridge.actions").joinpath("catalog").joinpath(f"{key}.json").read_bytes())
    actions = {
        name: ActionSpec(key, name, a["title"], a.get("description") or "", a.get("defaultSubscription"),
                         bool(a.get("batch")), a["fields"], a["defaultMapping"], a["schema"])
        for name, a in raw["actions"].items()
    }
    return DestinationSpec(key, raw["name"], raw["slug"], raw["settings"], actions)


def _twilio() -> DestinationSpec:
    """sgbridge's own SMS destination for SendGrid users: Twilio's Messages API (no Segment
    destination sends SMS through Twilio with a Segment mapping, so the fields are sgbridge's)."""
    phone = {"@if": {"exists": {"@path": "$.traits.phone"}, "then": {"@path": "$.traits.phone"},
                     "else": {"@path": "$.properties.phone"}}}
    fields = {
        "to": {"label": "To", "type": "string", "required": True, "default": phone,
               "description": "The recipient's number, E.164 (+15551234567)."},
        "from": {"label": "From", "type": "string", "required": False,
                 "description": "A number of the account (E.164), or leave empty and give messagingServiceSid."},
        "messagingServiceSid": {"label": "Messaging Service SID", "type": "string", "required": False,
                                "description": "MG…: Twilio picks the sender from the service's numbers."},
        "body": {"label": "Body", "type": "string", "required": True, "description": "The text (1,600 at most)."},
        "statusCallback": {"label": "Status Callback URL", "type": "string", "required": False,
                           "description": "Where Twilio posts the message's statuses (sgbridge's /webhooks/twilio)."},
    }
    props = {k: {"title": f["label"], "type": "string"} for k, f in fields.items()}
    props["to"]["default"] = phone
    action = _action("twilio", "sendSms", "Send SMS",
                     "Send a text message through Twilio's Messages API, once per Segment messageId.",
                     fields, props, ["to", "body"])
    action = ActionSpec(**{**action.__dict__, "batch": False})
    settings = {
        "accountSid": {"label": "Account SID", "type": "string", "required": True, "description": "AC…"},
        "authToken": {"label": "Auth Token", "type": "password", "required": True,
                      "description": "The account's auth token, or an API key's secret with apiKeySid."},
        "apiKeySid": {"label": "API Key SID", "type": "string", "required": False, "description": "SK…"},
        "endpoint": {"label": "Endpoint", "type": "string", "required": False, "origin": "sgbridge",
                     "description": "API base URL (default https://api.twilio.com; the emulator's)."},
    }
    return DestinationSpec("twilio", "Twilio SMS [sgbridge]", "sgbridge-twilio", settings, {"sendSms": action})


@cache
def catalog() -> dict[str, DestinationSpec]:
    destinations = {key: _load(key) for key in SEGMENT_DESTINATIONS}
    _sgbridge_extensions(destinations)
    destinations["twilio"] = _twilio()
    return destinations


def find_destination(name: str) -> DestinationSpec:
    """By key (``sendgrid``) or Segment's slug (``actions-sendgrid``)."""
    for spec in catalog().values():
        if name in (spec.key, spec.slug):
            return spec
    raise UnknownAction(f"unknown destination {name!r}; known: {', '.join(catalog())}")


def find_action(destination: str, action: str) -> ActionSpec:
    spec = find_destination(destination)
    if action not in spec.actions:
        raise UnknownAction(f"destination {spec.key!r} has no action {action!r}; it has: {', '.join(spec.actions)}")
    return spec.actions[action]
