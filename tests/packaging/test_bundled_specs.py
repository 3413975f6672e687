"""The SendGrid specs ship inside the package, and nothing under src/ reads the research folder.

The bundled folder must be exactly what ``tools/bundle_sendgrid_openapi.py`` makes from the
verbatim specs in ``../shared`` (so neither side drifts), and the pruned documents must give the
emulator the same operations as the full ones.
"""

from __future__ import annotations

import importlib.util
import io
import re
import tokenize
from pathlib import Path
from types import ModuleType
from typing import Any

import orjson
import pytest

import sgbridge
from sgbridge.emulators.sendgrid.app import ENDPOINTS
from sgbridge.emulators.sendgrid.openapi import SPEC_DIR_ENV, SpecSet, bundled_spec_dir, default_spec_dir

ROOT = Path(__file__).resolve().parents[2]
FULL_SPECS = ROOT.parent / "shared" / "fixtures" / "peers" / "sendgrid" / "openapi"
EXAMPLES = ROOT.parent / "shared" / "fixtures" / "peers" / "sendgrid" / "api" / "examples_from_openapi.json"
needs_shared = pytest.mark.skipif(not FULL_SPECS.is_dir(), reason=f"research folder absent: {FULL_SPECS}")


def _tool() -> ModuleType:
    path = ROOT / "tools" / "bundle_sendgrid_openapi.py"
    spec = importlib.util.spec_from_file_location("bundle_sendgrid_openapi", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@needs_shared
def test_bundled_specs_are_what_the_generator_makes() -> None:
    tool = _tool()
    expected: dict[str, bytes] = tool.bundle(FULL_SPECS, tool.implemented_operations())
    bundled = {p.name: p.read_bytes() for p in bundled_spec_dir().iterdir()}
    assert sorted(bundled) == sorted(expected), "run: .venv/bin/python tools/bundle_sendgrid_openapi.py"
    for name, content in expected.items():
        assert bundled[name] == content, f"{name} differs; run: .venv/bin/python tools/bundle_sendgrid_openapi.py"


@needs_shared
def test_bundled_specs_give_the_emulator_the_same_operations() -> None:
    full, bundled = SpecSet(FULL_SPECS), SpecSet(bundled_spec_dir())
    examples: dict[str, Any] = orjson.loads(EXAMPLES.read_bytes())["operations"]
    checked = 0
    for endpoint in ENDPOINTS:
        ours, theirs = bundled.operation(endpoint.method, endpoint.path), full.operation(endpoint.method, endpoint.path)
        assert (ours.spec_file, ours.operation_id) == (theirs.spec_file, theirs.operation_id)
        assert [(p.name, p.location, p.required, p.kind, p.item_kind) for p in ours.parameters] == [
            (p.name, p.location, p.required, p.kind, p.item_kind) for p in theirs.parameters]
        assert (ours.body_validator is None) == (theirs.body_validator is None)
        bodies = list(examples.get(f"{endpoint.method} {endpoint.path}", {}).get("request_examples", {}).values())
        for body in [*bodies, {}, [], {"unexpected": 1}, None]:
            params = {name: "1" for name in re.findall(r"{(\w+)}", endpoint.path)}
            assert ours.validate(params, [], body) == theirs.validate(params, [], body), (endpoint.path, body)
            checked += 1
    assert checked > len(ENDPOINTS) * 4
    # What is kept is kept verbatim, and the quirks (applied at load) patch it as they patch the full specs.
    for name, doc in bundled.docs.items():
        for kind, entries in doc["components"].items():
            assert all(value == full.docs[name]["components"][kind][key] for key, value in entries.items())
        for path, item in doc["paths"].items():
            assert all(value == full.docs[name]["paths"][path][key] for key, value in item.items())


def test_the_default_spec_folder_is_inside_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SPEC_DIR_ENV, raising=False)
    package = Path(sgbridge.__file__).resolve().parent
    assert default_spec_dir() == bundled_spec_dir()
    assert bundled_spec_dir().is_relative_to(package)
    assert {p.name for p in bundled_spec_dir().glob("*.json")} >= {"tsg_mail_v3.json", "tsg_mc_contacts_v3.json"}
    assert "MIT License" in (bundled_spec_dir() / "LICENSE").read_text()
    assert "dbe0e0d2e67a0c3c55b222d54df2acda2b9027a7" in (bundled_spec_dir() / "README.md").read_text()


def test_bundled_specs_are_package_data() -> None:
    import tomllib

    package_data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    package = Path(sgbridge.__file__).resolve().parent
    shipped = {p for pattern in package_data["sgbridge"] for p in package.glob(pattern)}
    assert set(bundled_spec_dir().iterdir()) <= shipped


# A path to the research folder, in any spelling a run-time file could use: "../shared/...",
# "fixtures/peers", or path parts joined with "/" (Path(...) / "shared" / "fixtures").
_SHARED_TEXT = re.compile(r"\.\./shared|fixtures/peers|fixtures\\\\peers")
_SHARED_PART = {"shared", "fixtures", "peers"}


def _python_offences(path: Path) -> list[str]:
    """String literals of code (comments are not run) that name the research folder."""
    found = []
    for token in tokenize.generate_tokens(io.StringIO(path.read_text()).readline):
        if token.type != tokenize.STRING:
            continue
        text = token.string
        if _SHARED_TEXT.search(text) or text.strip("\"'rbuRBU") in _SHARED_PART:
            found.append(f"{path}:{token.start[0]}: {text[:80]}")
    return found


def test_nothing_under_src_reads_the_research_folder() -> None:
    offences: list[str] = []
    for path in sorted((ROOT / "src").rglob("*")):
        if not path.is_file() or "__pycache__" in path.parts or path.suffix == ".pyc":
            continue
        if path.suffix == ".py":
            offences += _python_offences(path)
        elif _SHARED_TEXT.search(path.read_text(errors="replace")):
            offences.append(str(path))
    assert offences == []
