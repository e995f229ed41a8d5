#!/usr/bin/env bash
# One host, N GPUs, one process: the train step is pmapped over every visible GPU
# and config.train.batch_size (global) must be a multiple of their number.
#   launch/gpu.sh --config=configs/ptb.py --config.data.source_dir=DIR --workdir=W
#   CUDA_VISIBLE_DEVICES=0,1 launch/gpu.sh ...     # a subset of the GPUs
# Every argument is passed through to `python -m textvae.main` as absl flags.
# TEXTVAE_VENV: the virtualenv (default .venv-gpu); created when missing with
# textvae and jax[cuda12] (JAX_CUDA_EXTRA=cuda13 for CUDA 13 drivers).
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
venv="${TEXTVAE_VENV:-$repo/.venv-gpu}"
# shellcheck source=/dev/null
source "$repo/launch/venv.sh"
textvae_venv "$repo" "$venv" "${JAX_CUDA_EXTRA:-cuda12}"
cd "$repo"
# Fail early (not after building the data) when JAX cannot see a GPU.
"$venv/bin/python" -c '
import jax
gpus = [d for d in jax.devices() if d.platform == "gpu"]
if not gpus:
    raise SystemExit("launch/gpu.sh: JAX sees no GPU (devices: %s); check the driver, "
                     "CUDA_VISIBLE_DEVICES and the jax[cuda] install" % jax.devices())
print("launch/gpu.sh: %d GPU(s): %s" % (len(gpus), ", ".join(d.device_kind for d in gpus)))
'
# Let XLA take GPU memory as needed instead of 75% of it up front.
export XLA_PYTHON_CLIENT_PREALLOCATE="${XLA_PYTHON_CLIENT_PREALLOCATE:-false}"
exec "$venv/bin/python" -m textvae.main "$@"
