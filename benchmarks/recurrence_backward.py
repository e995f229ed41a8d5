"""Forward + backward time of the cells' recurrences: the written-out backward
pass (textvae/cells) against autodiff of a plain `lax.scan` of the same step.

  python benchmarks/recurrence_backward.py --cell=lstm --time=25 --batch=32 --hidden=256

Prints one JSON line: milliseconds per call (median of --repeats) for both.
"""

import json

from absl import app
from absl import flags
import jax
import jax.numpy as jnp
import numpy as np
import timing  # benchmarks/timing.py, beside this script

from textvae import cells
from textvae.cells import gru
from textvae.cells import lstm

FLAGS = flags.FLAGS


def _scan_autodiff(name):
  if name == "gru":
    def f(xp, state0, mask, K, b):
      def step(h, inputs):
        h, _ = gru._step(K, b, h, *inputs)
        return h, h
      return jax.lax.scan(step, state0, (xp, mask))[1]
  else:
    def f(xp, state0, mask, K, b):
      def step(carry, inputs):
        (h, c), _ = lstm._step(K, b, carry[0], carry[1], *inputs)
        return (h, c), h
      return jax.lax.scan(step, state0, (xp, mask))[1]
  return f


def _written_out(name):
  if name == "gru":
    return lambda xp, state0, mask, K, b: gru.recurrence(xp, state0, mask, K, b)
  return lambda xp, state0, mask, K, b: lstm.recurrence(xp, *state0, mask, K, b)[0]


def main(argv):
  del argv
  T, B, H = FLAGS.time, FLAGS.batch, FLAGS.hidden
  G = cells.CELLS[FLAGS.cell].NUM_GATES
  ks = jax.random.split(jax.random.key(0), 5)
  xp = jax.random.normal(ks[0], (T, B, G * H))
  h0 = jax.random.normal(ks[1], (B, H)) * 0.1
  state0 = h0 if FLAGS.cell == "gru" else (h0, h0)
  K = jax.random.normal(ks[2], (H, G * H)) / np.sqrt(H)
  b = jnp.zeros((G * H,))
  mask = jnp.arange(T)[:, None] < jax.random.randint(ks[3], (1, B), T // 2, T + 1)
  w = jax.random.normal(ks[4], (T, B, H))
  out = {"cell": FLAGS.cell, "T": T, "B": B, "H": H}
  for label, rec in (("written_out", _written_out(FLAGS.cell)),
                     ("autodiff_scan", _scan_autodiff(FLAGS.cell))):
    loss = lambda xp, K, b, rec=rec: jnp.sum(w * rec(xp, state0, mask, K, b))
    fn = jax.jit(jax.grad(loss, (0, 1, 2)))
    out[f"{label}_ms"] = round(timing.median_ms(fn, (xp, K, b), FLAGS.repeats, warmup=0), 3)
  out["speedup"] = round(out["autodiff_scan_ms"] / out["written_out_ms"], 3)
  print(json.dumps(out))


if __name__ == "__main__":
  flags.DEFINE_enum("cell", "lstm", sorted(cells.CELLS), "cell")
  flags.DEFINE_integer("time", 25, "steps")
  flags.DEFINE_integer("batch", 32, "rows")
  flags.DEFINE_integer("hidden", 256, "hidden size")
  flags.DEFINE_integer("repeats", 30, "timed calls")
  app.run(main)
