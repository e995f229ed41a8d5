"""Autoencoder pretraining (Li et al. 2019, "A surprisingly effective fix for
deep latent variable modeling of text").

The first `config.train.pretrain_steps` steps train an autoencoder (beta = 0,
objectives.train_kl_weight); before the next step the decoder starts afresh:
new parameters from `decoder_reinit_key(init_key, pretrain_steps)` and a fresh
optimizer state for them, the encoder, its optimizer state and the step count
kept. The reset is a function of the step, so resume needs no state of its own.
"""

from __future__ import annotations

from absl import logging
import jax

from textvae import optim
from textvae import steps
from textvae.hooks import base


def create(config, ctx: base.Context):
  n = int(config.train.get("pretrain_steps", 0) or 0)
  return Pretrain(config, ctx, n) if n else None


def decoder_reinit_key(init_key, pretrain_steps: int):
  """The key of the decoder's fresh parameters after autoencoder pretraining."""
  return jax.random.fold_in(init_key, pretrain_steps)


def reinit_decoder(state: steps.TrainState, model, init_key, train_config) -> steps.TrainState:
  """The state with a fresh decoder (see the module docstring); `state` is
  unreplicated."""
  fresh = steps.init_variables(model, decoder_reinit_key(init_key, train_config.pretrain_steps))
  dec = fresh["params"]["decoder"]
  params = dict(state.params, decoder=dec)
  opt_state = optim.reset_part(train_config, state.opt_state, "decoder", dec)
  return state.replace(params=params, opt_state=opt_state)


class Pretrain(base.Hook):
  name = "pretrain"

  def __init__(self, config, ctx: base.Context, pretrain_steps: int):
    self.train_config = config.train
    self.model = ctx.model
    self.init_key = ctx.init_key
    self.pretrain_steps = pretrain_steps

  def before_step(self, step, state):
    if step != self.pretrain_steps + 1:
      return state
    logging.info("Step %d: autoencoder pretraining done (%d steps); decoder re-initialised",
                 step, self.pretrain_steps)
    return steps.place_state(reinit_decoder(steps.local_state(state), self.model,
                                            self.init_key, self.train_config))
