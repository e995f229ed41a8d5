#!/usr/bin/env bash
# A Cloud TPU VM slice (one host or a pod slice): copies this repository to every
# worker, creates or reuses a virtualenv there (textvae + jax[tpu]) and runs
# `python -m textvae.main --distributed` on all workers at once; JAX finds the
# coordinator and the workers from the TPU metadata.
#   TPU_NAME=my-v4-32 ZONE=us-central2-b launch/tpu_vm.sh \
#       --config=configs/ptb.py --config.data.source_dir=DIR --workdir=/mnt/shared/W
# TPU_NAME, ZONE: required; PROJECT: optional (gcloud's default otherwise).
# REMOTE_DIR: where the code goes on the workers (default ~/textvae).
# The workdir must be on storage every worker sees (NFS, Filestore, a gcsfuse
# mount): checkpoints are written by all workers together. Every argument is
# passed through as absl flags (quoted safely for the remote shell).
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
: "${TPU_NAME:?set TPU_NAME to the TPU VM name}"
: "${ZONE:?set ZONE to the TPU VM zone}"
remote_dir="${REMOTE_DIR:-textvae}"
gcloud_args=(compute tpus tpu-vm --zone="$ZONE")
if [ -n "${PROJECT:-}" ]; then
  gcloud_args+=(--project="$PROJECT")
fi

# 1. The code, on every worker (no .git, virtualenvs, workdirs or datasets).
archive="$(mktemp -t textvae.XXXXXX.tar.gz)"
trap 'rm -f "$archive"' EXIT
tar -C "$repo" -czf "$archive" --exclude=.git --exclude='.venv*' --exclude=workdirs \
  --exclude='__pycache__' textvae configs launch setup.py README.md
gcloud "${gcloud_args[@]}" scp "$archive" "$TPU_NAME:textvae.tar.gz" --worker=all
# 2. A virtualenv on every worker (created once), then training on all of them.
flags="$(printf '%q ' "$@")"
remote="set -euo pipefail
mkdir -p $remote_dir && tar -C $remote_dir -xzf textvae.tar.gz && cd $remote_dir
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
  .venv/bin/pip install -q -e .
  .venv/bin/pip install -q \"jax[tpu]==\$(.venv/bin/python -c 'import jax; print(jax.__version__)')\"
fi
export TEXTVAE_DISTRIBUTED=1
exec .venv/bin/python -m textvae.main --distributed $flags"
gcloud "${gcloud_args[@]}" ssh "$TPU_NAME" --worker=all --command="$remote"
