# Sourced by the scripts in this folder: make sure .venv exists and holds the
# project with its pinned dependencies. Re-installs when the pins change.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv"
stamp="$venv/.tp4emu-installed"
want="$(cat "$root/requirements.lock" "$root/pyproject.toml" | sha256sum | cut -d' ' -f1)"
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "setting up $venv ..." >&2
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install -q --upgrade pip >&2
    "$venv/bin/python" -m pip install -q -r "$root/requirements.lock" >&2
    "$venv/bin/python" -m pip install -q --no-deps -e "$root" >&2
    echo "$want" >"$stamp"
fi
