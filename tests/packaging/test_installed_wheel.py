"""The product as a user installs it: a wheel, in a fresh venv, run away from the repository.

The wheel is built from a copy of the checkout's files (tracked and not ignored, as a fresh clone
has them) in a temp folder, installed non-editable into a new venv there, and run from a
directory outside the repository. The research folder (``../shared``) is not beside either, so
whatever the demo and the SendGrid emulator need at run time must be inside the package.

Dependencies come from pip's usual indexes (on this machine a local mirror, and pip's cache);
the whole test takes about a minute.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


_NOT_SOURCES = shutil.ignore_patterns(".git", ".venv", ".hypothesis", "__pycache__", "*.egg-info", ".*_cache",
                                      "build", "dist", "*.db*", "*.duckdb*", "sgbridge-dlt", "results")


def _checkout_copy(target: Path) -> Path:
    """The files a fresh clone has: tracked or new, not ignored (no .venv, no build output)."""
    try:
        listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                                check=True, capture_output=True).stdout.decode().split("\0")
    except (OSError, subprocess.CalledProcessError):  # not a git checkout (a source archive): copy the tree
        shutil.copytree(ROOT, target, ignore=_NOT_SOURCES)
        return target
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():  # a tracked file deleted in the work tree is not copied
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    return target


def _run(command: list[str], log: Path, cwd: Path | None = None, env: dict[str, str] | None = None,
         timeout: float = 600) -> None:
    with log.open("ab") as out:
        result = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, cwd=cwd, env=env, timeout=timeout)
    assert result.returncode == 0, f"{command} failed:\n{log.read_text()[-4000:]}"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A venv outside the repository with the freshly built wheel installed (not editable)."""
    base = tmp_path_factory.mktemp("installed-wheel")
    log = base / "build.log"
    source = _checkout_copy(base / "checkout")
    started = time.monotonic()
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--wheel-dir", str(base / "dist"), str(source)], log)
    wheels = list((base / "dist").glob("sgbridge-*.whl"))
    assert len(wheels) == 1, wheels
    venv = base / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], log)
    _run([str(venv / "bin" / "python"), "-m", "pip", "install", "--disable-pip-version-check", str(wheels[0])], log)
    (base / "timing.txt").write_text(f"build + venv + install: {time.monotonic() - started:.1f} s\n")
    run_dir = base / "elsewhere"
    (run_dir / "tmp").mkdir(parents=True)
    return {"base": base, "venv": venv, "wheel": wheels[0], "run_dir": run_dir, "log": log}


