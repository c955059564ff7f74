#!/usr/bin/env bash
# Runs every test of the workspace, including the interop tests against real
# third-party implementations (PyPI jaeger-client, OpenTelemetry's Python
# propagators, grpcio), which it installs itself into .venv with pinned
# versions, and the HotROD browser test, for which it installs Debian's
# Chromium and ChromeDriver when they are missing.
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

if ! command -v chromedriver >/dev/null 2>&1 || ! command -v chromium >/dev/null 2>&1; then
  echo "== installing chromium and chromium-driver (the HotROD browser test)"
  sudo=""
  [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
fi

echo "== cargo test"
cargo test --workspace --all-features "$@"
