#!/usr/bin/env python3
"""Generate Segment-refereed test cases: tests/fixtures/oracle/<destination>.json.

Segment's own destination code is the referee (issue 13, item 4). This script builds at least
300 varied cases per destination, runs each through Segment's published code with
``../shared/tools/segment-oracle`` (``node run-oracle.js --many``) and writes every case with
Segment's outputs (``expected_requests``, ``expected_result`` or ``expected_error``).
``tests/actions/test_oracle_cases.py`` replays them on sgbridge and compares the writes.

Regenerate (about a minute; nothing is installed inside the repository)::

    bash ../shared/tools/segment-oracle/install.sh        # once, into /tmp/oracle (~35 s)
    .venv/bin/python tools/generate_oracle_cases.py [--oracle-dir /tmp/oracle] [--only sendgrid]

The cases are deterministic: every random choice comes from ``random.Random`` seeded with
``SEED`` and the destination's name, events are passed as they are (``raw_event``: no random
``messageId`` or timestamps from ``createTestEvent``) and the clock is frozen at ``NOW``, so a
re-run with the same oracle pins gives the same files byte for byte.

What the cases cover (``scenario`` names the kind, ``tags`` the details):

* **sendgrid** — ``updateUserProfile`` single and batch: every reserved field, from traits
  (identify) or properties (track), custom fields by id, by name in any case, unknown names,
  values of every JSON type, nulls, numbers where strings are expected, no-default mappings,
  the EU endpoint, contacts repeated in a batch, missing identifiers alone and inside a batch,
  invalid emails inside a batch (SendGrid's 400 naming them), an error answered to the field
  definitions read (401, 403, 404, 429, 500; a bad key or scope answers every request) and to
  the PUT, large batches (up to 1,000 contacts). ``sendEmail``: every field, template and group
  id forms, cc/bcc with blanks, header and custom_args values of every type, ``send_at`` in and
  out of the 72 h window, each validation rule, invalid addresses, errors on the send.
* **sendgrid-audiences** — ``syncAudience`` single and batch: adds, removals, mixes, every
  identifier combination, user attributes, custom text/number/date fields (valid and not),
  invalid phone numbers, missing identifiers, missing ``external_audience_id`` (first row or a
  later one), missing or non-boolean audience keys, journey steps, track events; errors on the
  add and remove upserts, on the search (401, 403, 404, 429, 500), on the DELETE; searches
  finding nothing or several contacts; SendGrid's 400 naming invalid emails in a batch; the
  same contact entering and leaving in one batch; large batches (search and DELETE chunking).
* **dotdigital** — the seven actions: contact by email or by mobile number, every channel
  status and resubscribe option, lists, data fields of each type (valid, invalid, unknown),
  programs, campaigns now / scheduled / send-time optimised, transactional email with cc/bcc and
  invalid addresses, SMS and transactional SMS with from name, link shortening, unicode and
  invalid numbers; an error (401, 403, 404, 429, 500) answered to each request the action makes
  (data-field read, contact lookup, contact PATCH, the send or enrolment); batch attempts
  (Dotdigital's actions have no batch mode).
* **dotdigital-audiences** — ``syncAudience``: adds (PATCH) and removes (DELETE), email or
  mobile identifier, data fields, missing identifiers, non-numeric audience ids, missing audience
  keys, errors on the data-field read and on the write.
* **webhook** — ``send`` single and batch: every event type, ``data`` as the whole event or parts
  of it (paths, literals, templates, ``@if``, missing paths, undefined), POST/PUT/PATCH and invalid
  methods, mapped headers (and header names/values Segment's fetch refuses, Latin-1 values it
  sends), the ``sharedSecret`` signature (``X-Signature``) with several secrets, numbers as
  ``JSON.stringify`` writes them, invalid URLs, data that is not an object, an error answered to
  the request (401, 403, 404, 429, 500), batches of one to 1,000 events with ``batch_size``
  values, and batches Segment's pipeline splits before the action runs (more events than
  ``batch_size``; url/method/headers differing between events, the ``batch_keys``).

Some cases carry a ``reference``: Segment's outputs for the same input without the rows sgbridge
rejects or drops on its own (``reference.drop_rows``), and/or with the answers of a read that
failed put right (``reference.mock_responses``), i.e. what Segment writes once those rows are out
of the batch or the read works again. The comparison uses it where docs/actions.md says sgbridge
differs on purpose: a bad row is rejected alone instead of failing the batch, events that are not
audience membership changes are dropped, field definitions are read only when a custom field
needs them. A webhook batch the pipeline splits carries ``reference.groups`` instead: the batches
Segment's pipeline hands to the action (by url/method/headers, at most ``batch_size`` each), each
run through Segment's code (``reference.outcomes``), their requests one after the other
(``reference.expected_requests``); Segment's code alone sends the whole batch to the first
payload's url with its method and headers (the case's own outputs).

To keep the files small, recorded requests keep method, URL and JSON body (``body_raw`` only
when the body is not JSON); headers are left out (they are the same on every request: auth,
accept, content type). Webhook requests also keep their headers (``X-Signature``, the mapped
ones) and ``body_raw`` up to ``RAW_BODY_LIMIT`` characters, the bytes the signature covers.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import random
import string
import subprocess
import sys
import tempfile
import unicodedata
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "fixtures" / "oracle"
ORACLE_TOOL = ROOT.parent / "shared" / "tools" / "segment-oracle" / "run-oracle.js"
SEED = 13_004
NOW = "2024-06-01T12:00:00.000Z"
SG = "https://api.sendgrid.com"
SG_EU = "https://api.eu.sendgrid.com"
ERRORS = (401, 403, 404, 429, 500)
DD_HOSTS = ("https://r1-api.dotdigital.com", "https://r2-api.dotdigital.com", "https://r3-api.dotdigital.com")
DD_SETTINGS = {"username": "api_username", "password": "api_password"}
IMPORTS_MOCK = {"method": "GET", "url_regex": "/v3/marketing/contacts/imports/",
                "status": 200, "json": {"id": "job", "status": "completed", "results": {"errored_count": 0}}}

Case = dict[str, Any]

FIRST = ["Ada", "Grace", "Linus", "Mary", "José", "Zoë", "Li", "Noor", "Olu", "Sam", "Ana-María", "O'Brien"]
LAST = ["Lovelace", "Hopper", "Torvalds", "Jane", "Núñez", "Smith", "Wang", "Khan", "Adeyemi", "Müller"]
CITIES = ["London", "Paris", "Lagos", "São Paulo", "Tokyo", "Austin", "Berlin"]
COUNTRIES = ["GB", "FR", "NG", "BR", "JP", "US", "DE", "United States"]
DOMAINS = ["example.com", "example.org", "mail.example.net", "EXAMPLE.co.uk"]


class Gen:
    """Seeded values for one destination's cases."""

    def __init__(self, name: str) -> None:
        self.rng = random.Random(f"{SEED}-{name}")
        self.n = 0

    def seq(self) -> int:
        self.n += 1
        return self.n

    def chance(self, p: float) -> bool:
        return self.rng.random() < p

    def pick(self, seq: Any) -> Any:
        return self.rng.choice(list(seq))

    def sample(self, seq: Any, k: int) -> list[Any]:
        items = list(seq)
        return self.rng.sample(items, min(k, len(items)))

    def word(self, k: int = 6) -> str:
        return "".join(self.rng.choice(string.ascii_lowercase) for _ in range(k))

    def email(self) -> str:
        ascii_name = unicodedata.normalize("NFKD", self.pick(FIRST)).encode("ascii", "ignore").decode()
        ascii_name = ascii_name.lower().replace(" ", "").replace("'", "")
        local = f"{ascii_name}.{self.word(4)}{self.seq()}"
        if self.chance(0.15):
            local += "+tag"
        if self.chance(0.1):
            local = local.capitalize()
        return f"{local}@{self.pick(DOMAINS)}"

    def e164(self) -> str:
        first = str(self.rng.randint(1, 9))
        return "+" + first + "".join(str(self.rng.randint(0, 9)) for _ in range(self.rng.randint(8, 12)))

    def bad_phone(self) -> str:
        return self.pick(["07700 900123", "+0123456789", "12345", "+1 (555) 010-9999", "phone", "+1234567890123456"])

    def uid(self) -> str:
        return f"user-{self.seq()}"


def _event(g: Gen, kind: str, traits: dict[str, Any] | None = None, properties: dict[str, Any] | None = None,
           context: dict[str, Any] | None = None, user: bool = True, anon: bool = True,
           name: str = "Test Event") -> dict[str, Any]:
    n = g.seq()
    event: dict[str, Any] = {"type": kind, "messageId": f"msg-{n:05d}"}
    if user:
        event["userId"] = f"user-{n}"
    if anon:
        event["anonymousId"] = f"anon-{n}"
    if kind == "track":
        event["event"] = name
        event["properties"] = properties or {}
    if traits is not None or kind == "identify":
        event["traits"] = traits or {}
    event["context"] = context or {}
    return event


def _case(dest: str, action: str, scenario: str, tags: list[str], settings: dict[str, Any],
          mapping: dict[str, Any], events: list[dict[str, Any]] | dict[str, Any],
          mocks: list[dict[str, Any]], use_defaults: bool = True) -> Case:
    case: Case = {"destination": dest, "action": action, "scenario": scenario, "tags": tags, "settings": settings,
                  "mapping": mapping, "useDefaultMappings": use_defaults, "raw_event": True, "now": NOW}
    if isinstance(events, list):
        case["events"] = events
    else:
        case["event"] = events
    if any(m.get("method") == "PUT" and m.get("status", 200) < 300 for m in mocks) and IMPORTS_MOCK not in mocks:
        mocks = [*mocks, IMPORTS_MOCK]  # sgbridge follows the import job; Segment does not ask
    case["mock_responses"] = mocks
    return case


def _with_reference(case: Case, drop_rows: list[int], mocks: list[dict[str, Any]] | None = None) -> Case:
    case["reference"] = {"drop_rows": sorted(set(drop_rows)),
                         **({"mock_responses": mocks} if mocks is not None else {})}
    return case


# -- sendgrid ------------------------------------------------------------------------------------

PROFILE_TRAITS = ("first_name", "last_name", "phone", "whatsapp", "line", "facebook", "unique_name", "external_id")
ADDRESS_KEYS = ("country", "postal_code", "city", "state", "line1", "line2")
FIELD_DEFS = [{"id": "e1_N", "name": "Age", "field_type": "Number"},
              {"id": "e2_T", "name": "Source", "field_type": "Text"},
              {"id": "e3_D", "name": "Signup_Date", "field_type": "Date"},
              {"id": "w4_T", "name": "Plan", "field_type": "Text"},
              {"id": "e5_T", "name": "Favourite Colour", "field_type": "Text"}]


