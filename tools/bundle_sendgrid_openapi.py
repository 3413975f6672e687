"""Bundle the SendGrid OpenAPI specs the emulator validates with into the package.

An installed sgbridge must not need the research folder beside the repository, so the spec
documents the SendGrid emulator uses ship in ``src/sgbridge/emulators/sendgrid/specs/``. They are
made from the verbatim copies in ``../shared/fixtures/peers/sendgrid/openapi/`` (twilio/sendgrid-oai
``spec/json/``) by pruning, never by editing:

- only the files that hold an operation the emulator implements (``app.ENDPOINTS``) are kept;
- in each, ``paths`` keeps the implemented operations (and each path item's own keys, such as
  path-level ``parameters``); the other operations are dropped;
- ``components`` keeps what the kept operations reference, transitively (all references in
  these specs are local ``#/components/...`` ones), plus ``securitySchemes``, which are named
  by ``security`` rather than referenced;
- every other top-level key (``openapi``, ``info`` with its licence, ``servers``, ``security``,
  ``tags``, ``externalDocs``) is kept as is. Key order is kept; the output is minified JSON.

The known defects of the specs are still corrected at load time (``quirks.py``), on the pruned
documents exactly as on the full ones. Which file an operation is taken from follows
``SpecSet``: files in sorted order, a later file's operation wins.

Run from the repository root after changing ``ENDPOINTS`` or the source specs:

    .venv/bin/python tools/bundle_sendgrid_openapi.py

``tests/packaging/test_bundled_specs.py`` fails when the bundled folder differs from what this
script produces.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT.parent / "shared" / "fixtures" / "peers" / "sendgrid" / "openapi"
TARGET = ROOT / "src" / "sgbridge" / "emulators" / "sendgrid" / "specs"
HTTP_METHODS = ("get", "put", "post", "delete", "patch")  # as in sgbridge.emulators.sendgrid.openapi
ORIGIN_REPO = "twilio/sendgrid-oai"
ORIGIN_COMMIT = "dbe0e0d2e67a0c3c55b222d54df2acda2b9027a7"
ORIGIN_DATE = "2026-01-22"

MIT_LICENSE = """\
MIT License

Copyright (c) 2024 Twilio

Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the "Software"), to deal
in the Software without restriction, including without limitation the rights
to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
SOFTWARE.
"""


class BundleError(RuntimeError):
    """The source specs cannot be bundled (a missing operation, a reference outside components)."""


def _unescape(token: str) -> str:
    return token.replace("~1", "/").replace("~0", "~")


def _refs(node: Any) -> Iterable[str]:
    """Every ``$ref`` string under ``node``."""
    stack = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, dict):
            ref = current.get("$ref")
            if isinstance(ref, str):
                yield ref
            stack.extend(current.values())
        elif isinstance(current, list):
            stack.extend(current)


def _component(ref: str, name: str) -> tuple[str, str]:
    """(kind, name) of the component a local reference points into: ``#/components/schemas/X/...``."""
    tokens = ref.split("/")
    if tokens[0] != "#" or len(tokens) < 4 or tokens[1] != "components":
        raise BundleError(f"{name}: reference {ref!r} does not point into #/components")
    return _unescape(tokens[2]), _unescape(tokens[3])


def prune(doc: dict[str, Any], operations: set[tuple[str, str]], name: str) -> dict[str, Any]:
    """``doc`` with only ``operations`` ((method, path) pairs it holds) and what they reference."""
    paths: dict[str, Any] = {}
    for path, item in doc.get("paths", {}).items():
        kept = {method for method in HTTP_METHODS if method in item and (method.upper(), path) in operations}
        if kept:
            paths[path] = {key: value for key, value in item.items() if key not in HTTP_METHODS or key in kept}
    components = doc.get("components", {})
    wanted: set[tuple[str, str]] = set()
    queue = [_component(ref, name) for ref in _refs(paths)]
    while queue:
        key = queue.pop()
        if key in wanted:
            continue
        kind, component = key
        if component not in components.get(kind, {}):
            raise BundleError(f"{name}: #/components/{kind}/{component} is referenced but not defined")
        wanted.add(key)
        queue += [_component(ref, name) for ref in _refs(components[kind][component])]
    pruned_components = {
        kind: entries if kind == "securitySchemes"
        else {component: value for component, value in entries.items() if (kind, component) in wanted}
        for kind, entries in components.items()
    }
    out: dict[str, Any] = {}
    for key, value in doc.items():
        if key == "paths":
            out[key] = paths
        elif key == "components":
            out[key] = {kind: entries for kind, entries in pruned_components.items() if entries}
        else:
            out[key] = value
    return out


