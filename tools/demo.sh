#!/usr/bin/env bash
# One command for the demo: set up, then run `kiosk demo` on embedded defaults.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/bootstrap.sh
exec .venv/bin/kiosk demo "$@"
