#!/usr/bin/env bash
# SLURM, one process per GPU, any number of nodes. Submit with the resources you
# want; every task runs `python -m textvae.main --distributed`, and JAX reads the
# coordinator (first node of the job), process count and id and the task's GPU
# from the SLURM environment (SLURM_STEP_NODELIST, SLURM_NTASKS, SLURM_PROCID,
# SLURM_LOCALID):
#   sbatch --nodes=2 --ntasks-per-node=8 --gpus-per-node=8 launch/slurm.sh \
#       --config=configs/ptb.py --config.data.source_dir=DIR --workdir=/shared/W
# or from inside an salloc allocation: launch/slurm.sh ARGS (it calls srun itself).
# The workdir must be on a filesystem every node sees. Every argument is passed
# through as absl flags. TEXTVAE_VENV: the virtualenv (default .venv-gpu, shared;
# created once, before srun, when missing). JAX_COORDINATOR_PORT overrides the
# port JAX derives from the job id.
#SBATCH --job-name=textvae
#SBATCH --output=textvae-%j.out
set -euo pipefail
repo="${SLURM_SUBMIT_DIR:-$(cd "$(dirname "$0")/.." && pwd)}"
venv="${TEXTVAE_VENV:-$repo/.venv-gpu}"
if [ -z "${SLURM_JOB_ID:-}" ]; then
  echo "launch/slurm.sh: not inside a SLURM job; submit it with sbatch (see the header)" >&2
  exit 2
fi
# shellcheck source=/dev/null
source "$repo/launch/venv.sh"
textvae_venv "$repo" "$venv" "${JAX_CUDA_EXTRA:-cuda12}"
cd "$repo"
export TEXTVAE_DISTRIBUTED=1
export XLA_PYTHON_CLIENT_PREALLOCATE="${XLA_PYTHON_CLIENT_PREALLOCATE:-false}"
# srun starts the job's tasks (SLURM_NTASKS: one per GPU); JAX gives each task
# the GPU numbered SLURM_LOCALID on its node.
exec srun --kill-on-bad-exit=1 "$venv/bin/python" -m textvae.main --distributed "$@"
