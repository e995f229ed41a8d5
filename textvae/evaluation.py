"""Split-level evaluation loops over the pmapped kernels in `steps`."""

from __future__ import annotations

import jax
import numpy as np

from textvae import objectives
from textvae import parallel
from textvae.data import pipeline


def elbo_over_split(p_eval_step, params_repl, split: pipeline.EncodedSplit, *,
                    global_batch_size: int, eval_key, pad_multiple: int = 1) -> dict:
  """ELBO, reconstruction, KL (per sentence and per dimension) and the PPL of
  the bound over a whole split, every sentence counted once."""
  totals = None
  for i, batch in enumerate(pipeline.eval_batches(
      split, global_batch_size=global_batch_size, process_index=jax.process_index(),
      process_count=jax.process_count(), pad_multiple=pad_multiple)):
    sums = p_eval_step(params_repl, parallel.shard(batch), eval_key, i)
    sums = jax.tree_util.tree_map(lambda x: x[0], sums)
    totals = sums if totals is None else jax.tree_util.tree_map(np.add, totals, sums)
  totals = jax.device_get(totals)
  out = objectives.summarise(totals)
  n = max(float(totals["num_sentences"]), 1.0)
  out["kl_per_dim"] = (np.asarray(totals["kl_per_dim"], np.float64) / n).tolist()
  return out
