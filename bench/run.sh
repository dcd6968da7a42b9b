#!/usr/bin/env bash
# The logkeeper benchmark (issue 5): `bash bench/run.sh --help` for modes.
# The work is done by bench/run.py (python3, standard library only); this
# wrapper only checks the tools it relies on and runs it from anywhere.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
command -v python3 >/dev/null || { echo "bench: python3 is required" >&2; exit 2; }
command -v cargo >/dev/null || { echo "bench: cargo is required" >&2; exit 2; }
exec python3 "$here/run.py" "$@"
