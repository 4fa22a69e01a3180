#!/usr/bin/env bash
# Runs scenario S4 (enqueue 5,000 no-op jobs, then drain them) with procrastinate and pg-boss
# against one PostgreSQL database, and prints one line of figures per system.
set -euo pipefail

cd "$(dirname "$0")"
DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}"

if ! cmp -s requirements.txt .venv/installed-requirements.txt; then
  python3 -m venv .venv
  .venv/bin/pip install --quiet --disable-pip-version-check -r requirements.txt
  cp requirements.txt .venv/installed-requirements.txt
fi
if ! cmp -s package-lock.json node_modules/.installed-lock.json; then
  npm ci --silent --no-audit --no-fund
  cp package-lock.json node_modules/.installed-lock.json
fi

.venv/bin/python procrastinate_drain.py "$DATABASE_URL"
node pgboss_drain.mjs "$DATABASE_URL"
