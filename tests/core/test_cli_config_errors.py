"""A configuration the CLI cannot run with is one line on stderr and exit code 2, never a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from sgbridge.cli import main

COMMANDS = [["status"], ["events", "show", "1"], ["dead-letters", "list"], ["dead-letters", "list", "--json"],
            ["dead-letters", "replay", "--all"], ["sync-history"], ["sync"], ["serve"]]


def _problems(tmp_path: Path) -> dict[str, tuple[dict[str, str], list[str], str]]:
    latin1 = tmp_path / "latin1.toml"
    latin1.write_bytes(b'log_level = "info"\n# r\xe9sum\xe9\n')
    return {
        "bad scheme": ({"SGBRIDGE_DATABASE_URL": "mysql://user:hunter2@db/sgbridge"}, [], "unsupported database URL"),
        "unreachable postgres": ({"SGBRIDGE_DATABASE_URL": "postgresql://user:hunter2@127.0.0.1:1/sgbridge"}, [],
                                 "cannot open the journal"),
        "not utf-8": ({}, ["--config", str(latin1)], "not UTF-8"),
        "port out of range": ({"SGBRIDGE_PORT": "70000"}, [], "port"),
    }


@pytest.mark.parametrize("problem", ["bad scheme", "unreachable postgres", "not utf-8", "port out of range"])
@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_configuration_errors_are_one_line_and_exit_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      problem: str, command: list[str]) -> None:
    env, options, fragment = _problems(tmp_path)[problem]
    monkeypatch.chdir(tmp_path)
    for name in ("SGBRIDGE_CONFIG", "SGBRIDGE_DATABASE_URL", "SGBRIDGE_PORT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SENDGRID_API_KEY", "SG.test")  # so `sync` gets as far as the journal
    result = CliRunner().invoke(main, [*command, *options], env=env)
    assert result.exit_code == 2, (result.output, result.exception)
    assert isinstance(result.exception, SystemExit)  # no exception escaped: click printed the message
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and fragment in lines[0], result.stderr
    assert "hunter2" not in result.output  # the password in the URL is never shown


def test_serve_port_out_of_range_is_a_usage_error() -> None:
    result = CliRunner().invoke(main, ["serve", "--port", "70000"])
    assert result.exit_code == 2
    assert "70000 is not in the range" in result.stderr


@pytest.mark.parametrize(("env", "fragment"), [
    ({"SGBRIDGE_DATABASE_URL": "mysql://db/sgbridge"}, "unsupported database URL scheme 'mysql'"),
    ({"SGBRIDGE_DATABASE_URL": "postgresql://postgres@127.0.0.1:1/sgbridge"}, "Connection refused"),
])
def test_real_process_prints_no_traceback(tmp_path: Path, env: dict[str, str], fragment: str) -> None:
    for command in (["serve"], ["status"]):
        proc = subprocess.run([sys.executable, "-m", "sgbridge", *command], cwd=tmp_path, capture_output=True,
                              text=True, timeout=60, env={"PATH": "/usr/bin:/bin", **env})
        assert proc.returncode == 2, proc.stderr
        assert "Traceback" not in proc.stderr
        [line] = proc.stderr.strip().splitlines()
        assert fragment in line
