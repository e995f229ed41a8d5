#!/usr/bin/env bash
# One host, all its devices: creates/reuses a virtualenv, then trains.
#   launch/local.sh --config=configs/ptb.py --config.data.source_dir=DIR --workdir=W
# Every argument is passed through to `python -m textvae.main` as absl flags.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
venv="${TEXTVAE_VENV:-$repo/.venv}"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q -e "$repo"
fi
cd "$repo"
exec "$venv/bin/python" -m textvae.main "$@"