def _readme(files: dict[str, int]) -> str:
    rows = "\n".join(f"| `{name}` | {count} |" for name, count in sorted(files.items()))
    return f"""\
# SendGrid OpenAPI specs bundled with sgbridge

Generated by `tools/bundle_sendgrid_openapi.py`; do not edit (a test compares this folder with
the script's output). The SendGrid emulator (`sgbridge emulate sendgrid`, the demo, the tests)
validates requests against these documents; `SGBRIDGE_SENDGRID_OPENAPI_DIR` points it at another
folder of spec files instead.

## Source

The official SendGrid OpenAPI 3.1 specs, {ORIGIN_REPO} `spec/json/` at commit
{ORIGIN_COMMIT} ({ORIGIN_DATE}, "1.0.0-rc.12"), https://github.com/{ORIGIN_REPO}.
Each file here is one of those files, pruned to the operations the emulator implements and the
components they reference; what is kept (descriptions, examples and response schemas included) is
copied unchanged, only minified. The emulator corrects a few known defects of the specs when it
loads them (`sgbridge/emulators/sendgrid/quirks.py`), not in these files. To regenerate, beside a
checkout of the research folder: `.venv/bin/python tools/bundle_sendgrid_openapi.py`.

| file | operations kept |
| --- | --- |
{rows}

## Licence

The specs are distributed by Twilio under the MIT License (the `info.license` of every file, and
the LICENSE of {ORIGIN_REPO}); its text, which must accompany them, is in `LICENSE` beside this
file. sgbridge itself is Apache-2.0 (`LICENSE` at the root of the repository); the wheel's
metadata declares `Apache-2.0 AND MIT` and carries both texts.
"""


def bundle(source: Path, endpoints: Iterable[tuple[str, str]]) -> dict[str, bytes]:
    """File name -> content of the bundled folder, made from the spec files in ``source``."""
    docs = {p.name: orjson.loads(p.read_bytes()) for p in sorted(source.glob("*.json"))}
    owner: dict[tuple[str, str], str] = {}
    for name, doc in docs.items():  # sorted, a later file wins: the same rule as SpecSet's index
        for path, item in doc.get("paths", {}).items():
            for method in HTTP_METHODS:
                if method in item:
                    owner[(method.upper(), path)] = name
    wanted = {(method.upper(), path) for method, path in endpoints}
    missing = sorted(wanted - owner.keys())
    if missing:
        raise BundleError(f"not in any spec file of {source}: {missing}")
    by_file: dict[str, set[tuple[str, str]]] = {}
    for operation in wanted:
        by_file.setdefault(owner[operation], set()).add(operation)
    out: dict[str, bytes] = {}
    counts: dict[str, int] = {}
    for name, operations in sorted(by_file.items()):
        out[name] = orjson.dumps(prune(docs[name], operations, name)) + b"\n"
        counts[name] = len(operations)
    out["README.md"] = _readme(counts).encode()
    out["LICENSE"] = MIT_LICENSE.encode()
    return out


def implemented_operations() -> list[tuple[str, str]]:
    """(method, path template) of every operation the SendGrid emulator implements."""
    sys.path.insert(0, str(ROOT / "src"))
    from sgbridge.emulators.sendgrid.app import ENDPOINTS

    return [(endpoint.method, endpoint.path) for endpoint in ENDPOINTS]


def write(files: dict[str, bytes], target: Path) -> None:
    """Replace the bundled folder's contents with ``files``."""
    target.mkdir(parents=True, exist_ok=True)
    for stale in target.iterdir():
        if stale.name not in files:
            stale.unlink()
    for name, content in files.items():
        (target / name).write_bytes(content)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--source", type=Path, default=SOURCE, help="folder of twilio/sendgrid-oai spec/json files")
    parser.add_argument("--target", type=Path, default=TARGET, help="the package's bundled folder")
    args = parser.parse_args(argv)
    if not args.source.is_dir():
        parser.error(f"source folder not found: {args.source}")
    files = bundle(args.source, implemented_operations())
    write(files, args.target)
    total = sum(len(content) for content in files.values())
    print(f"wrote {len(files)} files ({total:,} bytes) to {args.target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
