"""sgbridge's mapping-kit and FQL ports against what Segment's own code produced for the same input.

The expected values are in tests/fixtures/mappings/*.json, written by generate_vectors.js from
@segment/actions-core and @segment/destination-subscriptions; no node is needed here.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from sgbridge.mappings import UNDEFINED, MappingError, SubscriptionError, apply_mapping, transform, validate_mapping
from sgbridge.mappings._js import to_json_data
from sgbridge.mappings.liquid_tokens import Unsupported
from sgbridge.mappings.subscriptions import parse_fql, parse_subscription

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "mappings"
MAPPING_FILES = ("mapping_core.json", "mapping_more.json", "liquid.json", "peers.json")
# sgbridge accepts `all` as "every event"; Segment's parseFql rejects it (docs/mappings-language.md).
KNOWN_DIFFERENCES = {"all"}


def _load(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / name).read_text())


def _mapping_cases() -> list[Any]:
    params = []
    for name in MAPPING_FILES:
        doc = _load(name)
        for case in doc["cases"]:
            payload = doc["payloads"][case["payload_ref"]] if "payload_ref" in case else case.get("payload")
            params.append(pytest.param(case, payload, id=f"{name.removesuffix('.json')}:{case['id']}"))
    return params


def _subscription_doc() -> dict[str, Any]:
    return _load("subscriptions.json")


def _subscription_cases() -> list[Any]:
    doc = _subscription_doc()
    return [pytest.param(c, c.get("events", doc["events"]), id=c["id"]) for c in doc["cases"]]


def _nan_to_none(v: Any) -> Any:
    """JSON.stringify writes NaN as null; compare the Python AST the same way."""
    if isinstance(v, float) and math.isnan(v):
        return None
    if isinstance(v, list):
        return [_nan_to_none(x) for x in v]
    if isinstance(v, dict):
        return {k: _nan_to_none(x) for k, x in v.items()}
    return v


@pytest.mark.parametrize(("case", "payload"), _mapping_cases())
def test_mapping_vector(case: dict[str, Any], payload: Any) -> None:
    expected = case["expected"]
    if case.get("sgbridge") == "unsupported":
        # A liquidjs feature sgbridge does not port: it must refuse clearly rather than differ silently.
        with pytest.raises(Unsupported, match="not supported by sgbridge"):
            transform(case["mapping"], payload)
        return
    try:
        got = to_json_data(transform(case["mapping"], payload))
    except MappingError as e:
        assert not isinstance(e, Unsupported), f"unexpectedly unsupported: {e}"
        assert not expected["ok"], f"sgbridge failed ({e}) where Segment returned {expected}"
        err = expected["error"]
        assert e.kind == err["kind"], (e.kind, err)
        if e.kind == "validation":
            assert [i.segment_message for i in e.issues] == err["messages"]
        elif not str(e).startswith("@liquid: "):
            # liquidjs's own messages carry line/column decorations; for those, failing is what counts.
            assert str(e) == err["messages"][0]
        return
    assert expected["ok"], f"Segment failed with {expected['error']} but sgbridge returned {got!r}"
    if expected.get("undefined"):
        assert got is UNDEFINED
    else:
        assert got == expected["output"]


@pytest.mark.parametrize(("case", "payload"), _mapping_cases())
def test_validate_mapping_vector(case: dict[str, Any], payload: Any) -> None:
    del payload
    expected = case["validation"]
    try:
        validate_mapping(case["mapping"])
    except MappingError as e:
        assert expected is not None, f"sgbridge rejected a mapping Segment accepts: {e}"
        assert [i.segment_message for i in e.issues] == expected
        assert all(str(i).startswith(("mapping.", "mapping: ")) for i in e.issues)
        return
    assert expected is None, f"Segment rejects this mapping: {expected}"


@pytest.mark.parametrize(("case", "events"), _subscription_cases())
def test_subscription_vector(case: dict[str, Any], events: list[dict[str, Any]]) -> None:
    expected = case["expected"]
    text = case["subscription"]
    if text in KNOWN_DIFFERENCES:
        assert not expected["ok"]
        sub = parse_subscription(text)
        assert all(sub.matches(e) for e in events)
        return
    if not expected["ok"]:
        with pytest.raises(SubscriptionError):
            parse_subscription(text)
        return
    sub = parse_subscription(text)
    assert _nan_to_none(sub.ast) == expected["ast"]
    assert parse_fql(text) == sub.ast
    for event, want in zip(events, expected["results"], strict=True):
        if isinstance(want, dict):
            with pytest.raises(SubscriptionError):
                sub.matches(event)
        else:
            assert sub.matches(event) is want, event


def test_vector_counts() -> None:
    """The brief's floor: ≥150 authored mapping cases, ≥80 triggers, every peer fixture mapping."""
    authored = sum(len(_load(n)["cases"]) for n in MAPPING_FILES if n not in ("peers.json", "liquid.json"))
    assert authored >= 150
    assert len(_subscription_doc()["cases"]) >= 80
    assert len(_load("peers.json")["cases"]) > 0


def test_apply_mapping_returns_json_data() -> None:
    payload = {"properties": {"a": None, "tags": ["x"]}}
    out = apply_mapping({"a": {"@path": "$.properties.a"}, "b": [{"@path": "$.nope"}], "c": {"@path": "$.x"}}, payload)
    assert out == {"a": None, "b": [None]}


@pytest.mark.parametrize(("case", "payload"), _mapping_cases())
def test_compiled_mapping_matches_transform(case: dict[str, Any], payload: Any) -> None:
    """The delivery path's compiled mappings give what transform gives, for every valid mapping."""
    from sgbridge.mappings.compiled import CompiledMapping

    try:
        validate_mapping(case["mapping"])
        expected: Any = ("ok", to_json_data(transform(case["mapping"], payload)))
    except MappingError as e:
        if e.kind == "validation":
            return  # compiled mappings are only made from mappings that passed validation
        expected = ("error", str(e))
    try:
        got: Any = ("ok", CompiledMapping(case["mapping"])(payload))
    except MappingError as e:
        got = ("error", str(e))
    assert got == expected
