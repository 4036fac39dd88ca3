#!/usr/bin/env bash
# One command for the tests: set up (venv, Chromium, fonts, PostgreSQL with the tests' role and
# database), then run pytest. The BagIt conformance suite is read from ../shared/bagit-conformance
# (or $BAGIT_CONFORMANCE): it ships beside the project, as the Library of Congress publishes it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/bootstrap.sh

SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
as_postgres() { if [ "$(id -u)" -eq 0 ]; then su postgres -c "$*"; else sudo -u postgres sh -c "$*"; fi; }

# The centre's PostgreSQL backend is tested against a real server on 127.0.0.1:5432, as a
# role of its own with a password (Debian's pg_hba.conf: scram-sha-256 on the loopback).
if ! command -v pg_ctlcluster >/dev/null; then
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq postgresql >/dev/null
fi
if [ -z "$(pg_lsclusters -h 2>/dev/null)" ]; then
  $SUDO pg_createcluster "$(ls /usr/lib/postgresql | sort -n | tail -n1)" main -p 5432 >/dev/null
fi
if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
  read -r pg_version pg_cluster _ < <(pg_lsclusters -h | head -n1)
  $SUDO pg_ctlcluster --skip-systemctl-redirect "$pg_version" "$pg_cluster" start
  for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
fi
export KIOSK_TEST_PG_URL="${KIOSK_TEST_PG_URL:-postgresql://kiosk_test:kiosk_test@127.0.0.1:5432/kiosk_test}"
as_postgres "psql -q -v ON_ERROR_STOP=1" <<'SQL'
SELECT 'CREATE ROLE kiosk_test LOGIN' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'kiosk_test')\gexec
ALTER ROLE kiosk_test LOGIN PASSWORD 'kiosk_test';
SELECT 'CREATE DATABASE kiosk_test OWNER kiosk_test' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'kiosk_test')\gexec
SQL

# Chromium for Playwright is Debian's (bootstrap.sh); CI=true makes a missing piece fail, not skip.
set +e
.venv/bin/python -m pytest -q -ra "$@"
rc=$?
set -e
# pytest's 5 means no test ran, which must not pass for green.
exit $rc
