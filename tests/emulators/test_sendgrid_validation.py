"""SendGrid emulator: requests are validated against the official OpenAPI specs.

The request examples extracted from those specs (``api/examples_from_openapi.json``) must pass;
mechanically broken variants of them (a required property removed, a property of the wrong
type) must be answered 400 in SendGrid's ``{"errors": [{"field", "message"}]}`` shape.
"""

from __future__ import annotations

import copy
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from starlette.applications import Starlette

from sgbridge.emulators.sendgrid import create_sendgrid_emulator
from sgbridge.emulators.sendgrid.app import ENDPOINTS
from sgbridge.emulators.sendgrid.openapi import (
    SPEC_DIR_ENV,
    SpecError,
    bundled_spec_dir,
    default_spec_dir,
    load_specs,
)

pytestmark = pytest.mark.anyio

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
SENDGRID = SHARED / "fixtures" / "peers" / "sendgrid"
KEY = "SG.key"
EXAMPLE_TEMPLATE = "d-123abc456def789hij0klm123nop456qrs789tuv0xyz"  # used by the mail/send example


def _examples() -> list[tuple[str, str, str, dict[str, Any]]]:
    """(method, path, example name, body) for every implemented operation that has request examples."""
    operations = orjson.loads((SENDGRID / "api" / "examples_from_openapi.json").read_bytes())["operations"]
    implemented = {(e.method, e.path) for e in ENDPOINTS}
    found = []
    for key, info in operations.items():
        method, path = key.split(" ", 1)
        if (method, path) in implemented:
            found += [(method, path, name, body) for name, body in info.get("request_examples", {}).items()]
    return found


EXAMPLES = _examples()
EXAMPLE_IDS = [f"{m} {p} [{n}]" for m, p, n, _ in EXAMPLES]


def _body_properties(method: str, path: str) -> tuple[set[str], list[str]]:
    """(declared top-level properties, required ones) of the operation's request body schema."""
    specs = load_specs()
    validator = specs.operation(method, path).body_validator
    resolver = specs.registry.resolver()
    schema = resolver.lookup(validator.schema["$ref"]).contents
    if "$ref" in schema:
        schema = specs.registry.resolver(validator.schema["$ref"].split("#")[0]).lookup(schema["$ref"]).contents
    return set(schema.get("properties", {})), list(schema.get("required", []))


def _wrong_type(value: Any) -> Any:
    return 12345 if isinstance(value, str | list | dict) else "not-the-right-type"


@pytest.fixture
def app() -> Starlette:
    return create_sendgrid_emulator([KEY], job_delay_seconds=0, templates={EXAMPLE_TEMPLATE: "Spec example"})


@pytest.fixture
async def client(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://api.sendgrid.com",
                                 headers={"Authorization": f"Bearer {KEY}"}) as c:
        yield c


async def _concrete_path(client: httpx.AsyncClient, path: str) -> str:
    """Fill path parameters with objects that exist, so only validation decides the outcome."""
    if "{id}" in path:
        list_id = (await client.post("/v3/marketing/lists", json={"name": "for-example"})).json()["id"]
        path = path.replace("{id}", list_id)
    if "{custom_field_id}" in path:
        field = await client.post("/v3/marketing/field_definitions", json={"name": "for_example", "field_type": "Text"})
        path = path.replace("{custom_field_id}", field.json()["id"])
    if "{group_id}" in path:
        group = await client.post("/v3/asm/groups", json={"name": "for-example"})
        path = path.replace("{group_id}", str(group.json()["id"]))
    return path.replace("{identifier_type}", "email")


def test_the_examples_cover_the_implemented_request_bodies() -> None:
    covered = {(m, p) for m, p, _, _ in EXAMPLES}
    assert len(covered) >= 10
    assert ("POST", "/v3/mail/send") in covered and ("POST", "/v3/marketing/lists") in covered


@pytest.mark.parametrize("method,path,name,body", EXAMPLES, ids=EXAMPLE_IDS)
def test_spec_examples_pass_validation(method: str, path: str, name: str, body: dict[str, Any]) -> None:
    path_params = {"id": "x", "custom_field_id": "e1_T", "group_id": "1", "identifier_type": "email"}
    errors, _ = load_specs().operation(method, path).validate(path_params, [], body)
    assert errors == []


@pytest.mark.parametrize("method,path,name,body", EXAMPLES, ids=EXAMPLE_IDS)
async def test_spec_examples_are_accepted_over_http(
    client: httpx.AsyncClient, method: str, path: str, name: str, body: dict[str, Any]
) -> None:
    response = await client.request(method, await _concrete_path(client, path), json=body)
    expected = {"/v3/marketing/contacts/search/emails": 404, "/v3/marketing/contacts/batch": 404,
                "/v3/marketing/contacts/search/identifiers/{identifier_type}": 404}  # valid, but no contacts yet
    assert response.status_code == expected.get(path, response.status_code)
    assert 200 <= response.status_code < 300 or path in expected, response.text


