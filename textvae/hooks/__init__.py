"""Training-loop hooks: what a collapse remedy or a schedule adds to the loop.

The loop (textvae/train.py) knows only the `Hook` interface of base.py; each
remedy that changes the loop itself, not just the objective, is one module
here and one entry in HOOKS. A remedy that changes only the objective (KL
schedules, free bits) or the model (BN-VAE) lives in objectives.py or models.py
and needs no hook. `create` builds the hooks a config enables, in the order
of HOOKS, which is the order the loop calls them in.
"""

from __future__ import annotations

from textvae.hooks import aggressive
from textvae.hooks import base
from textvae.hooks import init_from
from textvae.hooks import plateau
from textvae.hooks import pretrain

Context = base.Context
Hook = base.Hook
Hooks = base.Hooks

# name -> module with `create(config, ctx) -> Hook | None`
HOOKS = {
    "init_from": init_from,    # Li et al. 2019: the encoder of an autoencoder run
    "pretrain": pretrain,      # Li et al. 2019: autoencoder steps, then a fresh decoder
    "aggressive": aggressive,  # He et al. 2019: encoder-only inner steps
    "plateau": plateau,        # learning-rate reductions on validation plateaus
}


def create(config, ctx: Context) -> Hooks:
  """The hooks `config` enables."""
  return Hooks([h for h in (m.create(config, ctx) for m in HOOKS.values()) if h is not None])
