"""Known defects of the official SendGrid OpenAPI specs, corrected in one place.

The emulator validates requests against twilio/sendgrid-oai as published, so a wrong spec
would make it reject requests the real API accepts (or accept ones it rejects). Each patch
below names the defect and why the correction is the API's real behaviour. Only request-side
schemas are patched: the emulator never validates its own responses, so response-schema
defects (the segments 2.0 list body without ``results``, ``billable_count:`` in the list
count example, the OpenAPI 3.0 ``nullable`` keyword in ``ErrorResponse``) are left alone.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Spec = dict[str, Any]


def _operation(doc: Spec, path: str, method: str) -> dict[str, Any]:
    operation: dict[str, Any] = doc["paths"][path][method]
    return operation


def _mail_custom_args_is_an_object(doc: Spec) -> None:
    # tsg_mail_v3: message-level ``custom_args`` is typed "string", but SendGrid documents it as
    # an object of string values (like the per-personalization one), and every SDK sends an
    # object. As published, the spec would reject every correct request that uses it.
    schema = doc["components"]["requestBodies"]["PostMailSend"]["content"]["application/json"]["schema"]
    schema["properties"]["custom_args"] = {"type": "object", "maxProperties": 10000}


def _asm_group_ids_repeat(doc: Spec) -> None:
    # tsg_suppressions_v3: ``GET /v3/asm/groups?id=1&id=2`` takes the id parameter repeatedly
    # (the description says "retrieve multiple suppression groups"), yet it is typed as a
    # single integer. Accept a list of integers.
    for param in _operation(doc, "/v3/asm/groups", "get")["parameters"]:
        if param.get("name") == "id":
            param["schema"] = {"type": "array", "items": {"type": "integer"}}


def _asm_group_needs_a_name(doc: Spec) -> None:
    # tsg_suppressions_v3: the create-group body marks nothing as required, but a group cannot
    # exist without a name (the 201 response schema itself requires ``name``).
    schema = doc["components"]["schemas"]["SuppressionGroupRequestBaseProps"]
    schema["required"] = ["name"]


def _list_page_size_is_an_integer(doc: Spec) -> None:
    # tsg_mc_lists_v3: ``page_size`` is typed "number", which would let page_size=2.5 through;
    # a page size is a count of items.
    for param in _operation(doc, "/v3/marketing/lists", "get")["parameters"]:
        if param.get("name") == "page_size":
            param["schema"] = {**param["schema"], "type": "integer"}


QUIRKS: dict[str, list[Callable[[Spec], None]]] = {
    "tsg_mail_v3.json": [_mail_custom_args_is_an_object],
    "tsg_suppressions_v3.json": [_asm_group_ids_repeat, _asm_group_needs_a_name],
    "tsg_mc_lists_v3.json": [_list_page_size_is_an_integer],
}


def apply_quirks(docs: dict[str, Spec]) -> None:
    """Patch the loaded spec documents (file name -> parsed JSON) in place."""
    for name, patches in QUIRKS.items():
        doc = docs.get(name)
        if doc is None:
            continue  # a trimmed spec folder is allowed; a missing operation is reported later
        for patch in patches:
            patch(doc)
