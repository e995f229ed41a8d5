#!/usr/bin/env bash
# One host, all its devices (CPU, or every GPU/TPU of the host), one process.
#   launch/local.sh --config=configs/ptb.py --config.data.source_dir=DIR --workdir=W
# Every argument is passed through to `python -m textvae.main` as absl flags.
# TEXTVAE_VENV: the virtualenv to use (default: .venv in the repository; created
# with `pip install -e .` when it does not exist).
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
venv="${TEXTVAE_VENV:-$repo/.venv}"
# shellcheck source=/dev/null
source "$repo/launch/venv.sh"
textvae_venv "$repo" "$venv"
cd "$repo"
exec "$venv/bin/python" -m textvae.main "$@"
