"""Time of the pmapped train step on one synthetic [batch, time] batch of a
config's model: the step's own cost, without the input pipeline or the shape
mix of real batches (`train_throughput.py` measures those).

  python benchmarks/step_time.py --config=configs/ptb.py:svae --vocab=10003 --time=24

Variants (`--variants`): `default` (steps queued freely), `host_sync` (the loss
fetched after every step, as a loop that logs every step would), `bounded` (at
most 2 steps queued, `parallel.DispatchBound`, as in training). Prints one JSON
line: compile_s, ms per step and tokens/s (real tokens, </s> counted) per variant.
"""

import json
import time

from absl import app
from absl import flags
import jax
from ml_collections import config_flags
import numpy as np

from textvae import models
from textvae import parallel
from textvae import steps

FLAGS = flags.FLAGS
VARIANTS = ("default", "host_sync", "bounded")


def synthetic_batch(batch: int, length: int, vocab: int, seed: int = 0) -> dict:
  """Random word ids, lengths in [length - 3, length] with </s> (id 2) last,
  <bos> (id 1) first in the inputs, <pad> (id 0) after: the pipeline's layout."""
  rng = np.random.default_rng(seed)
  lengths = rng.integers(max(1, length - 3), length + 1, batch)
  tokens = rng.integers(4, vocab, (batch, length)).astype(np.int32)
  for i, n in enumerate(lengths):
    tokens[i, n:] = 0
    tokens[i, n - 1] = 2
  inputs = np.concatenate([np.ones((batch, 1), np.int32), tokens[:, :-1]], 1)
  inputs = np.where(tokens == 0, 0, inputs)
  return {"tokens_BxT": tokens, "inputs_BxT": inputs,
          "weights_B": np.ones(batch, np.float32)}


def _run(p_step, state, batch, key, variant, n):
  bound = parallel.DispatchBound(2)
  t0 = time.perf_counter()
  for _ in range(n):
    state, metrics = p_step(state, batch, key)
    if variant == "host_sync":
      float(metrics["loss"][0])
    elif variant == "bounded":
      bound.push(metrics)
  jax.block_until_ready((state, metrics))
  return state, 1e3 * (time.perf_counter() - t0) / n


def main(argv):
  del argv
  config = FLAGS.config
  batch = synthetic_batch(config.train.batch_size, FLAGS.time, FLAGS.vocab)
  model = models.create_model(config.model, FLAGS.vocab)
  init_key, train_key = jax.random.split(jax.random.key(config.seed))
  p_step = steps.pmap_train_step(config.train)
  sharded = parallel.shard(batch)
  out = {"B": config.train.batch_size, "T": FLAGS.time,
         "tokens": int((batch["tokens_BxT"] != 0).sum())}
  state = steps.place_state(steps.create_train_state(model, init_key, config.train))
  t0 = time.perf_counter()
  state, metrics = p_step(state, sharded, train_key)
  jax.block_until_ready(metrics)
  out["compile_s"] = round(time.perf_counter() - t0, 2)
  for variant in FLAGS.variants:
    state, _ = _run(p_step, state, sharded, train_key, variant, FLAGS.warmup)
    state, ms = _run(p_step, state, sharded, train_key, variant, FLAGS.steps)
    out[f"{variant}_step_ms"] = round(ms, 1)
    out[f"{variant}_tokens_per_s"] = round(out["tokens"] / ms * 1e3, 1)
  print(json.dumps(out))


if __name__ == "__main__":
  config_flags.DEFINE_config_file("config", None, "Training config.", lock_config=True)
  flags.mark_flag_as_required("config")
  flags.DEFINE_integer("vocab", 10003, "vocabulary size (PTB's 10,000 words + 3 specials)")
  flags.DEFINE_integer("time", 24, "batch length T")
  flags.DEFINE_integer("steps", 40, "timed steps per variant")
  flags.DEFINE_integer("warmup", 5, "untimed steps before each variant")
  flags.DEFINE_list("variants", list(VARIANTS), f"of {VARIANTS}")
  app.run(main)
