"""Recurrent cells behind one interface (`config.model.cell`).

A cell is a Flax Linen module with a `hidden_dim` field, a `param_init` field
('default' or 'uniform', see `initializers`) and these methods, which are all the
encoder, the decoder, importance-sampled evaluation and every decoding strategy
use:

  project(x_...xD)                  input projections of every step at once [..., G*H]
  zero_state(batch)                 the initial state of the encoder and the LM
  state_from(v_BxH)                 the decoder's initial state from a latent map v
  output(state)                     the hidden state h [B, H] that the softmax reads
  step(state, xproj_BxGH)           one step (decoding)
  __call__(xproj_TxBxGH, state0, mask_TxB)
                                    (all h [T, B, H], the state after each row's last
                                    real step); masked steps keep the state

The state is a pytree with a leading batch axis on every leaf (GRU: h; LSTM:
(h, c)), so beam search reorders it with one `tree_map`. A new cell is one new
file here plus its entry in `CELLS`.
"""

from __future__ import annotations

from textvae.cells import base
from textvae.cells import gru
from textvae.cells import lstm

CELLS = {"gru": gru.GRU, "lstm": lstm.LSTM}
INITS = base.INITS
initializers = base.initializers


def create(name: str, hidden_dim: int, param_init: str = "default", init_scale: float = 0.01):
  if name not in CELLS:
    raise ValueError(f"config.model.cell={name!r}: expected one of {sorted(CELLS)}")
  return CELLS[name](hidden_dim, param_init=param_init, init_scale=init_scale, name=name)