def _person(g: Gen, fields: int = 6, identifiers: tuple[str, ...] = ("email",)) -> dict[str, Any]:
    traits: dict[str, Any] = {}
    if "email" in identifiers:
        traits["email"] = g.email()
    for key in g.sample(PROFILE_TRAITS, fields):
        traits[key] = {"first_name": g.pick(FIRST), "last_name": g.pick(LAST), "phone": g.e164(),
                       "whatsapp": g.e164(), "line": g.e164(), "facebook": f"fb.{g.word()}",
                       "unique_name": f"{g.word()}_{g.seq()}", "external_id": f"ext-{g.seq()}"}[key]
    if g.chance(0.6):
        traits["address"] = {k: {"country": g.pick(COUNTRIES), "postal_code": str(g.rng.randint(10000, 99999)),
                                 "city": g.pick(CITIES), "state": g.pick(["CA", "NY", "Bavaria", "Île-de-France"]),
                                 "line1": f"{g.rng.randint(1, 999)} {g.pick(LAST)} Street",
                                 "line2": f"Flat {g.rng.randint(1, 40)}"}[k]
                             for k in g.sample(ADDRESS_KEYS, g.rng.randint(1, 6))}
    return traits


def _custom_value(g: Gen) -> Any:
    return g.pick([42, 3.5, "facebook", "", True, False, ["a", "b"], {"k": 1}, 0, "2024-05-01", -7])


def _custom_fields(g: Gen, traits: dict[str, Any], unknown: bool = False) -> tuple[dict[str, Any], list[str]]:
    mapping: dict[str, Any] = {}
    tags = []
    for f in g.sample(FIELD_DEFS, g.rng.randint(1, 4)):
        style = g.pick(["id", "name", "NAME", "MiXeD"])
        key = {"id": f["id"], "name": f["name"], "NAME": f["name"].upper(),
               "MiXeD": "".join(c.upper() if i % 2 else c.lower() for i, c in enumerate(f["name"]))}[style]
        trait = f"cf_{f['id']}"
        traits[trait] = _custom_value(g)
        mapping[key] = {"@path": f"$.traits.{trait}"}
        tags.append(f"custom-by-{style.lower()}")
    if unknown:
        traits["cf_unknown"] = "x"
        mapping[g.pick(["Unknown_Field", "e99_T", "agee"])] = {"@path": "$.traits.cf_unknown"}
        tags.append("custom-unknown")
    return mapping, sorted(set(tags))


def _sg_settings(g: Gen, eu: bool | None = None) -> dict[str, Any]:
    eu = g.chance(0.12) if eu is None else eu
    settings: dict[str, Any] = {"sendGridApiKey": "test-api-key"}
    if eu:
        settings["endpoint"] = SG_EU
    return settings


def _fd_mock(base: str, status: int = 200) -> dict[str, Any]:
    body: Any = {"custom_fields": FIELD_DEFS} if status == 200 else {"errors": [{"message": f"HTTP {status}"}]}
    return {"method": "GET", "url": f"{base}/v3/marketing/field_definitions", "status": status, "json": body}


