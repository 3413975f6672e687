# Sourced by the other scripts: create .venv with Python ≥ 3.11 and install the project into it.
#
# The install is editable, so changes under src/ need no reinstall; pip runs only when .venv is
# new, pyproject.toml changed, or extras not installed yet are asked for (SGBRIDGE_EXTRAS, e.g.
# "[dev]"). What was installed is recorded in .venv/sgbridge-install.stamp: the SHA-256 of
# pyproject.toml and the extras. SGBRIDGE_REINSTALL=1 forces pip to run.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON=${PYTHON:-$(command -v python3.11 || command -v python3)}
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "sgbridge needs Python >= 3.11" >&2; exit 1; }
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
_sgbridge_stamp=.venv/sgbridge-install.stamp
# "<hash> <extra,extra,…>" for the wanted install; installed extras are kept (a demo after the tests
# does not uninstall the test tools), so the wanted extras are the union of both.
_sgbridge_wanted=$(.venv/bin/python - "${SGBRIDGE_EXTRAS:-}" "$_sgbridge_stamp" <<'PY'
import hashlib, pathlib, sys
requested, stamp = sys.argv[1].strip("[] "), pathlib.Path(sys.argv[2])
digest = hashlib.sha256(pathlib.Path("pyproject.toml").read_bytes()).hexdigest()
installed = stamp.read_text().split() if stamp.is_file() else []
extras = {e.strip() for e in requested.split(",") if e.strip()}
if len(installed) == 2 and installed[1] != "-":
    extras |= set(installed[1].split(","))
print(digest, ",".join(sorted(extras)) or "-")
PY
)
if [ "${SGBRIDGE_REINSTALL:-0}" = 1 ] || [ ! -x .venv/bin/sgbridge ] || [ ! -f "$_sgbridge_stamp" ] \
    || [ "$(cat "$_sgbridge_stamp")" != "$_sgbridge_wanted" ]; then
  _sgbridge_extras=${_sgbridge_wanted#* }
  [ "$_sgbridge_extras" = - ] && _sgbridge_extras="" || _sgbridge_extras="[$_sgbridge_extras]"
  rm -f "$_sgbridge_stamp"  # written again only once pip has succeeded
  .venv/bin/python -m pip install -q --disable-pip-version-check -e ".$_sgbridge_extras"
  echo "$_sgbridge_wanted" > "$_sgbridge_stamp"
fi
unset _sgbridge_stamp _sgbridge_wanted _sgbridge_extras
