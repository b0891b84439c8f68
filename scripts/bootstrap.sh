#!/usr/bin/env bash
# Installs what the tests and the drill need on a fresh Debian machine, and nothing twice:
# system packages (as root, only the missing ones), the Python virtual environment, and the npm
# packages (Azurite, the Adaptive Cards renderer) into .cache/node. Never downloads a binary from
# outside the package registries.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
PG_BIN=/usr/lib/postgresql/15/bin

missing=()
command -v redis-server >/dev/null || missing+=(redis-server)
[ -x "$PG_BIN/initdb" ] || missing+=(postgresql-15)
[ -x /usr/lib/chromium/chromium ] || missing+=(chromium)
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
command -v runuser >/dev/null || missing+=(util-linux)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "bootstrap: missing system packages: ${missing[*]} (run as root, or apt-get install them)" >&2
    exit 1
  fi
  echo "bootstrap: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
stamp="$VENV/.installed"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "bootstrap: installing Python dependencies"
  "$VENV/bin/pip" install -q --disable-pip-version-check --upgrade pip
  "$VENV/bin/pip" install -q --disable-pip-version-check -e '.[dev]'
  touch "$stamp"
fi

NODE_DIR=.cache/node
if [ ! -x "$NODE_DIR/node_modules/.bin/azurite-table" ] || [ ! -f "$NODE_DIR/node_modules/adaptivecards/dist/adaptivecards.min.js" ]; then
  echo "bootstrap: installing azurite and adaptivecards from npm"
  mkdir -p "$NODE_DIR"
  npm install --silent --no-audit --no-fund --prefix "$NODE_DIR" azurite@3.35.0 adaptivecards@3.0.6 >/dev/null
fi