def _env(installed: dict[str, Path]) -> dict[str, str]:
    """The user's environment: no sgbridge settings, no spec-folder override, no repo on the path."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SGBRIDGE_", "SEGMENT_", "SENDGRID_")) and k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["TMPDIR"] = str(installed["run_dir"] / "tmp")
    env["PATH"] = f"{installed['venv'] / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    return env


def test_the_package_is_installed_from_the_wheel_alone(installed: dict[str, Path]) -> None:
    probe = ("import pathlib, sgbridge, importlib.metadata as m; from sgbridge.emulators.sendgrid import openapi; "
             "print(pathlib.Path(sgbridge.__file__).resolve().parent); print(openapi.default_spec_dir()); "
             "d = m.distribution('sgbridge'); print(d.metadata['License-Expression']); "
             "print(*(f for f in d.files or [] if 'licenses' in str(f)), sep=',')")
    out = subprocess.run([str(installed["venv"] / "bin" / "python"), "-c", probe], cwd=installed["run_dir"],
                         env=_env(installed), check=True, capture_output=True, text=True).stdout.splitlines()
    package, spec_dir = Path(out[0]), Path(out[1])
    assert package.is_relative_to(installed["venv"])  # not the checkout: a real, non-editable install
    assert not list(package.parent.glob("__editable__*"))
    assert spec_dir.is_relative_to(package) and len(list(spec_dir.glob("tsg_*.json"))) >= 9
    for folder in package.parents:  # the research folder is reachable from nowhere above the package
        assert not (folder / "shared" / "fixtures").exists(), folder
    assert out[2] == "Apache-2.0 AND MIT"
    licenses = out[3].split(",")
    assert any(f.endswith("licenses/LICENSE") for f in licenses), licenses
    apache = next(p for p in package.parent.glob("sgbridge-*.dist-info/licenses/LICENSE"))
    assert "Apache License" in apache.read_text() and "Version 2.0, January 2004" in apache.read_text()


def test_the_installed_demo_runs(installed: dict[str, Path]) -> None:
    log = installed["base"] / "demo.log"
    started = time.monotonic()
    _run(["sgbridge", "demo", "--duration", "5"], log, cwd=installed["run_dir"], env=_env(installed), timeout=180)
    with (installed["base"] / "timing.txt").open("a") as timing:
        timing.write(f"demo --duration 5: {time.monotonic() - started:.1f} s\n")
    output = log.read_text()
    assert "What reached the Segment emulator" in output and "What reached the warehouse" in output
    assert list((installed["run_dir"] / "tmp").iterdir()) == []  # its temp folder is removed


def test_the_installed_sendgrid_emulator_validates_with_the_bundled_specs(installed: dict[str, Path]) -> None:
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = installed["base"] / "emulator.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(["sgbridge", "emulate", "sendgrid", "--port", str(port)], cwd=installed["run_dir"],
                                env=_env(installed), stdout=out, stderr=subprocess.STDOUT)
    auth = {"Authorization": "Bearer SG.x"}
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, log.read_text()
            try:
                lists = httpx.get(f"{url}/v3/marketing/lists", headers=auth, timeout=2)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.1)
        assert lists.status_code == 200 and lists.json()["result"] == []
        assert httpx.get(f"{url}/v3/marketing/lists", timeout=5).status_code == 401
        # a body the spec refuses (name must be a string): SendGrid's error shape, the field named
        bad = httpx.post(f"{url}/v3/marketing/lists", headers=auth, json={"name": 5}, timeout=5)
        assert bad.status_code == 400, bad.text
        errors = bad.json()["errors"]
        assert errors and errors[0]["field"] == "name" and isinstance(errors[0]["message"], str)
        good = httpx.post(f"{url}/v3/marketing/lists", headers=auth, json={"name": "Newsletter"}, timeout=5)
        assert good.status_code == 201 and good.json()["name"] == "Newsletter"
        # an operation the spec declares a query parameter type for: page_size must be an integer
        paged = httpx.get(f"{url}/v3/marketing/lists", headers=auth, params={"page_size": "x"}, timeout=5)
        assert paged.status_code == 400 and paged.json()["errors"][0]["field"] == "page_size"
    finally:
        _stop(proc)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def test_the_installed_console_serves_its_pages_and_assets(installed: dict[str, Path]) -> None:
    """`sgbridge users add`, then the web role alone from the wheel: templates and assets are package data."""
    import re

    env = {**_env(installed), "SGBRIDGE_DATABASE_URL": f"sqlite:///{installed['run_dir'] / 'console.db'}"}
    password = "a long password for the wheel"
    subprocess.run(["sgbridge", "users", "add", "wheel", "--role", "operator", "--password-stdin"],
                   input=password + "\n", text=True, cwd=installed["run_dir"], env=env, check=True,
                   capture_output=True)
    port = _free_port()
    log = installed["base"] / "console.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(["sgbridge", "serve", "--role", "web", "--port", str(port)], cwd=installed["run_dir"],
                                env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, log.read_text()
            try:
                login = httpx.get(f"{url}/ui/login", timeout=2)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.1)
        assert login.status_code == 200 and "Log in" in login.text
        for asset in ("console.css", "console.js"):
            assert httpx.get(f"{url}/ui/static/{asset}", timeout=5).status_code == 200, asset
        with httpx.Client(base_url=url, timeout=5) as client:
            token = re.search(r'name="csrf" value="([^"]+)"', client.get("/ui/login").text)
            assert token
            done = client.post("/ui/login", data={"csrf": token.group(1), "name": "wheel", "password": password})
            assert done.status_code == 303
            assert "wheel (operator)" in client.get("/ui/").text
    finally:
        _stop(proc)
