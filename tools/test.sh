#!/usr/bin/env bash
# One command for the tests: set up (venv, Chromium, fonts, PostgreSQL), then run pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/bootstrap.sh

# The centre's PostgreSQL backend is tested against a real server on 127.0.0.1:5432.
if ! command -v pg_ctlcluster >/dev/null; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq postgresql >/dev/null
fi
if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
  for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
fi

set +e
.venv/bin/python -m pytest -q -ra "$@"
rc=$?
set -e
# pytest's 5 means no test ran, which must not pass for green.
exit $rc
