# shellcheck shell=bash
# Sourced by local.sh, gpu.sh and slurm.sh. `textvae_venv REPO VENV [JAX_EXTRA]`
# creates the virtualenv VENV when it has no python yet: textvae from REPO
# (editable), and with JAX_EXTRA (cuda12, cuda13) jax[JAX_EXTRA] at the JAX
# version that textvae's install brought.
textvae_venv() {
  local repo="$1" venv="$2" extra="${3:-}" jax_version
  [ -x "$venv/bin/python" ] && return 0
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q -e "$repo"
  if [ -n "$extra" ]; then
    jax_version="$("$venv/bin/python" -c 'import jax; print(jax.__version__)')"
    "$venv/bin/pip" install -q "jax[$extra]==$jax_version"
  fi
}
