#!/usr/bin/env bash
# Runs every test of the workspace, including the interop tests against real
# third-party implementations (PyPI jaeger-client, OpenTelemetry's Python
# propagators), which it installs itself into .venv with pinned versions.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=.venv
req=tests/interop/requirements.txt
stamp="$venv/.requirements.sha256"
want=$(sha256sum "$req" | cut -d' ' -f1)
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "== installing the Python interop peers into $venv"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$req"
  echo "$want" > "$stamp"
fi
export INTEROP_PYTHON="$PWD/$venv/bin/python"

echo "== cargo test"
cargo test --workspace --all-features "$@"