@pytest.mark.parametrize("method,path,name,body", EXAMPLES, ids=EXAMPLE_IDS)
async def test_broken_variants_of_the_examples_are_rejected(
    client: httpx.AsyncClient, method: str, path: str, name: str, body: dict[str, Any]
) -> None:
    declared, required = _body_properties(method, path)
    variants: list[tuple[str, dict[str, Any]]] = []
    for prop in required:
        variants.append((prop, {k: v for k, v in body.items() if k != prop}))
    for prop in sorted(declared & set(body)):
        broken = copy.deepcopy(body)
        broken[prop] = _wrong_type(body[prop])
        variants.append((prop, broken))
    assert variants, "every example should yield at least one broken variant"
    url = await _concrete_path(client, path)
    for prop, variant in variants:
        response = await client.request(method, url, json=variant)
        assert response.status_code == 400, (prop, response.text)
        errors = response.json()["errors"]
        assert all(set(e) == {"field", "message"} for e in errors)
        assert any((e["field"] or "").split(".")[0] == prop for e in errors), (prop, errors)


async def test_path_and_query_parameters_are_validated_and_converted(client: httpx.AsyncClient) -> None:
    wrong_type = await client.get("/v3/marketing/lists", params={"page_size": "many"})
    too_big = await client.get("/v3/marketing/lists", params={"page_size": "1001"})
    assert wrong_type.status_code == too_big.status_code == 400
    assert too_big.json()["errors"] == [{"field": "page_size", "message": "1001 is greater than the maximum of 1000"}]
    bad_path = await client.post("/v3/marketing/contacts/search/identifiers/nickname", json={"identifiers": ["x"]})
    assert bad_path.status_code == 400 and bad_path.json()["errors"][0]["field"] == "identifier_type"
    missing_query = await client.get("/v3/templates")  # page_size is required by the spec
    assert missing_query.status_code == 400
    assert missing_query.json()["errors"] == [{"field": "page_size", "message": "page_size is required"}]


async def test_missing_or_malformed_bodies_are_400(client: httpx.AsyncClient) -> None:
    no_body = await client.put("/v3/marketing/contacts")
    assert no_body.json()["errors"] == [{"field": "contacts", "message": "'contacts' is a required property"}]
    not_json = await client.post("/v3/mail/send", content=b"{nope", headers={"Content-Type": "application/json"})
    assert (not_json.status_code, not_json.json()["errors"][0]["message"]) == (400, "invalid JSON")
    empty_list = await client.put("/v3/marketing/contacts", json={"contacts": []})
    assert empty_list.json()["errors"][0]["field"] == "contacts"
    too_long = await client.put("/v3/marketing/contacts", json={"contacts": [{"email": "a@example.com",
                                                                               "first_name": "x" * 51}]})
    assert too_long.status_code == 400 and too_long.json()["errors"][0]["field"] == "contacts.0.first_name"


async def test_quirk_mail_custom_args_is_an_object(client: httpx.AsyncClient) -> None:
    body = {"personalizations": [{"to": [{"email": "a@example.com"}]}], "from": {"email": "b@example.com"},
            "subject": "s", "content": [{"type": "text/plain", "value": "v"}], "custom_args": {"k": "v"}}
    assert (await client.post("/v3/mail/send", json=body)).status_code == 202
    unpatched = orjson.loads((SENDGRID / "openapi" / "tsg_mail_v3.json").read_bytes())
    schema = unpatched["components"]["requestBodies"]["PostMailSend"]["content"]["application/json"]["schema"]
    assert schema["properties"]["custom_args"]["type"] == "string"  # the defect the quirk exists for


def test_spec_folder_defaults_to_the_bundled_specs_and_follows_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv(SPEC_DIR_ENV, raising=False)
    assert default_spec_dir() == bundled_spec_dir()  # tests/packaging/test_bundled_specs.py checks its contents
    monkeypatch.setenv(SPEC_DIR_ENV, str(tmp_path))
    assert default_spec_dir() == tmp_path


def test_a_missing_folder_or_operation_fails_at_start_up(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="not found"):
        create_sendgrid_emulator(openapi_dir=tmp_path / "absent")
    partial = tmp_path / "partial"
    partial.mkdir()
    for name in ("tsg_mc_contacts_v3.json", "tsg_mc_lists_v3.json"):
        shutil.copy(SENDGRID / "openapi" / name, partial / name)
    with pytest.raises(SpecError, match="is not in any spec file"):
        create_sendgrid_emulator(openapi_dir=partial)


def test_a_copied_spec_folder_can_be_used(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    copied = tmp_path / "openapi"
    shutil.copytree(SENDGRID / "openapi", copied)
    monkeypatch.setenv(SPEC_DIR_ENV, str(copied))
    app = create_sendgrid_emulator()
    assert app.state.emulator.specs.directory == copied.resolve()
