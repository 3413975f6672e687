"""scripts/_venv.sh (behind ./scripts/demo and ./scripts/test) runs pip only when something changed.

Run for real on a copy of the script beside a one-module project: a fresh .venv, pip, the stamp.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = """\
[build-system]
requires = ["setuptools>=77"]
build-backend = "setuptools.build_meta"

[project]
name = "venv-script-probe"
version = "{version}"
requires-python = ">=3.11"

[project.optional-dependencies]
dev = []
extra = []

[project.scripts]
sgbridge = "probe:main"  # the script checks that the console script is there

[tool.setuptools]
py-modules = ["probe"]
"""


def _source_venv(project: Path, extras: str = "") -> None:
    env = {**os.environ, "SGBRIDGE_EXTRAS": extras, "PYTHON": sys.executable}
    env.pop("SGBRIDGE_REINSTALL", None)
    subprocess.run(["bash", "-c", "source scripts/_venv.sh"], cwd=project, env=env, check=True,
                   capture_output=True, timeout=300)


def _installed(project: Path) -> tuple[str, int]:
    """(version, mtime of the installed metadata) of the probe project in the copy's .venv."""
    dist_info = next((project / ".venv" / "lib").glob("python3*/site-packages/venv_script_probe-*.dist-info"))
    version = dist_info.name.removesuffix(".dist-info").split("-")[1]
    return version, (dist_info / "RECORD").stat().st_mtime_ns


@pytest.mark.slow
def test_pip_runs_only_when_pyproject_or_the_extras_change(tmp_path: Path) -> None:
    project = tmp_path / "project"
    (project / "scripts").mkdir(parents=True)
    (project / "scripts" / "_venv.sh").write_bytes((ROOT / "scripts" / "_venv.sh").read_bytes())
    (project / "probe.py").write_text("def main() -> None:\n    print(1)\n")
    (project / "pyproject.toml").write_text(PYPROJECT.format(version="1.0"))

    _source_venv(project, "[dev]")
    version, first = _installed(project)
    assert version == "1.0"

    _source_venv(project, "[dev]")  # nothing changed: pip does not run
    _source_venv(project)  # fewer extras than installed: nothing to do either
    assert _installed(project) == ("1.0", first)
    stamp = project / ".venv" / "sgbridge-install.stamp"
    assert stamp.read_text().split()[1] == "dev"
    # editable: a source change needs no reinstall
    (project / "probe.py").write_text("def main() -> None:\n    print(2)\n")
    _source_venv(project)
    assert _installed(project) == ("1.0", first)

    (project / "pyproject.toml").write_text(PYPROJECT.format(version="1.1"))
    _source_venv(project)
    version, second = _installed(project)
    assert version == "1.1"
    assert stamp.read_text().split()[1] == "dev"  # installed extras are kept

    _source_venv(project, "[extra]")  # a new extra: pip runs, with both
    assert _installed(project)[1] != second
    assert stamp.read_text().split()[1] == "dev,extra"
