#!/usr/bin/env bash
# Runs the peers' scenarios against one PostgreSQL database and prints one line of figures per
# system and scenario: longrun's Python SDK (cancel a running handler, drain, idle worker; on
# SQLite and on PostgreSQL), procrastinate (cancel a running task, idle worker, drain) and
# pg-boss (drain).
set -euo pipefail

cd "$(dirname "$0")"
DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}"

if ! cmp -s requirements.txt .venv/installed-requirements.txt; then
  python3 -m venv .venv
  .venv/bin/pip install --quiet --disable-pip-version-check -r requirements.txt
  cp requirements.txt .venv/installed-requirements.txt
fi
# The SDK as it is in this checkout, every run.
# (Its distribution was named `longrun` before `longrun-sdk`: an old install would own the
# same files.)
.venv/bin/pip uninstall --quiet --disable-pip-version-check -y longrun 2>/dev/null || true
.venv/bin/pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation \
  --force-reinstall ../../sdk/python
if ! cmp -s package-lock.json node_modules/.installed-lock.json; then
  npm ci --silent --no-audit --no-fund
  cp package-lock.json node_modules/.installed-lock.json
fi
(cd ../.. && cargo build --release -p longrun-cli --locked)
export LONGRUN_BIN="${LONGRUN_BIN:-$PWD/../../target/release/longrun}"

.venv/bin/python longrun_sdk.py --store sqlite
.venv/bin/python longrun_sdk.py --store postgres --database-url "$DATABASE_URL"
.venv/bin/python procrastinate_cancel.py "$DATABASE_URL"
.venv/bin/python procrastinate_drain.py "$DATABASE_URL"
if [[ -z "${SKIP_PGBOSS:-}" ]]; then
  node pgboss_drain.mjs "$DATABASE_URL"
fi