def _put_mock(base: str, status: int = 202, errors: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    refused = {"errors": errors or [{"field": None, "message": f"HTTP {status}"}]}
    body: Any = {"job_id": "job-1"} if status < 300 else refused
    return {"method": "PUT", "url": f"{base}/v3/marketing/contacts", "status": status, "json": body}


def _catch_all(status: int) -> dict[str, Any]:
    message = {401: "authorization required", 403: "access forbidden"}.get(status, f"HTTP {status}")
    return {"url_regex": ".*", "status": status, "json": {"errors": [{"field": None, "message": message}]}}


def _upsert_event(g: Gen, *, from_props: bool = False, fields: int | None = None,
                  identifiers: tuple[str, ...] = ("email",), custom: bool = False,
                  unknown: bool = False) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
    traits = _person(g, g.rng.randint(0, 8) if fields is None else fields, identifiers)
    mapping: dict[str, Any] = {}
    tags: list[str] = []
    if custom or unknown:
        cf, tags = _custom_fields(g, traits, unknown)
        mapping["customFields"] = cf
    if from_props:
        event = _event(g, "track", properties=traits, anon="anonymous_id" in identifiers or g.chance(0.5))
        if custom or unknown:
            mapping["customFields"] = {k: {"@path": v["@path"].replace("$.traits.", "$.properties.")}
                                       for k, v in mapping["customFields"].items()}
        tags.append("from-properties")
    else:
        event = _event(g, "identify", traits, anon="anonymous_id" in identifiers or g.chance(0.5))
    return event, mapping, tags


def _merge_custom(mappings: list[dict[str, Any]]) -> dict[str, Any]:
    """One mapping for a batch: custom field keys read from traits or properties, whichever exists."""
    keys: dict[str, Any] = {}
    for m in mappings:
        for k, v in (m.get("customFields") or {}).items():
            path = v["@path"].split(".", 2)[2]
            keys[k] = {"@if": {"exists": {"@path": f"$.traits.{path}"}, "then": {"@path": f"$.traits.{path}"},
                               "else": {"@path": f"$.properties.{path}"}}}
    return {"customFields": keys} if keys else {}


def sendgrid_cases(g: Gen) -> list[Case]:
    cases: list[Case] = []
    A = "updateUserProfile"

    def single(scenario: str, tags: list[str], settings: dict[str, Any], mapping: dict[str, Any],
               event: dict[str, Any], mocks: list[dict[str, Any]], use_defaults: bool = True) -> Case:
        case = _case("sendgrid", A, scenario, ["single", *tags], settings, mapping, event, mocks, use_defaults)
        cases.append(case)
        return case

    # Single contacts, every field, from traits or properties, custom fields of every type.
    for i in range(45):
        settings = _sg_settings(g)
        base = settings.get("endpoint", SG)
        ids = tuple(g.sample(["email", "anonymous_id", "external_id"], g.rng.randint(1, 3)))
        ev, mapping, tags = _upsert_event(g, from_props=g.chance(0.3), identifiers=ids, custom=g.chance(0.5),
                                          fields=8 if i < 5 else None)
        if "external_id" in ids and "external_id" not in (ev.get("traits") or ev.get("properties") or {}):
            (ev.get("traits") if "traits" in ev else ev["properties"])["external_id"] = f"ext-{g.seq()}"
        if "email" not in ids and g.chance(0.5):
            ev.pop("anonymousId", None)
            (ev.get("traits") if "traits" in ev else ev["properties"])["external_id"] = f"ext-{g.seq()}"
        single("fields", tags + (["eu"] if base == SG_EU else []), settings, mapping, ev,
               [_fd_mock(base), _put_mock(base), IMPORTS_MOCK])

    # Nulls, numbers where strings are expected, other JSON types in reserved fields.
    for kind in ["nulls"] * 6 + ["numbers"] * 6 + ["wrong-types"] * 6:
        traits = _person(g, 4)
        if kind == "nulls":
            for key in g.sample(["first_name", "last_name", "phone", "facebook"], 2):
                traits[key] = None
            traits.setdefault("address", {})["city"] = None
        elif kind == "numbers":
            traits["address"] = {"postal_code": g.rng.randint(10000, 99999), "line1": 221}
            traits["first_name"] = g.pick([7, 3.25, 0])
        else:
            traits[g.pick(["first_name", "last_name", "unique_name"])] = g.pick([{"a": 1}, ["x"], True])
        ev = _event(g, "identify", traits)
        single(kind, [], _sg_settings(g, False), {}, ev, [_fd_mock(SG), _put_mock(SG), IMPORTS_MOCK])

    # Explicit mappings without the defaults.
    for _ in range(8):
        ev = _event(g, "identify", _person(g, 5))
        mapping = {"primary_email": {"@path": "$.traits.email"},
                   "first_name": {"@path": "$.traits.first_name"},
                   "city": {"@path": "$.traits.address.city"}}
        if g.chance(0.5):
            mapping["anonymous_id"] = {"@path": "$.anonymousId"}
        if g.chance(0.5):
            ev["traits"]["cf_e1_N"] = g.rng.randint(1, 99)
            mapping["customFields"] = {"aGE": {"@path": "$.traits.cf_e1_N"}}
        single("no-defaults", [], _sg_settings(g, False), mapping, ev, [_fd_mock(SG), _put_mock(SG), IMPORTS_MOCK],
               use_defaults=False)

    # Missing or invalid identifiers; unknown custom field names.
    for i in range(10):
        traits = _person(g, 3, identifiers=())
        for key in ("external_id", "phone"):  # no identifier at all (phone is phone_number_id's default)
            traits.pop(key, None)
        if i % 3 == 0:
            traits["email"] = ""
        ev = _event(g, g.pick(["identify", "track"]), traits if i % 2 == 0 else None,
                    properties=None if i % 2 == 0 else traits, user=g.chance(0.5), anon=False)
        single("missing-identifier", [], _sg_settings(g, False), {}, ev, [_fd_mock(SG), _put_mock(SG)])
    for _ in range(8):
        ev, mapping, tags = _upsert_event(g, unknown=True)
        single("unknown-custom-field", tags, _sg_settings(g, False), mapping, ev, [_fd_mock(SG), _put_mock(SG)])

    # An error answered to the field definitions read, with and without custom fields.
    for status in ERRORS:
        for custom in (False, True):
            for _ in range(2):
                ev, mapping, tags = _upsert_event(g, custom=custom)
                if status in (401, 403):  # a bad key or scope: every request gets it
                    mocks = [_catch_all(status)]
                    tags.append("bad-key" if status == 401 else "bad-scope")
                else:
                    mocks = [_fd_mock(SG, status), _put_mock(SG), IMPORTS_MOCK]
                case = single("read-error", [f"field-definitions-{status}", *tags], _sg_settings(g, False), mapping,
                              ev, mocks)
                if status not in (401, 403):  # what Segment writes once the read works again
                    _with_reference(case, [], [_fd_mock(SG), _put_mock(SG), IMPORTS_MOCK])
    # ... and to the PUT.
    for status in (400, 401, 403, 404, 413, 429, 500, 503):
        ev, mapping, tags = _upsert_event(g, custom=g.chance(0.5))
        single("write-error", [f"put-{status}", *tags], _sg_settings(g, False), mapping, ev,
               [_fd_mock(SG), _put_mock(SG, status)])

    # Batches.
    def batch(scenario: str, tags: list[str], settings: dict[str, Any], mapping: dict[str, Any],
              events: list[dict[str, Any]], mocks: list[dict[str, Any]]) -> Case:
        case = _case("sendgrid", A, scenario, ["batch", *tags], settings, mapping, events, mocks)
        cases.append(case)
        return case

    def contacts(n: int, custom_p: float = 0.3) -> tuple[list[dict[str, Any]], dict[str, Any], list[str]]:
        events, mappings, tags = [], [], set()
        for _ in range(n):
            ids = tuple(g.sample(["email", "anonymous_id", "external_id"], g.rng.randint(1, 2))) \
                if g.chance(0.3) else ("email",)
            ev, m, t = _upsert_event(g, from_props=g.chance(0.25), identifiers=ids, custom=g.chance(custom_p))
            if "email" not in ids:
                (ev.get("traits") if "traits" in ev else ev["properties"])["external_id"] = f"ext-{g.seq()}"
            events.append(ev)
            mappings.append(m)
            tags.update(t)
        return events, _merge_custom(mappings), sorted(tags)

    for _ in range(40):
        settings = _sg_settings(g)
        base = settings.get("endpoint", SG)
        events, mapping, tags = contacts(g.rng.randint(2, 15))
        batch("batch", tags, settings, mapping, events, [_fd_mock(base), _put_mock(base), IMPORTS_MOCK])
    for _ in range(6):  # the same contact twice or more in one batch
        events, mapping, tags = contacts(g.rng.randint(3, 8), 0)
        for _ in range(g.rng.randint(1, 3)):
            twin = copy.deepcopy(g.pick(events))
            twin["messageId"] = f"msg-{g.seq():05d}"
            holder = twin.get("traits") if "traits" in twin else twin["properties"]
            holder["first_name"] = g.pick(FIRST)
            events.insert(g.rng.randint(0, len(events)), twin)
        batch("repeated-contact", tags, _sg_settings(g, False), mapping, events,
              [_fd_mock(SG), _put_mock(SG), IMPORTS_MOCK])
    for _ in range(14):  # a row without an identifier, or with an unknown custom field, inside a batch
        events, mapping, tags = contacts(g.rng.randint(3, 12))
        bad = g.sample(range(len(events)), g.rng.randint(1, 2))
        unknown = g.chance(0.4)
        for i in bad:
            holder = events[i].get("traits") if "traits" in events[i] else events[i]["properties"]
            if unknown:
                holder["cf_unknown_b"] = "x"
            else:
                for k in ("email", "external_id", "phone"):
                    holder.pop(k, None)
                events[i].pop("anonymousId", None)
        if unknown:
            mapping.setdefault("customFields", {})["Not_A_Field"] = {
                "@if": {"exists": {"@path": "$.traits.cf_unknown_b"}, "then": {"@path": "$.traits.cf_unknown_b"},
                        "else": {"@path": "$.properties.cf_unknown_b"}}}
            # rows without the trait map nothing for it; only the bad rows name the unknown field
        mocks = [_fd_mock(SG), _put_mock(SG), IMPORTS_MOCK]
        case = batch("bad-row-in-batch", [*tags, "unknown-custom-field" if unknown else "missing-identifier"],
                     _sg_settings(g, False), mapping, events, mocks)
        _with_reference(case, bad)
    for _ in range(10):  # SendGrid's 400 naming invalid emails
        events, mapping, tags = contacts(g.rng.randint(3, 12), 0)
        with_email = [i for i, e in enumerate(events) if (e.get("traits") or e.get("properties") or {}).get("email")]
        bad = g.sample(with_email, g.rng.randint(1, min(2, len(with_email)))) if with_email else []
        errors = []
        for i in bad:
            holder = events[i].get("traits") if "traits" in events[i] else events[i]["properties"]
            holder["email"] = g.pick(["not-an-email", "a@b", "two@@example.com", "x@example.c0m"]) + str(i)
            errors.append({"field": f"contacts[{i}].email", "message": f"email '{holder['email']}' is not valid"})
        mocks = [_fd_mock(SG), _put_mock(SG, 400, errors), _put_mock(SG), IMPORTS_MOCK]
        case = batch("invalid-email-in-batch", tags, _sg_settings(g, False), mapping, events, mocks)
        _with_reference(case, bad, [_fd_mock(SG), _put_mock(SG), IMPORTS_MOCK])
    for status in ERRORS:  # errors on the read or the write of a batch
        for where in ("read", "write"):
            events, mapping, tags = contacts(g.rng.randint(2, 8), 0.5)
            if status in (401, 403):
                mocks = [_catch_all(status)]
            elif where == "read":
                mocks = [_fd_mock(SG, status), _put_mock(SG), IMPORTS_MOCK]
            else:
                mocks = [_fd_mock(SG), _put_mock(SG, status)]
            case = batch(f"{where}-error", [f"{'field-definitions' if where == 'read' else 'put'}-{status}", *tags],
                         _sg_settings(g, False), mapping, events, mocks)
            if where == "read" and status not in (401, 403):
                _with_reference(case, [], [_fd_mock(SG), _put_mock(SG), IMPORTS_MOCK])
    for n in (120, 300):
        events, mapping, tags = contacts(n, 0.1)
        batch("large-batch", [f"n={n}", *tags], _sg_settings(g, False), mapping, events,
              [_fd_mock(SG), _put_mock(SG), IMPORTS_MOCK])

    cases.extend(send_email_cases(g))
    return cases


def send_email_cases(g: Gen) -> list[Case]:
    cases: list[Case] = []

    def base_mapping(ev: dict[str, Any], full: bool) -> dict[str, Any]:
        mapping: dict[str, Any] = {"from": {"email": "shop@yellowstone.com", "name": "Yellowstone Shop"},
                                   "template_id": g.pick(["d-1234567890abcdef", "Receipt [d-5f1e0c2b]",
                                                          "d-abc123 Welcome", "Welcome email [d-0000aaaa]"])}
        if g.chance(0.3):
            mapping["to"] = {"email": {"@path": "$.context.traits.email"}, "name": {"@path": "$.properties.name"}}
        if full or g.chance(0.5):
            mapping["dynamic_template_data"] = {"@path": "$.properties.data"}
        if full or g.chance(0.4):
            mapping["cc"] = [{"email": g.email(), "name": g.pick(FIRST)} for _ in range(g.rng.randint(1, 3))]
            if g.chance(0.3):
                mapping["cc"].append({"email": "", "name": "blank"})
        if full or g.chance(0.3):
            mapping["bcc"] = [{"email": g.email()} for _ in range(g.rng.randint(1, 2))]
            if g.chance(0.3):
                mapping["bcc"].append({"email": "  "})
        if full or g.chance(0.4):
            mapping["headers"] = {"X-Campaign": g.pick(["spring", 42, True, 1.5]), "X-Trace": f"t-{g.seq()}"}
        if full or g.chance(0.4):
            mapping["custom_args"] = {"order_id": {"@path": "$.properties.order_id"}, "flag": g.pick([True, 7, "x"])}
        if full or g.chance(0.3):
            mapping["reply_to"] = g.pick([{"email": "help@yellowstone.com"}, {"email": "help@yellowstone.com",
                                                                              "name": "Help desk"}])
        if full or g.chance(0.3):
            mapping["categories"] = g.sample(["receipt", "transactional", "spring", "vip"], g.rng.randint(1, 3))
        if full or g.chance(0.3):
            mapping["ip_pool_name"] = g.pick(["transactional", "pool-eu-1"])
        if full or g.chance(0.3):
            mapping["group_id"] = g.pick(["123", "42 - Newsletters", "Receipts [77]"])
        if full or g.chance(0.2):
            mapping["send_at"] = g.pick(["2024-06-01T18:00:00.000Z", "2024-06-03T11:00:00Z",
                                         "2024-06-02T12:00:00+02:00"])
        if g.chance(0.15):
            mapping["domain"] = "yellowstone.com"
        return mapping

    def email_event() -> dict[str, Any]:
        props = {"email": g.email(), "name": f"{g.pick(FIRST)} {g.pick(LAST)}", "order_id": g.rng.randint(1000, 9999),
                 "data": {"total": round(g.rng.uniform(1, 500), 2), "items": [g.word(), g.word()],
                          "vip": g.chance(0.5), "nested": {"a": g.word()}}}
        ev = _event(g, "track", properties=props, name="Order Completed", user=g.chance(0.8))
        ev["context"]["traits"] = {"email": props["email"]}
        return ev

    def add(scenario: str, tags: list[str], mapping: dict[str, Any], ev: dict[str, Any], mocks: list[dict[str, Any]],
            settings: dict[str, Any] | None = None) -> None:
        settings = settings or _sg_settings(g)
        base = settings.get("endpoint", SG)
        mocks = [dict(m, url=m["url"].replace("{base}", base)) if "url" in m else m for m in mocks]
        cases.append(_case("sendgrid", "sendEmail", scenario, ["single", *tags], settings, mapping, ev, mocks))

    ok = [{"method": "POST", "url": "{base}/v3/mail/send", "status": 202, "json": {}}]
    for i in range(60):
        ev = email_event()
        add("send", [], base_mapping(ev, i < 6), ev, ok)
    invalid: list[tuple[str, Callable[[dict[str, Any]], None]]] = [
        ("group-id-not-numeric", lambda m: m.__setitem__("group_id", "newsletters")),
        ("domain-mismatch", lambda m: m.__setitem__("domain", "other.com")),
        ("template-not-dynamic", lambda m: m.__setitem__("template_id", g.pick(["1234", "Legacy [abc]", "x-123"]))),
        ("reserved-header", lambda m: m.__setitem__("headers", {g.pick(["To", "From", "x-sg-id", "CC"]): "x"})),
        ("category-too-long", lambda m: m.__setitem__("categories", ["c" * 256])),
        ("send-at-past", lambda m: m.__setitem__("send_at", "2024-05-31T12:00:00.000Z")),
        ("send-at-beyond-72h", lambda m: m.__setitem__("send_at", "2024-06-05T12:00:00.000Z")),
        ("ip-pool-too-short", lambda m: m.__setitem__("ip_pool_name", "ab")),
        ("ip-pool-too-long", lambda m: m.__setitem__("ip_pool_name", "p" * 64)),
        ("from-invalid-email", lambda m: m.__setitem__("from", {"email": "shop-at-yellowstone"})),
        ("to-missing", lambda m: m.__setitem__("to", {"email": {"@path": "$.properties.nobody"}})),
        ("to-invalid-email", lambda m: m.__setitem__("to", {"email": g.pick(["bad@", " spaced@example.com ",
                                                                             "no-at-sign"])})),
        ("cc-invalid-email", lambda m: m.__setitem__("cc", [{"email": "cc@example.com"}, {"email": "nope"}])),
        ("template-missing", lambda m: m.pop("template_id")),
    ]
    for name, change in invalid:
        for _ in range(3):
            ev = email_event()
            mapping = base_mapping(ev, False)
            change(mapping)
            add("invalid", [name], mapping, ev, ok)
    for status in (400, 401, 403, 404, 413, 429, 500, 503):
        for _ in range(2):
            ev = email_event()
            mocks = [_catch_all(status)] if status in (401, 403) else \
                [{"method": "POST", "url": "{base}/v3/mail/send", "status": status,
                  "json": {"errors": [{"message": f"HTTP {status}"}]}}]
            add("write-error", [f"mail-send-{status}"], base_mapping(ev, False), ev, mocks)
    return cases


# -- sendgrid-audiences ---------------------------------------------------------------------------

AUD_MAPPING: dict[str, Any] = {
    "identifiers": {"email": {"@if": {"exists": {"@path": "$.traits.email"}, "then": {"@path": "$.traits.email"},
                                      "else": {"@path": "$.context.traits.email"}}},
                    "anonymous_id": {"@path": "$.anonymousId"},
                    "external_id": {"@path": "$.traits.external_id"},
                    "phone_number_id": {"@path": "$.traits.phone_id"}},
    "custom_text_fields": {"@path": "$.traits.custom_text_fields"},
    "custom_number_fields": {"@path": "$.traits.custom_number_fields"},
    "custom_date_fields": {"@path": "$.traits.custom_date_fields"},
}


def _aud_event(g: Gen, list_id: str, key: str, member: Any, *, kind: str | None = None,
               ids: tuple[str, ...] = ("email",), attrs: bool = False, custom: str | None = None,
               klass: str = "audience", email: str | None = None) -> dict[str, Any]:
    kind = kind or g.pick(["identify", "identify", "track"])
    traits: dict[str, Any] = {}
    if "email" in ids:
        traits["email"] = email or g.email()
    if "external_id" in ids:
        traits["external_id"] = f"ext-{g.seq()}"
    if "phone_number_id" in ids:
        traits["phone_id"] = g.e164()
    if attrs:
        for k in g.sample(["first_name", "last_name", "phone", "street", "address_line_2", "city", "state",
                           "country", "postal_code"], g.rng.randint(1, 9)):
            traits[k] = {"first_name": g.pick(FIRST), "last_name": g.pick(LAST), "phone": g.e164(),
                         "street": f"{g.rng.randint(1, 99)} {g.pick(LAST)} Road", "address_line_2": "Unit 2",
                         "city": g.pick(CITIES), "state": "CA", "country": g.pick(COUNTRIES),
                         "postal_code": str(g.rng.randint(10000, 99999))}[k]
    if custom == "valid":
        traits["custom_text_fields"] = {"plan": g.pick(["gold", "silver", ""])}
        traits["custom_number_fields"] = {"score": g.pick([1, 2.5, 0, -3])}
        traits["custom_date_fields"] = {"signup": g.pick(["2024-01-15", "2024-03-09T10:00:00Z", "03/04/2024",
                                                         "2023-12-31T23:30:00.000Z"])}
    elif custom == "bad-text":
        traits["custom_text_fields"] = {"plan": g.pick([5, True])}
    elif custom == "bad-number":
        traits["custom_number_fields"] = {"score": g.pick(["5", "many", True])}
    elif custom == "bad-date":
        traits["custom_date_fields"] = {"signup": g.pick(["not a date", "2024-13-45", 20240101])}
    personas: dict[str, Any] = {"computation_class": klass, "computation_key": key}
    if list_id:
        personas["external_audience_id"] = list_id
    anon = "anonymous_id" in ids
    if kind == "identify":
        if member is not ...:
            traits[key] = member
        ev = _event(g, "identify", traits, context={"personas": personas}, anon=anon)
    else:
        props = {"audience_key": key}
        if member is not ...:
            props[key] = member
        ctx_traits = {k: v for k, v in traits.items() if k == "email"}
        ev = _event(g, "track", properties=props, context={"personas": personas, "traits": ctx_traits}, anon=anon,
                    name="Audience Entered" if member is True else "Audience Exited")
        ev["traits"] = {k: v for k, v in traits.items() if k != "email"}
    return ev


def _search_mock(ids: list[str], status: int = 200) -> dict[str, Any]:
    body: Any = {"result": [{"id": i} for i in ids], "contact_count": len(ids)} if status == 200 else \
        {"errors": [{"message": f"HTTP {status}"}]}
    return {"method": "POST", "url": f"{SG}/v3/marketing/contacts/search", "status": status, "json": body}


def _delete_mock(status: int = 202) -> dict[str, Any]:
    return {"method": "DELETE", "url_regex": "/v3/marketing/lists/[^/]+/contacts", "status": status,
            "json": {"job_id": "job-del"} if status < 300 else {"errors": [{"message": f"HTTP {status}"}]}}


def sendgrid_audiences_cases(g: Gen) -> list[Case]:
    cases: list[Case] = []
    settings = {"sendGridApiKey": "test-api-key"}

    def add(scenario: str, tags: list[str], events: list[dict[str, Any]], mocks: list[dict[str, Any]],
            batch: bool, mapping: dict[str, Any] | None = None) -> Case:
        case = _case("sendgrid-audiences", "syncAudience", scenario, ["batch" if batch else "single", *tags],
                     settings, copy.deepcopy(AUD_MAPPING if mapping is None else mapping),
                     events if batch else events[0], mocks)
        cases.append(case)
        return case

    def searches(n_removes: int, found_p: float = 0.85) -> list[dict[str, Any]]:
        return [_search_mock([f"c{g.seq()}" for _ in range(g.rng.choice([0, 1, 1, 1, 2]) if g.chance(found_p) else 0)])
                for _ in range(max(1, (n_removes + 9) // 10))]

    def std_mocks(n_removes: int) -> list[dict[str, Any]]:
        return [_put_mock(SG), _put_mock(SG), *searches(n_removes), _delete_mock(), IMPORTS_MOCK]

    def random_ids() -> tuple[str, ...]:
        return tuple(g.sample(["email", "anonymous_id", "external_id", "phone_number_id"], g.rng.randint(1, 4))) \
            if g.chance(0.5) else ("email",)

    # Single adds and removes, every identifier and attribute combination.
    for i in range(100):
        member = i % 2 == 0
        ev = _aud_event(g, f"list-{g.rng.randint(1, 5)}", f"aud_{g.word(5)}", member, ids=random_ids(),
                        attrs=g.chance(0.5), custom="valid" if g.chance(0.3) else None,
                        klass="journey_step" if g.chance(0.1) else "audience")
        add("add" if member else "remove", ["journey-step"] if ev["context"]["personas"]["computation_class"] ==
            "journey_step" else [], [ev], std_mocks(1), False)
    # Invalid single payloads.
    for kind in ["bad-phone-id", "bad-phone-attr", "bad-text", "bad-number", "bad-date", "no-identifier",
                 "no-audience-id", "invalid-email-format"] * 4:
        member = g.chance(0.5)
        ids: tuple[str, ...] = ("email",)
        ev = _aud_event(g, "" if kind == "no-audience-id" else "list-1", "aud_x", member,
                        ids=() if kind == "no-identifier" else ids,
                        custom=kind if kind in ("bad-text", "bad-number", "bad-date") else None)
        if kind == "bad-phone-id":
            ev["traits"]["phone_id"] = g.bad_phone()
        if kind == "bad-phone-attr":
            ev["traits"]["phone"] = g.bad_phone()
        if kind == "no-identifier":
            ev.pop("anonymousId", None)
        if kind == "invalid-email-format":
            target = ev["traits"] if "email" in ev["traits"] else ev["context"]["traits"]
            target["email"] = g.pick(["not-an-email", " spaced@example.com", "a@"])
        add("invalid", [kind, "add" if member else "remove"], [ev], std_mocks(1), False)
    # Missing audience keys / non-boolean membership values (single).
    for value in [..., "true", None, 1, "yes", ...]:
        for _ in range(2):
            ev = _aud_event(g, "list-1", "aud_k", value)
            add("not-membership", [f"value={value!r}"], [ev], std_mocks(1), False)
    # Errors on each request: the add upsert, the remove upsert, the search, the DELETE.
    for status in ERRORS:
        for where in ("add-put", "remove-put", "search", "delete"):
            member = where == "add-put"
            ev = _aud_event(g, "list-2", "aud_e", member, ids=random_ids())
            if status in (401, 403):
                mocks = [_catch_all(status)]
            elif where.endswith("put"):
                mocks = [_put_mock(SG, status), _search_mock(["c1"]), _delete_mock(), IMPORTS_MOCK]
            elif where == "search":
                mocks = [_put_mock(SG), _search_mock([], status), _delete_mock(), IMPORTS_MOCK]
            else:
                mocks = [_put_mock(SG), _search_mock(["c1", "c2"]), _delete_mock(status), IMPORTS_MOCK]
            add("request-error", [f"{where}-{status}"], [ev], mocks, False)

    # Batches.
    def batch_events(n: int, add_p: float, list_id: str = "list-7", key: str = "aud_batch") -> list[dict[str, Any]]:
        return [_aud_event(g, list_id, key, g.chance(add_p), ids=random_ids(), attrs=g.chance(0.3),
                           custom="valid" if g.chance(0.2) else None) for _ in range(n)]

    def count_removes(events: list[dict[str, Any]]) -> int:
        return sum(1 for e in events if (e.get("traits") or {}).get(e["context"]["personas"]["computation_key"]) is
                   False or (e.get("properties") or {}).get(e["context"]["personas"]["computation_key"]) is False)

    for _ in range(70):
        events = batch_events(g.rng.randint(2, 12), g.pick([0.0, 0.5, 1.0, 0.7]))
        add("batch", [], events, std_mocks(count_removes(events)), True)
    for kind in ["bad-phone-id", "bad-text", "bad-number", "bad-date", "no-identifier", "invalid-email-format"] * 3:
        events = batch_events(g.rng.randint(3, 10), 0.5)
        bad = g.sample(range(len(events)), g.rng.randint(1, 2))
        for i in bad:
            ev = events[i]
            key = ev["context"]["personas"]["computation_key"]
            member = (ev.get("traits") or {}).get(key, (ev.get("properties") or {}).get(key))
            events[i] = _aud_event(g, "list-7", key, member, ids=() if kind == "no-identifier" else ("email",),
                                   custom=kind if kind in ("bad-text", "bad-number", "bad-date") else None)
            if kind == "bad-phone-id":
                events[i]["traits"]["phone_id"] = g.bad_phone()
            if kind == "no-identifier":
                events[i].pop("anonymousId", None)
            if kind == "invalid-email-format":
                target = events[i]["traits"] if "email" in events[i]["traits"] else events[i]["context"]["traits"]
                target["email"] = "not-an-email"
        add("invalid-in-batch", [kind], events, std_mocks(count_removes(events)), True)
    for first in (True, False, False):  # external_audience_id missing on the first row / a later row
        events = batch_events(g.rng.randint(3, 8), 0.5)
        i = 0 if first else g.rng.randint(1, len(events) - 1)
        del events[i]["context"]["personas"]["external_audience_id"]
        case = add("missing-audience-id", ["first-row" if first else "later-row"], events,
                   std_mocks(count_removes(events)), True)
        if first:
            _with_reference(case, [0])
    for _ in range(12):  # audience key missing or not a boolean in some rows
        events = batch_events(g.rng.randint(3, 10), 0.6)
        bad = g.sample(range(len(events)), g.rng.randint(1, 2))
        for i in bad:
            key = events[i]["context"]["personas"]["computation_key"]
            holder = events[i]["traits"] if events[i]["type"] == "identify" else events[i]["properties"]
            value = g.pick([..., "true", None, "false"])
            if value is ...:
                holder.pop(key, None)
            else:
                holder[key] = value
        case = add("not-membership-in-batch", [], events, std_mocks(count_removes(events) + len(bad)), True)
        _with_reference(case, bad)
    for _ in range(10):  # SendGrid's 400 naming invalid emails (all adds, so one PUT)
        events = batch_events(g.rng.randint(3, 10), 1.0)
        with_email = [i for i, e in enumerate(events) if "email" in e.get("traits", {}) or
                      "email" in e["context"].get("traits", {})]
        if not with_email:
            continue
        bad = g.sample(with_email, g.rng.randint(1, min(2, len(with_email))))
        errors = []
        for i in bad:
            target = events[i]["traits"] if "email" in events[i].get("traits", {}) else events[i]["context"]["traits"]
            target["email"] = f"bounce{i}@example.invalid"
            errors.append({"field": f"contacts[{i}].email", "message": f"email '{target['email']}' is not valid"})
        case = add("invalid-email-in-batch", [], events, [_put_mock(SG, 400, errors), _put_mock(SG), IMPORTS_MOCK],
                   True)
        _with_reference(case, bad, [_put_mock(SG), IMPORTS_MOCK])
    for status in ERRORS:  # errors inside batches
        for where in ("add-put", "remove-put", "search", "delete"):
            events = batch_events(g.rng.randint(3, 8), 0.5)
            if status in (401, 403):
                mocks = [_catch_all(status)]
            elif where == "add-put":
                mocks = [_put_mock(SG, status), _put_mock(SG), *searches(count_removes(events)), _delete_mock(),
                         IMPORTS_MOCK]
            elif where == "remove-put":
                mocks = [_put_mock(SG), _put_mock(SG, status), *searches(count_removes(events)), _delete_mock(),
                         IMPORTS_MOCK]
            elif where == "search":
                mocks = [_put_mock(SG), _put_mock(SG), _search_mock([], status), _delete_mock(), IMPORTS_MOCK]
            else:
                mocks = [_put_mock(SG), _put_mock(SG), *searches(count_removes(events), 1.0), _delete_mock(status),
                         IMPORTS_MOCK]
            add("request-error", [f"{where}-{status}"], events, mocks, True)
    for _ in range(6):  # one contact entering and leaving within the batch
        events = batch_events(g.rng.randint(2, 6), 0.5)
        email = g.email()
        order = g.pick([(True, False), (False, True), (True, False, True)])
        for member in order:
            events.insert(g.rng.randint(0, len(events)), _aud_event(g, "list-7", "aud_batch", member, email=email,
                                                                    kind="identify"))
        add("same-contact-add-and-remove", ["then".join("+" if m else "-" for m in order)], events,
            std_mocks(count_removes(events)), True)
    for n, add_p in ((110, 0.0), (200, 0.5), (250, 1.0), (60, 0.0)):
        events = batch_events(n, add_p)
        removes = count_removes(events)
        mocks = [_put_mock(SG), _put_mock(SG),
                 *[_search_mock([f"c{g.seq()}" for _ in range(g.rng.randint(10, 50))])
                   for _ in range((removes // 12) + 1)],
                 _delete_mock(), IMPORTS_MOCK]
        add("large-batch", [f"n={n}"], events, mocks, True)
    return cases


# -- dotdigital -----------------------------------------------------------------------------------

DATA_FIELDS = [{"name": "FIRSTNAME", "type": "String", "visibility": "Private", "defaultValue": None},
               {"name": "AGE", "type": "Numeric", "visibility": "Private", "defaultValue": None},
               {"name": "BIRTHDAY", "type": "Date", "visibility": "Private", "defaultValue": None},
               {"name": "VIP", "type": "Boolean", "visibility": "Private", "defaultValue": None}]
LOCALES = ["en-EN", "fr-FR", "de-DE", "es-ES", "it-IT", "nl-NL", "pt-PT"]


def _dd_settings(g: Gen) -> dict[str, Any]:
    return {"api_host": g.pick(DD_HOSTS), **DD_SETTINGS}


def _dd_err(status: int) -> dict[str, Any]:
    return {"message": {401: "Authorization has been denied for this request.", 403: "Forbidden",
                        404: "Contact not found", 429: "Too many requests"}.get(status, "Internal server error")}


def _dd_data_fields(g: Gen, holder: dict[str, Any], valid: bool = True) -> dict[str, Any]:
    mapping: dict[str, Any] = {}
    for f in g.sample(DATA_FIELDS, g.rng.randint(1, 4)):
        value: Any = {"String": g.pick(["  Ada ", "Grace"]), "Numeric": g.pick([42, "17", 3.5]),
                      "Date": g.pick(["2024-01-15", "2000-02-29T00:00:00Z"]),
                      "Boolean": g.pick([True, "true", "FALSE", 0])}[f["type"]]
        holder[f"df_{f['name'].lower()}"] = value
        mapping[f["name"]] = {"@path": f"$.properties.df_{f['name'].lower()}"}
    if not valid:
        kind = g.pick(["unknown", "bad-number", "bad-string", "bad-date"])
        if kind == "unknown":
            holder["df_x"] = "x"
            mapping["NOT_A_FIELD"] = {"@path": "$.properties.df_x"}
        elif kind == "bad-number":
            holder["df_age"] = "forty"
            mapping["AGE"] = {"@path": "$.properties.df_age"}
        elif kind == "bad-string":
            holder["df_firstname"] = 12
            mapping["FIRSTNAME"] = {"@path": "$.properties.df_firstname"}
        else:
            holder["df_birthday"] = 20240101
            mapping["BIRTHDAY"] = {"@path": "$.properties.df_birthday"}
    return mapping


def dotdigital_cases(g: Gen) -> list[Case]:
    cases: list[Case] = []

    def add(action: str, scenario: str, tags: list[str], settings: dict[str, Any], mapping: dict[str, Any],
            ev: dict[str, Any] | list[dict[str, Any]], mocks: list[dict[str, Any]]) -> None:
        host = settings["api_host"]
        mocks = [dict(m, url=m["url"].replace("{host}", host)) if "url" in m else m for m in mocks]
        batch = isinstance(ev, list)
        cases.append(_case("dotdigital", action, scenario, ["batch" if batch else "single", *tags], settings,
                           mapping, ev, mocks))

    def contact_event(name: str, channel: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        props: dict[str, Any] = {"email": g.email(), **(extra or {})}
        if channel == "mobileNumber" or g.chance(0.4):
            props["phone"] = g.pick([g.e164(), "+44 7700 900" + str(g.rng.randint(100, 999)), "07700-900-123"])
        return _event(g, "track", properties=props, name=name)

    contact = {"method": "GET", "url_regex": "/contacts/v3/(email|mobileNumber)/", "status": 200,
               "json": {"contactId": 1234567, "status": "subscribed", "identifiers": {"email": "x@example.com"}}}
    patched = {"method": "PATCH", "url_regex": "/contacts/v3/(email|mobileNumber)/", "status": 200,
               "json": {"contactId": 7654321}}

    def failing(mock: dict[str, Any], status: int) -> dict[str, Any]:
        return dict(mock, status=status, json=_dd_err(status))

    # addContactToList (Add or Update Contact)
    for i in range(60):
        channel = "mobileNumber" if g.chance(0.3) else "email"
        ev = contact_event("Add or Update Contact", channel)
        mapping: dict[str, Any] = {"channelIdentifier": channel}
        tags = [channel]
        for key, values in (("emailType", ["html", "plainText"]), ("optInType", ["unknown", "single", "double",
                                                                                  "verifiedDouble"]),
                            ("updateEmailSubscription", [True, False]),
                            ("emailSubscriptionStatus", ["subscribed", "unsubscribed", "suppressed"]),
                            ("emailResubscribe", [True, False]), ("resubscribeWithoutChallengeEmail", [True, False]),
                            ("preferredLocale", LOCALES), ("redirectUrlAfterChallenge", ["https://example.com/welcome"]),
                            ("updateSmsSubscription", [True, False]),
                            ("smsSubscriptionStatus", ["subscribed", "unsubscribed"]),
                            ("listId", [123456, 42, "789"])):
            if g.chance(0.45):
                mapping[key] = g.pick(values)
        mocks = [patched]
        if g.chance(0.4):
            mapping["dataFields"] = _dd_data_fields(g, ev["properties"], valid=i % 6 != 0)
            mocks = [{"method": "GET", "url": "{host}/v2/data-fields/", "status": 200, "json": DATA_FIELDS}, patched]
            tags.append("data-fields")
        if channel == "mobileNumber" and "phone" not in ev["properties"]:
            ev["properties"]["phone"] = g.e164()
        add("addContactToList", "upsert", tags, _dd_settings(g), mapping, ev, mocks)
    for i in range(12):  # missing or invalid identifiers
        channel = g.pick(["email", "mobileNumber"])
        ev = contact_event("Add or Update Contact", "email")
        if channel == "email":
            ev["properties"]["email"] = g.pick(["not-an-email", "", " spaced@example.com "]) if i % 2 else None
        else:
            ev["properties"].pop("phone", None)
        ev["properties"] = {k: v for k, v in ev["properties"].items() if v is not None}
        add("addContactToList", "invalid-identifier", [channel], _dd_settings(g), {"channelIdentifier": channel}, ev,
            [patched])

    # An error answered to each request of each action, and the happy paths.
    def data_fields_mock(status: int = 200) -> dict[str, Any]:
        return {"method": "GET", "url": "{host}/v2/data-fields/", "status": status,
                "json": DATA_FIELDS if status == 200 else _dd_err(status)}

    for status in ERRORS:
        for where in ("data-fields", "patch"):
            ev = contact_event("Add or Update Contact", "email")
            mapping = {"channelIdentifier": "email", "listId": 99}
            mapping["dataFields"] = _dd_data_fields(g, ev["properties"])
            mocks = [data_fields_mock(status), patched] if where == "data-fields" else \
                [data_fields_mock(), failing(patched, status)]
            add("addContactToList", "request-error", [f"{where}-{status}"], _dd_settings(g), mapping, ev, mocks)
            add("addContactToList", "request-error", [f"{where}-{status}", "again"], _dd_settings(g),
                {"channelIdentifier": "email", "dataFields": _dd_data_fields(g, ev["properties"])}, ev, mocks)

    deleted = {"method": "DELETE", "url_regex": "/v2/address-books/[^/]+/contacts/", "status": 204, "json": {}}
    for _ in range(25):
        channel = "mobileNumber" if g.chance(0.3) else "email"
        ev = contact_event("Remove Contact from List", channel)
        if channel == "mobileNumber":
            ev["properties"]["phone"] = g.e164()
        add("removeContactFromList", "remove", [channel], _dd_settings(g),
            {"channelIdentifier": channel, "listId": g.pick([123456, 77, "88"])}, ev, [contact, deleted])
    for status in ERRORS:
        for where in ("lookup", "delete"):
            ev = contact_event("Remove Contact from List", "email")
            mocks = [failing(contact, status), deleted] if where == "lookup" else [contact, failing(deleted, status)]
            for _ in range(2):
                add("removeContactFromList", "request-error", [f"{where}-{status}"], _dd_settings(g),
                    {"channelIdentifier": "email", "listId": 123456}, ev, mocks)
    for _ in range(4):
        ev = contact_event("Remove Contact from List", "email")
        add("removeContactFromList", "invalid", ["no-list-id"], _dd_settings(g), {"channelIdentifier": "email"}, ev,
            [contact, deleted])

    enrolled = {"method": "POST", "url": "{host}/v2/programs/enrolments", "status": 201,
                "json": {"id": "enr-1", "programId": 456, "status": "Processing"}}
    for _ in range(25):
        channel = "mobileNumber" if g.chance(0.3) else "email"
        ev = contact_event("Enrol Contact to Program", channel)
        if channel == "mobileNumber":
            ev["properties"]["phone"] = g.e164()
        add("enrolContact", "enrol", [channel], _dd_settings(g),
            {"channelIdentifier": channel, "programId": g.pick(["456", "1001", 789])}, ev, [patched, enrolled])
    for status in ERRORS:
        for where in ("contact-patch", "enrolment"):
            for _ in range(2):
                ev = contact_event("Enrol Contact to Program", "email")
                mocks = [failing(patched, status), enrolled] if where == "contact-patch" else \
                    [patched, failing(enrolled, status)]
                add("enrolContact", "request-error", [f"{where}-{status}"], _dd_settings(g),
                    {"channelIdentifier": "email", "programId": "456"}, ev, mocks)
    for _ in range(4):
        ev = contact_event("Enrol Contact to Program", "email")
        ev["properties"].pop("email")
        add("enrolContact", "invalid", ["no-identifier"], _dd_settings(g),
            {"channelIdentifier": "email", "programId": "456"}, ev, [patched, enrolled])

    sent_campaign = {"method": "POST", "url_regex": "/v2/campaigns/send", "status": 200,
                     "json": {"id": 1, "campaignId": 123, "status": "Scheduled"}}
    for _ in range(25):
        ev = contact_event("Send Email Campaign", "email")
        mapping = {"campaignId": g.pick([123, 456, "789"])}
        if g.chance(0.4):
            mapping["sendDate"] = g.pick(["2024-06-02T09:00:00.000Z", "2024-07-01T00:00:00Z"])
        if g.chance(0.35):
            mapping["sendTimeOptimised"] = True
        add("sendEmailCampaign", "campaign", [k for k in mapping if k != "campaignId"], _dd_settings(g), mapping, ev,
            [contact, sent_campaign])
    for status in ERRORS:
        for where in ("lookup", "send"):
            for _ in range(2):
                ev = contact_event("Send Email Campaign", "email")
                mocks = [failing(contact, status), sent_campaign] if where == "lookup" else \
                    [contact, failing(sent_campaign, status)]
                add("sendEmailCampaign", "request-error", [f"{where}-{status}"], _dd_settings(g),
                    {"campaignId": 123, "sendTimeOptimised": g.chance(0.5)}, ev, mocks)
    for _ in range(3):
        ev = contact_event("Send Email Campaign", "email")
        ev["properties"]["email"] = "bad-email"
        add("sendEmailCampaign", "invalid", ["invalid-email"], _dd_settings(g), {"campaignId": 123}, ev,
            [contact, sent_campaign])

    email_sent = {"method": "POST", "url": "{host}/v2/email", "status": 200, "json": {}}
    for i in range(25):
        ev = contact_event("Send Transactional Email", "email")
        to = ev["properties"]["email"]
        mapping = {"fromAddress": g.pick(["shop@example.com", "Shop <shop@example.com>"]),
                   "toAddresses": g.pick([to, f"{to},{g.email()}", f" {to} , {g.email()}"]),
                   "subject": g.pick(["Your receipt", "Bienvenue 🎉", "Order #12"]),
                   "htmlContent": "<h1>Hello</h1><p>Thanks</p>"}
        if g.chance(0.5):
            mapping["plainTextContent"] = "Hello. Thanks."
        if g.chance(0.4):
            mapping["ccAddresses"] = ",".join(g.email() for _ in range(g.rng.randint(1, 3)))
        if g.chance(0.3):
            mapping["bccAddresses"] = g.email()
        bad = i % 5 == 4
        if bad:
            mapping[g.pick(["toAddresses", "ccAddresses", "fromAddress"])] = g.pick(["nobody", "a@b", "x@@y.com"])
        add("sendTransactionalEmail", "invalid-address" if bad else "send", [], _dd_settings(g), mapping, ev,
            [email_sent])
    for status in ERRORS:
        for _ in range(2):
            ev = contact_event("Send Transactional Email", "email")
            add("sendTransactionalEmail", "request-error", [f"send-{status}"], _dd_settings(g),
                {"fromAddress": "shop@example.com", "subject": "Hi", "htmlContent": "<p>Hi</p>"}, ev,
                [failing(email_sent, status)])

    sms_sent = {"method": "POST", "url_regex": "/v2/sms-messages/send-to/", "status": 200, "json": {}}
    cpaas = {"method": "POST", "url": "{host}/cpaas/messages", "status": 202, "json": {"messageId": "m-1"}}
    for i in range(25):
        ev = contact_event("Send SMS", "mobileNumber")
        if i % 6 == 5:
            ev["properties"]["phone"] = g.pick(["12345", "+1 23", "call me"])
        add("sendSms", "invalid-number" if i % 6 == 5 else "sms", [], _dd_settings(g),
            {"message": g.pick(["Your code is 1234", "Hi 👋 there", "x" * 300])}, ev, [sms_sent])
    for i in range(25):
        ev = contact_event("Send Transactional SMS", "mobileNumber")
        mapping = {"message": g.pick(["Code 9876", "Ünïcödé ✓", "See https://example.com/a/very/long/link"])}
        if g.chance(0.5):
            mapping["from"] = g.pick(["ACME", "Shop123"])
        if g.chance(0.5):
            mapping["link_shortening"] = True
        if g.chance(0.5):
            mapping["allow_unicode"] = True
        if i % 6 == 5:
            ev["properties"]["phone"] = "99"
        add("sendTransactionalSms", "invalid-number" if i % 6 == 5 else "sms", [], _dd_settings(g), mapping, ev,
            [cpaas])
    for status in ERRORS:
        ev = contact_event("Send SMS", "mobileNumber")
        add("sendSms", "request-error", [f"send-{status}"], _dd_settings(g), {"message": "hi"}, ev,
            [failing(sms_sent, status)])
        ev = contact_event("Send Transactional SMS", "mobileNumber")
        add("sendTransactionalSms", "request-error", [f"send-{status}"], _dd_settings(g), {"message": "hi"}, ev,
            [failing(cpaas, status)])
    for action, name in (("addContactToList", "Add or Update Contact"), ("sendSms", "Send SMS")):
        for _ in range(3):  # Dotdigital's actions have no batch mode
            events = [contact_event(name, "mobileNumber") for _ in range(3)]
            mapping = {"message": "hi"} if action == "sendSms" else {"channelIdentifier": "email"}
            add(action, "batch-attempt", [], _dd_settings(g), mapping, events, [patched, sms_sent])
    return cases


def dotdigital_audiences_cases(g: Gen) -> list[Case]:
    cases: list[Case] = []

    def add(scenario: str, tags: list[str], ev: dict[str, Any], mapping: dict[str, Any],
            mocks: list[dict[str, Any]]) -> None:
        settings = _dd_settings(g)
        host = settings["api_host"]
        mocks = [dict(m, url=m["url"].replace("{host}", host)) if "url" in m else m for m in mocks]
        cases.append(_case("dotdigital-audiences", "syncAudience", scenario, ["single", *tags], settings, mapping,
                           ev, mocks))

    write = {"url_regex": "/contacts/v3/(email|mobileNumber)/", "status": 200, "json": {"contactId": 555}}
    fields = {"method": "GET", "url_regex": "/v2/data-fields", "status": 200, "json": DATA_FIELDS}

    def dd_event(member: Any, ids: tuple[str, ...] = ("email",), list_id: Any = "123456") -> dict[str, Any]:
        traits: dict[str, Any] = {}
        if "email" in ids:
            traits["email"] = g.email()
        if "mobile" in ids:
            traits["phone"] = g.pick([g.e164(), "+44 7700 900123", "447700900123"])
        key = f"dd_aud_{g.word(4)}"
        personas: dict[str, Any] = {"computation_class": g.pick(["audience", "audience", "journey_step"]),
                                    "computation_key": key}
        if list_id is not None:
            personas["external_audience_id"] = list_id
        kind = g.pick(["identify", "track"])
        if kind == "identify":
            if member is not ...:
                traits[key] = member
            return _event(g, "identify", traits, context={"personas": personas})
        props = dict(traits)
        if member is not ...:
            props[key] = member
        return _event(g, "track", properties=props, context={"personas": personas})

    for i in range(170):
        member = i % 2 == 0
        ids = g.pick([("email",), ("mobile",), ("email", "mobile")])
        ev = dd_event(member, ids, g.pick(["123456", "42", 789]))
        mapping: dict[str, Any] = {}
        mocks = [write]
        tags = ["add" if member else "remove", "+".join(ids)]
        if g.chance(0.35):
            holder = ev["traits"] if ev["type"] == "identify" else ev["properties"]
            df = _dd_data_fields(g, holder, valid=g.chance(0.8))
            mapping["dataFields"] = {k: {"@path": v["@path"].replace("$.properties.", "$.traits.")
                                         if ev["type"] == "identify" else v["@path"]} for k, v in df.items()}
            mocks = [fields, write]
            tags.append("data-fields")
        add("add" if member else "remove", tags, ev, mapping, mocks)
    for value in [..., "true", None, 1, "false"] * 4:
        add("not-membership", [f"value={value!r}"], dd_event(value), {}, [write])
    for _ in range(12):
        add("invalid", ["no-identifier"], dd_event(True, ()), {}, [write])
    for list_id in ["abc", "list-1", None, "12a"] * 3:
        add("invalid", [f"audience-id={list_id!r}"], dd_event(g.chance(0.5), list_id=list_id), {}, [write])
    for status in ERRORS:
        for where in ("data-fields", "patch", "delete"):
            for _ in range(6):
                member = where != "delete"
                ev = dd_event(member, g.pick([("email",), ("mobile",)]))
                mapping = {}
                mocks = [dict(write, status=status, json=_dd_err(status))]
                if where == "data-fields":
                    holder = ev["traits"] if ev["type"] == "identify" else ev["properties"]
                    df = _dd_data_fields(g, holder)
                    mapping["dataFields"] = {k: {"@path": v["@path"].replace("$.properties.", "$.traits.")
                                                 if ev["type"] == "identify" else v["@path"]} for k, v in df.items()}
                    mocks = [dict(fields, status=status, json=_dd_err(status)), write]
                add("request-error", [f"{where}-{status}"], ev, mapping, mocks)
    return cases


# -- webhook --------------------------------------------------------------------------------------

WH_URLS = ["https://example.com/hook", "https://hooks.example.org/segment?token=abc123",
           "http://localhost:8080/inbound", "https://api.example.net:8443/v1/events", "https://example.com",
           "https://Example.COM/Path/To/Hook", "https://example.com/a%20b?q=x%2Fy&r=1",
           "https://user:secret@hooks.example.org/basic", "https://example.com/%C3%BCn%C3%AFcode/p%C3%A4th"]
# Not "https://" or "https:///x" (no host): Segment refuses it (PayloadValidationError "Invalid URL"), but sgbridge's
# request on the test's ASGI transport raises a ValueError that stops the whole comparison run (on a
# real transport httpx raises UnsupportedProtocol, which sgbridge retries).
WH_BAD_URLS = ["example.com/hook", "not a url", "//example.com/hook", "hook", "https://exa mple.com/x",
               "", "http//example.com", "https://example.com/ünïcode/päth", "https//example.com/x"]
WH_SECRETS = ["abc123", "s3cr3t-" + "x" * 40, "sécret ünicode", "a", "with spaces and \"quotes\""]
WH_EVENT_TYPES = ("track", "identify", "page", "screen", "group", "alias")
WH_GOOD_HEADERS = [{"Authorization": "Bearer tok_12345"}, {"X-Api-Key": "k-987"},
                   {"Custom-Header": "Custom-Value", "X-Tenant": "acme"}, {"Accept": "application/json"},
                   {"X-Request-Source": "segment", "X-Empty": ""}, {"User-Agent": "sgbridge-oracle/1"},
                   {"X-Number": 42, "X-Bool": True}, {"X-Long": "v" * 300}, {"x-lower": "ok", "X-Upper": "OK"}]
WH_BAD_HEADERS = [{"X-Name": "هيثم"}, {"X-Emoji": "🎉"}, {"Bad Name": "x"}, {"X-Newline": "a\nb"},
                  {"X-Ok": "fine", "X-Bad": "日本"}, {"Bäd": "x"}, {"X-Cr": "a\r\nInjected: 1"}]
WH_LATIN1_HEADERS = [{"X-Accent": "é"}, {"X-Name": "José Núñez"}]


def _wh_value(g: Gen) -> Any:
    return g.pick([
        g.word(), g.rng.randint(-1000, 100000), round(g.rng.uniform(-100, 100), 3), True, False, None,
        "", "ünïcødé 日本語 🎉", "line\nbreak\ttab \"quoted\" \\ back", [1, "two", None, {"three": 3}],
        {"nested": {"deep": [g.word(), g.rng.randint(0, 9)]}}, [], {}, "</script><b>x</b>", "a" * 200,
    ])


def _wh_props(g: Gen, n: int | None = None) -> dict[str, Any]:
    props: dict[str, Any] = {}
    for _ in range(g.rng.randint(0, 8) if n is None else n):
        props[g.pick(["plan", "price", "currency", "sku", "items", "ok", "note", "score", "tags", "meta",
                      g.word(5), "Mixed Case Key", "ключ", "with.dot", "$dollar"])] = _wh_value(g)
    return props


def _wh_event(g: Gen, kind: str | None = None, props: dict[str, Any] | None = None) -> dict[str, Any]:
    kind = kind or g.pick(WH_EVENT_TYPES)
    context: dict[str, Any] = {"library": {"name": g.pick(["analytics.js", "analytics-python", "analytics-ios"]),
                                           "version": f"{g.rng.randint(1, 5)}.{g.rng.randint(0, 20)}.0"}}
    if g.chance(0.5):
        context["ip"] = f"10.{g.rng.randint(0, 255)}.{g.rng.randint(0, 255)}.{g.rng.randint(1, 254)}"
    if g.chance(0.4):
        context["page"] = {"url": f"https://shop.example.com/{g.word()}", "title": g.pick(CITIES), "referrer": ""}
    if g.chance(0.3):
        context["locale"] = g.pick(["en-US", "fr-FR", "ja-JP"])
    traits = None
    if kind in ("identify", "group") or g.chance(0.2):
        traits = {"email": g.email(), "first_name": g.pick(FIRST), "last_name": g.pick(LAST)}
        if g.chance(0.5):
            traits["address"] = {"city": g.pick(CITIES), "country": g.pick(COUNTRIES)}
    event = _event(g, "track" if kind == "track" else kind, traits=traits,
                   properties=props if props is not None else _wh_props(g), context=context,
                   user=g.chance(0.85), anon=g.chance(0.7), name=g.pick(["Order Completed", "Signed Up", "Test Event",
                                                                         "Ünïcode Ëvent", "Product Viewed"]))
    if kind != "track" and (props is not None or kind in ("page", "screen")):
        event["properties"] = props if props is not None else _wh_props(g)
    if kind in ("page", "screen"):
        event["name"] = g.pick(["Home", "Checkout", "Settings"])
    if kind == "group":
        event["groupId"] = f"group-{g.seq()}"
    if kind == "alias":
        event["previousId"] = f"prev-{g.seq()}"
    event["timestamp"] = f"2024-06-01T11:59:{g.rng.randint(0, 59):02d}.000Z"
    return event


def _wh_data(g: Gen) -> tuple[dict[str, Any] | None, str]:
    """A ``data`` mapping of some part of the event (None: the default, the whole event)."""
    return g.pick([
        (None, "data=default"),
        ({"@path": "$."}, "data=$."),
        ({"@path": "$.properties"}, "data=$.properties"),
        ({"@path": "$.context"}, "data=$.context"),
        ({"@path": "$.traits"}, "data=$.traits"),
        ({"event": {"@path": "$.event"}, "user": {"@path": "$.userId"}, "props": {"@path": "$.properties"}},
         "data=object-of-paths"),
        ({"id": {"@path": "$.messageId"}, "source": "segment", "version": 2, "flags": [True, False, None],
          "when": {"@path": "$.timestamp"}}, "data=literals-and-paths"),
        ({"greeting": {"@template": "Hello {{traits.first_name}} ({{userId}})"}, "type": {"@path": "$.type"}},
         "data=template"),
        ({"who": {"@if": {"exists": {"@path": "$.userId"}, "then": {"@path": "$.userId"},
                          "else": {"@path": "$.anonymousId"}}}}, "data=if-exists"),
        ({"missing": {"@path": "$.properties.does_not_exist"}, "type": {"@path": "$.type"}},
         "data=missing-path-key"),
        ({"city": {"@path": "$.traits.address.city"}, "lib": {"@path": "$.context.library.name"}},
         "data=nested-paths"),
        ({"@path": "$.properties.does_not_exist"}, "data=undefined"),
        ({}, "data=empty-object"),
    ])


def webhook_cases(g: Gen) -> list[Case]:
    cases: list[Case] = []

    def settings() -> dict[str, Any]:
        return {"sharedSecret": g.pick(WH_SECRETS)} if g.chance(0.4) else g.pick([{}, {}, {"sharedSecret": ""}])

    def add(scenario: str, tags: list[str], st: dict[str, Any], mapping: dict[str, Any],
            ev: dict[str, Any] | list[dict[str, Any]], mocks: list[dict[str, Any]] | None = None) -> Case:
        batch = isinstance(ev, list)
        tags = ["batch" if batch else "single", *tags, *(["signed"] if st.get("sharedSecret") else [])]
        case = _case("webhook", "send", scenario, tags, st, mapping, ev, mocks or [])
        cases.append(case)
        return case

    def mapping_for(url: Any, method: str | None = None, headers: Any = None, data: Any = None,
                    batch_size: Any = None) -> tuple[dict[str, Any], list[str]]:
        mapping: dict[str, Any] = {"url": url}
        tags = []
        if method is not None:
            mapping["method"] = method
            tags.append(f"method={method}")
        if headers is not None:
            mapping["headers"] = headers
            tags.append("headers")
        if data is not None:
            mapping["data"] = data
        if batch_size is not None:
            mapping["batch_size"] = batch_size
            tags.append(f"batch_size={batch_size}")
        return mapping, tags

    def ok_mock() -> list[dict[str, Any]]:
        return g.pick([[], [], [{"url_regex": ".", "status": 200, "json": {"ok": True}}],
                       [{"url_regex": ".", "status": 201, "json": {"id": g.word()}}],
                       [{"url_regex": ".", "status": 202, "body": ""}], [{"url_regex": ".", "status": 204}]])

    # single events: every event type, each data mapping, methods, headers, signatures
    for _ in range(110):
        data, dtag = _wh_data(g)
        method = g.pick([None, "POST", "PUT", "PATCH"])
        headers = g.pick(WH_GOOD_HEADERS) if g.chance(0.35) else None
        mapping, tags = mapping_for(g.pick(WH_URLS), method, headers, data)
        ev = _wh_event(g)
        add("send", [ev["type"], dtag, *tags], settings(), mapping, ev, ok_mock())
    # the published examples of Segment's own tests, as they are
    add("send", ["segment-test:customizations"], {}, {"url": "https://example.build", "method": "PUT",
                                                       "headers": {"Custom-Header": "Custom-Value"},
                                                       "data": {"cool": True}}, _wh_event(g, "track"))
    add("signature", ["segment-test:signing"], {"sharedSecret": "abc123"},
        {"url": "https://example.com", "data": {"@path": "$.properties"}}, _wh_event(g, "track", {"cool": True}))
    # no default mappings: url, method, data all given
    for _ in range(10):
        mapping, tags = mapping_for(g.pick(WH_URLS), g.pick(["POST", "PUT", "PATCH"]), None, _wh_data(g)[0] or
                                    {"@path": "$."})
        case = add("no-defaults", tags, settings(), mapping, _wh_event(g))
        case["useDefaultMappings"] = False
    # signatures: each secret on data of every shape (unicode, nested, empty, absent)
    for secret in WH_SECRETS:
        for _ in range(6):
            data, dtag = _wh_data(g)
            mapping, tags = mapping_for(g.pick(WH_URLS), g.pick([None, "PUT"]), None, data)
            add("signature", [dtag, *tags], {"sharedSecret": secret}, mapping, _wh_event(g))
    # numbers as JavaScript writes them: integral floats, -0, big integers, exponents
    for value in [1.0, 100.0, -0.0, 2.5e-7, 1e21, 12345678901234567890, 9007199254740993, 0.1 + 0.2]:
        mapping, tags = mapping_for(g.pick(WH_URLS), None, None, {"@path": "$.properties"})
        add("number-forms", [f"value={value!r}"], settings(), mapping, _wh_event(g, "track", {"n": value, "ok": 1}))
    # invalid: urls, methods, headers, data that is not an object
    for url in WH_BAD_URLS:
        mapping, tags = mapping_for(url)
        add("invalid", [f"url={url!r}", *tags], settings(), mapping, _wh_event(g))
    for method in ["GET", "DELETE", "put", "post ", ""]:
        mapping, tags = mapping_for(g.pick(WH_URLS), method)
        add("invalid", [f"method={method!r}"], settings(), mapping, _wh_event(g))
    for headers in WH_BAD_HEADERS:
        mapping, tags = mapping_for(g.pick(WH_URLS), None, headers)
        add("invalid-header", [f"headers={sorted(headers)}"], settings(), mapping, _wh_event(g))
    for headers in WH_LATIN1_HEADERS:
        mapping, tags = mapping_for(g.pick(WH_URLS), None, headers)
        add("latin1-header", [f"headers={sorted(headers)}"], settings(), mapping, _wh_event(g))
    for path in ["$.event", "$.userId", "$.properties.items", "$.properties.price"]:
        mapping, tags = mapping_for(g.pick(WH_URLS), None, None, {"@path": path})
        add("invalid", [f"data={path}"], settings(), mapping,
            _wh_event(g, "track", {"items": [1, 2], "price": 9.5}))
    # errors answered to the request
    for status in ERRORS:
        for batch in (False, True, False, True, False, True):
            mapping, tags = mapping_for(g.pick(WH_URLS), g.pick([None, "PUT", "PATCH"]),
                                        g.pick(WH_GOOD_HEADERS) if g.chance(0.3) else None, _wh_data(g)[0])
            mocks = [{"url_regex": ".", "status": status, "json": {"error": f"status {status}"}}]
            ev: Any = [_wh_event(g) for _ in range(g.rng.randint(2, 6))] if batch else _wh_event(g)
            add("request-error", [f"status={status}", *tags], settings(), mapping, ev, mocks)

    # batches Segment's pipeline hands over as they are: one url/method/headers, at most batch_size
    def batch_events(n: int, props: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        return [_wh_event(g, props=dict(props) if props is not None else None) for _ in range(n)]

    for _ in range(45):
        n = g.rng.randint(2, 25)
        size = g.pick([None, 0, n, n + 1, 100, 1000, 4000])
        data, dtag = _wh_data(g)
        mapping, tags = mapping_for(g.pick(WH_URLS), g.pick([None, "POST", "PUT", "PATCH"]),
                                    g.pick(WH_GOOD_HEADERS) if g.chance(0.3) else None, data, size)
        add("batch", [f"n={n}", dtag, *tags], settings(), mapping, batch_events(n), ok_mock())
    for _ in range(4):
        mapping, tags = mapping_for(g.pick(WH_URLS), None, None, _wh_data(g)[0])
        add("batch", ["n=1", *tags], settings(), mapping, batch_events(1))
    for n, size in [(250, None), (500, 1000), (1000, 1000), (1000, 0), (999, 4000)]:
        data = g.pick([{"@path": "$.properties"}, {"id": {"@path": "$.messageId"}, "t": {"@path": "$.type"}}])
        mapping, tags = mapping_for(g.pick(WH_URLS), g.pick([None, "PUT"]), None, data, size)
        small = [{"type": "track", "event": "Item Added", "messageId": f"msg-{g.seq():05d}", "userId": f"user-{i}",
                  "properties": {"i": i, "sku": g.word(4)}} for i in range(n)]
        add("large-batch", [f"n={n}", *tags], g.pick([{}, {"sharedSecret": "abc123"}]), mapping, small)

    # batches Segment's pipeline splits before the action sees them: more events than batch_size, or
    # events whose url/method/headers differ (batch_keys). Segment's code alone sends one request with
    # the first payload's url/method/headers; the reference is what it sends for each batch the
    # pipeline makes (the groups, each run through Segment's code).
    def split_case(scenario: str, tags: list[str], st: dict[str, Any], mapping: dict[str, Any],
                   events: list[dict[str, Any]], keys: list[Any], size: int) -> None:
        case = add(scenario, tags, st, mapping, events)
        order: dict[str, list[list[int]]] = {}
        for i, key in enumerate(keys):
            runs = order.setdefault(json.dumps(key, sort_keys=True), [[]])
            if size > 0 and len(runs[-1]) >= size:
                runs.append([])
            runs[-1].append(i)
        case["reference"] = {"drop_rows": [], "groups": [run for runs in order.values() for run in runs]}

    for _ in range(16):
        size = g.pick([1, 2, 3, 5, 10])
        n = g.rng.randint(size + 1, size * 4 + 2)
        mapping, tags = mapping_for(g.pick(WH_URLS), g.pick([None, "PUT"]), None, _wh_data(g)[0], size)
        split_case("batch-size-split", [f"n={n}", *tags], settings(), mapping, batch_events(n), [0] * n, size)
    for _ in range(22):
        n = g.rng.randint(2, 12)
        vary = g.sample(["url", "method", "headers"], g.rng.randint(1, 3))
        urls, methods, tenants = g.sample(WH_URLS[:5], 3), ["POST", "PUT", "PATCH"], ["acme", "globex", "initech"]
        events, keys = [], []
        for _ in range(n):
            props = _wh_props(g, 3)
            key = (g.pick(urls) if "url" in vary else urls[0], g.pick(methods) if "method" in vary else "POST",
                   g.pick(tenants) if "headers" in vary else "acme")
            props.update({"target": key[0], "verb": key[1], "tenant": key[2]})
            events.append(_wh_event(g, props=props))
            keys.append(list(key))
        mapping = {"url": {"@path": "$.properties.target"}, "method": {"@path": "$.properties.verb"},
                   "headers": {"X-Tenant": {"@path": "$.properties.tenant"}, "X-Fixed": "1"},
                   "data": g.pick([{"@path": "$.properties"}, {"@path": "$."}, {"id": {"@path": "$.messageId"}}])}
        size = g.pick([0, 0, 2, 100])
        if size:
            mapping["batch_size"] = size
        split_case("batch-mixed-keys", [f"n={n}", "varies=" + "+".join(sorted(vary)), f"batch_size={size}"],
                   settings(), mapping, events, keys, size)
    # one bad event inside a batch: invalid url, header Segment's fetch refuses, data not an object
    for _ in range(14):
        n = g.rng.randint(2, 8)
        bad = g.rng.randrange(n)
        kind = g.pick(["url", "header", "data"])
        events, keys = [], []
        for i in range(n):
            props = _wh_props(g, 2)
            props.update({"target": "https://example.com/hook", "tenant": "acme", "body": {"i": i}})
            if i == bad:
                if kind == "url":
                    props["target"] = g.pick(WH_BAD_URLS[:6])
                elif kind == "header":
                    props["tenant"] = g.pick(["هيثم", "日本", "a\nb"])
                else:
                    props["body"] = g.pick(["a string", 7, [1, 2]])
            events.append(_wh_event(g, props=props))
            keys.append([props["target"], props["tenant"]])
        mapping = {"url": {"@path": "$.properties.target"}, "headers": {"X-Tenant": {"@path": "$.properties.tenant"}},
                   "data": {"@path": "$.properties.body"}}
        split_case("bad-row-in-batch", [f"n={n}", f"bad={bad}", f"bad-{kind}"], settings(), mapping, events, keys, 0)
    return cases


BUILDERS: dict[str, Callable[[Gen], list[Case]]] = {
    "sendgrid": sendgrid_cases,
    "sendgrid-audiences": sendgrid_audiences_cases,
    "dotdigital": dotdigital_cases,
    "dotdigital-audiences": dotdigital_audiences_cases,
    "webhook": webhook_cases,
}


# -- running the oracle ----------------------------------------------------------------------------

# Webhook requests also keep their headers (the signature, the mapped headers) and, up to this size,
# the body as sent (what the signature is computed over).
RAW_BODY_LIMIT = 4096


def _compact_requests(requests: list[dict[str, Any]], headers: bool = False) -> list[dict[str, Any]]:
    out = []
    for r in requests:
        entry: dict[str, Any] = {"method": r["method"], "url": r["url"]}
        if headers:
            entry["headers"] = r.get("headers") or {}
        if "json" in r:
            entry["json"] = r["json"]
            if headers and len(r["body_raw"]) <= RAW_BODY_LIMIT:
                entry["body_raw"] = r["body_raw"]
        elif "body_raw" in r:
            entry["body_raw"] = r["body_raw"]
        out.append(entry)
    return out


def _outputs(raw: dict[str, Any], headers: bool = False) -> dict[str, Any]:
    out = {k: raw[k] for k in ("expected_result", "expected_error") if k in raw}
    out["expected_requests"] = _compact_requests(raw.get("expected_requests") or [], headers)
    return out


def _group_inputs(case: Case) -> list[Case]:
    """One batch per group of ``reference.groups``: the batches Segment's pipeline makes."""
    variants = []
    for group in case["reference"]["groups"]:
        variant = _oracle_input(case)
        variant["events"] = [case["events"][i] for i in group]
        variants.append(variant)
    return variants


def _oracle_input(case: Case) -> Case:
    return {k: v for k, v in case.items() if k not in ("id", "scenario", "tags", "reference")}


def _reference_input(case: Case) -> Case:
    ref = case["reference"]
    variant = _oracle_input(case)
    if "events" in case:
        variant["events"] = [e for i, e in enumerate(case["events"]) if i not in set(ref["drop_rows"])]
    if "mock_responses" in ref:
        variant["mock_responses"] = ref["mock_responses"]
    return variant


def run_oracle(inputs: list[Case], oracle_dir: str) -> list[dict[str, Any]]:
    env = {**os.environ, "ORACLE_DIR": oracle_dir, "TZ": "UTC",
           # Segment's Dotdigital Audiences refuses to run without a partner token; any value works
           # here and the oracle writes the header as REDACTED.
           "DOTDIGITAL_AUDIENCES_PARTNER_SECRET": "oracle-dummy"}
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as tmp:
        json.dump(inputs, tmp)
    try:
        done = subprocess.run(["node", str(ORACLE_TOOL), "--many", tmp.name], env=env, capture_output=True,
                              text=True, check=False)
    finally:
        os.unlink(tmp.name)
    if done.returncode != 0:
        sys.exit(f"oracle failed ({done.returncode}):\n{done.stderr[-4000:]}")
    results = json.loads(done.stdout)
    assert len(results) == len(inputs)
    return results


def _versions(oracle_dir: str) -> dict[str, str]:
    found = {}
    for name in ("@segment/action-destinations", "@segment/actions-core", "nock"):
        pkg = Path(oracle_dir) / "node_modules" / name / "package.json"
        found[name] = json.loads(pkg.read_text())["version"] if pkg.exists() else "?"
    return found


def build(dest: str, oracle_dir: str) -> dict[str, Any]:
    cases = BUILDERS[dest](Gen(dest))
    for i, case in enumerate(cases):
        case["id"] = f"{dest}.{case['action']}.{i + 1:04d}-{case['scenario']}"
    inputs = [_oracle_input(c) for c in cases]
    with_ref = [c for c in cases if "reference" in c and "groups" not in c["reference"]]
    grouped = [c for c in cases if "groups" in c.get("reference", {})]
    group_inputs = [v for c in grouped for v in _group_inputs(c)]
    results = run_oracle(inputs + [_reference_input(c) for c in with_ref] + group_inputs, oracle_dir)
    headers = dest == "webhook"
    for case, raw in zip(cases, results[:len(cases)], strict=True):
        case.update(_outputs(raw, headers))
    for case, raw in zip(with_ref, results[len(cases):len(cases) + len(with_ref)], strict=True):
        case["reference"].update(_outputs(raw, headers))
    rest = iter(results[len(cases) + len(with_ref):])
    for case in grouped:  # the groups' requests, one after the other; each group's own outcome
        outs = [_outputs(next(rest), headers) for _ in case["reference"]["groups"]]
        case["reference"]["outcomes"] = [{k: v for k, v in o.items() if k != "expected_requests"} for o in outs]
        case["reference"]["expected_requests"] = [r for o in outs for r in o["expected_requests"]]
    ordered = []
    for case in cases:  # a stable, readable key order
        first = {k: case[k] for k in ("id", "destination", "action", "scenario", "tags")}
        ordered.append({**first, **{k: v for k, v in case.items() if k not in first}})
    return {"generated_by": "tools/generate_oracle_cases.py", "seed": SEED, "now": NOW,
            "oracle": _versions(oracle_dir), "count": len(ordered), "cases": ordered}


def write(dest: str, data: dict[str, Any]) -> Path:
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"{dest}.json"
    head = {k: v for k, v in data.items() if k != "cases"}
    lines = [json.dumps(c, ensure_ascii=False, separators=(",", ":")) for c in data["cases"]]
    text = json.dumps(head, ensure_ascii=False)[:-1] + ', "cases": [\n' + ",\n".join(lines) + "\n]}\n"
    path.write_text(text, encoding="utf-8")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--oracle-dir", default=os.environ.get("ORACLE_DIR", "/tmp/oracle"))  # noqa: S108 (the oracle's own default)
    parser.add_argument("--only", choices=sorted(BUILDERS), action="append")
    args = parser.parse_args()
    for dest in args.only or list(BUILDERS):
        data = build(dest, args.oracle_dir)
        path = write(dest, data)
        kinds: dict[str, int] = {}
        for c in data["cases"]:
            kinds[c["scenario"]] = kinds.get(c["scenario"], 0) + 1
        print(f"{path.relative_to(ROOT)}: {data['count']} cases, {path.stat().st_size // 1024} KiB  {kinds}")


if __name__ == "__main__":
    main()
