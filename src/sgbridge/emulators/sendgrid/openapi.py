"""Request validation against SendGrid's official OpenAPI 3.1 specs.

The emulator is only useful if it is at least as strict as SendGrid, and the cheapest way to
be exactly as strict as *documented* is to validate with the published specs themselves
(twilio/sendgrid-oai, one JSON file per API area) instead of re-typing their rules. The package
ships the files the emulator uses, pruned to its operations (``specs/``, see its README). OpenAPI
3.1 schemas are JSON Schema 2020-12, so ``jsonschema`` validates them directly; a
``referencing`` registry resolves their ``#/components/...`` references inside each file.
``format`` stays an annotation, as in the OAS 3.1 base dialect: the emulator checks e-mail
addresses itself where SendGrid is known to (see ``util.is_valid_email``).

Path and query values arrive as strings; they are converted to the parameter's declared type
(integer, number, boolean, arrays of those) before validation, as an OpenAPI server would.
Header parameters (``on-behalf-of``, ``Content-Encoding``) are optional everywhere and are not
validated.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import quote

import orjson

# jsonschema ships no type information and the project's dev extras carry no stubs for it.
from jsonschema import Draft202012Validator  # type: ignore[import-untyped]
from jsonschema.exceptions import ValidationError  # type: ignore[import-untyped]
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from sgbridge.emulators.sendgrid.quirks import apply_quirks
from sgbridge.emulators.sendgrid.util import FieldError

SPEC_DIR_ENV = "SGBRIDGE_SENDGRID_OPENAPI_DIR"
URI_PREFIX = "urn:sendgrid-oai:"
HTTP_METHODS = ("get", "put", "post", "delete", "patch")
MAX_REPORTED_ERRORS = 50  # a 30,000-contact body can fail everywhere; the first 50 say enough
_INTEGER = re.compile(r"-?\d+")


class SpecError(RuntimeError):
    """The spec folder is missing, or lacks an operation the emulator implements."""


def bundled_spec_dir() -> Path:
    """The spec files shipped in the package (``specs/``, made by ``tools/bundle_sendgrid_openapi.py``)."""
    return Path(__file__).resolve().with_name("specs")


def default_spec_dir() -> Path:
    """``$SGBRIDGE_SENDGRID_OPENAPI_DIR``, else the specs bundled in the package."""
    configured = os.environ.get(SPEC_DIR_ENV)
    if configured:
        return Path(configured)
    return bundled_spec_dir()


def _pointer_escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def _format_path(parts: Sequence[str | int]) -> str | None:
    """SendGrid reports fields as dotted paths with list indexes: ``personalizations.0.to``."""
    return ".".join(str(p) for p in parts) or None


@dataclass
class Parameter:
    name: str
    location: str  # "path" or "query"
    required: bool
    kind: str | None  # declared JSON type, used to convert the string value
    item_kind: str | None
    validator: Draft202012Validator


@dataclass
class Operation:
    method: str
    path: str
    spec_file: str
    operation_id: str
    parameters: list[Parameter] = field(default_factory=list)
    body_validator: Draft202012Validator | None = None

    def validate(
        self, path_params: Mapping[str, str], query: Sequence[tuple[str, str]], body: Any
    ) -> tuple[list[FieldError], dict[str, Any]]:
        """Errors (empty when valid) and the converted path + query values by name."""
        errors: list[FieldError] = []
        values: dict[str, Any] = {}
        for param in self.parameters:
            if param.location == "path":
                raw: list[str] = [path_params[param.name]] if param.name in path_params else []
            else:
                raw = [v for k, v in query if k == param.name]
            if not raw:
                if param.required:
                    errors.append(FieldError(param.name, f"{param.name} is required"))
                continue
            value = _convert(raw, param.kind, param.item_kind)
            problems = sorted(param.validator.iter_errors(value), key=lambda e: list(e.absolute_path))
            errors += [FieldError(param.name, e.message) for e in problems[:1]]
            values[param.name] = value
        if self.body_validator is not None:
            found = sorted(self.body_validator.iter_errors(body), key=lambda e: [str(p) for p in e.absolute_path])
            errors += [_body_error(e) for e in found[:MAX_REPORTED_ERRORS]]
        return errors, values


def _convert_one(value: str, kind: str | None) -> Any:
    if kind == "integer" and _INTEGER.fullmatch(value):
        return int(value)
    if kind == "number":
        try:
            return int(value) if _INTEGER.fullmatch(value) else float(value)
        except ValueError:
            return value
    if kind == "boolean" and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return value  # left as a string: the validator then reports the type mismatch


def _convert(raw: list[str], kind: str | None, item_kind: str | None) -> Any:
    if kind == "array":
        return [_convert_one(v, item_kind) for v in raw]
    return _convert_one(raw[-1], kind)


def _body_error(error: ValidationError) -> FieldError:
    parts: list[str | int] = list(error.absolute_path)
    if error.validator == "required" and isinstance(error.instance, dict):
        missing = [name for name in error.validator_value if name not in error.instance]
        if missing:
            parts.append(missing[0])
    return FieldError(_format_path(parts), error.message)


class SpecSet:
    """All spec files of one folder, patched, indexed by (method, path template)."""

    def __init__(self, directory: Path) -> None:
        if not directory.is_dir():
            raise SpecError(
                f"SendGrid OpenAPI folder not found: {directory} (set {SPEC_DIR_ENV} or pass openapi_dir=)"
            )
        self.directory = directory
        self.docs: dict[str, dict[str, Any]] = {
            p.name: orjson.loads(p.read_bytes()) for p in sorted(directory.glob("*.json"))
        }
        apply_quirks(self.docs)
        self.registry: Registry[Any] = Registry().with_resources(
            (URI_PREFIX + name, Resource.from_contents(doc, default_specification=DRAFT202012))
            for name, doc in self.docs.items()
        )
        self._index: dict[tuple[str, str], str] = {}
        for name, doc in self.docs.items():
            for path, item in doc.get("paths", {}).items():
                for method in HTTP_METHODS:
                    if method in item:
                        self._index[(method.upper(), path)] = name
        self._compiled: dict[tuple[str, str], Operation] = {}

    def has(self, method: str, path: str) -> bool:
        return (method.upper(), path) in self._index

    def operation(self, method: str, path: str) -> Operation:
        key = (method.upper(), path)
        if key not in self._compiled:
            if key not in self._index:
                raise SpecError(f"{method} {path} is not in any spec file of {self.directory}")
            self._compiled[key] = self._compile(self._index[key], *key)
        return self._compiled[key]

    # -- compilation -------------------------------------------------------------------------

    def _resolve(self, doc: dict[str, Any], node: Any, pointer: str) -> tuple[Any, str]:
        """Follow OpenAPI-level ``$ref`` (parameters, request bodies) within one file."""
        while isinstance(node, dict) and isinstance(node.get("$ref"), str) and node["$ref"].startswith("#/"):
            pointer = node["$ref"][1:]
            node = doc
            for token in pointer.split("/")[1:]:
                node = node[token.replace("~1", "/").replace("~0", "~")]
        return node, pointer

    def _validator(self, name: str, pointer: str) -> Draft202012Validator:
        ref = f"{URI_PREFIX}{name}#{quote(pointer, safe='/~')}"
        return Draft202012Validator({"$ref": ref}, registry=self.registry)

    def _kind(self, doc: dict[str, Any], schema: Any) -> str | None:
        schema, _ = self._resolve(doc, schema, "")
        if not isinstance(schema, dict):
            return None
        kind = schema.get("type")
        if isinstance(kind, str):
            return kind
        return self._kind(doc, {"$ref": schema["$ref"]}) if "$ref" in schema else None

    def _compile(self, name: str, method: str, path: str) -> Operation:
        doc = self.docs[name]
        item_pointer = f"/paths/{_pointer_escape(path)}"
        item = doc["paths"][path]
        op = item[method.lower()]
        op_pointer = f"{item_pointer}/{method.lower()}"
        operation = Operation(method, path, name, str(op.get("operationId", "")))
        declared: dict[tuple[str, str], tuple[Any, str]] = {}
        # Path-level parameters first; the operation's own override them by (name, in).
        for base, params in ((item_pointer, item.get("parameters", [])), (op_pointer, op.get("parameters", []))):
            for i, raw in enumerate(params):
                param, pointer = self._resolve(doc, raw, f"{base}/parameters/{i}")
                if param.get("in") in ("path", "query"):
                    declared[(param["name"], param["in"])] = (param, pointer)
        for (pname, location), (param, pointer) in declared.items():
            schema = param.get("schema", {})
            items = schema.get("items") if isinstance(schema, dict) else None
            operation.parameters.append(
                Parameter(
                    name=pname,
                    location=location,
                    required=bool(param.get("required")) or location == "path",
                    kind=self._kind(doc, schema),
                    item_kind=self._kind(doc, items) if items is not None else None,
                    validator=self._validator(name, f"{pointer}/schema"),
                )
            )
        if "requestBody" in op:
            body, pointer = self._resolve(doc, op["requestBody"], f"{op_pointer}/requestBody")
            if "application/json" in body.get("content", {}):
                operation.body_validator = self._validator(name, f"{pointer}/content/application~1json/schema")
        return operation


@lru_cache(maxsize=4)
def _load(directory: str) -> SpecSet:
    return SpecSet(Path(directory))


def load_specs(directory: str | Path | None = None) -> SpecSet:
    """The spec set of ``directory`` (default: ``default_spec_dir()``), parsed once per process."""
    resolved = Path(directory) if directory is not None else default_spec_dir()
    return _load(str(resolved.resolve()))
