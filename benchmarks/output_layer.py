"""Forward + backward time of the output layer and loss: textvae's fused layer
(textvae/output_layer.py: the gradient computed in the forward pass, block by
block) against autodiff of logsumexp (models.output_nll), and one plain
[N, H] x [H, V] matmul as the floor.

  python benchmarks/output_layer.py --rows=768 --hidden=256 --vocab=10003

Prints one JSON line: milliseconds per call (median of --repeats).
"""

import json

from absl import app
from absl import flags
import jax
import jax.numpy as jnp
import timing  # benchmarks/timing.py, beside this script

from textvae import models
from textvae import output_layer

FLAGS = flags.FLAGS


def main(argv):
  del argv
  N, H, V = FLAGS.rows, FLAGS.hidden, FLAGS.vocab
  ks = jax.random.split(jax.random.key(0), 4)
  h = jax.random.normal(ks[0], (N, H)) * 0.3
  W = jax.random.normal(ks[1], (V, H)) * 0.05
  b = jax.random.normal(ks[2], (V,)) * 0.1
  t = jax.random.randint(ks[3], (N,), 0, V)
  w = jnp.ones(N) / 32
  autodiff = jax.jit(jax.grad(
      lambda h, W, b: (w * models.output_nll(h, W, b, t)).sum(), argnums=(0, 1, 2)))
  fused = jax.jit(jax.grad(
      lambda h, W, b: output_layer.weighted_nll(h, W, b, t, w, FLAGS.block_rows)[0],
      argnums=(0, 1, 2)))
  matmul = jax.jit(lambda h, W, b: h @ W.T)
  out = {"N": N, "H": H, "V": V, "block_rows": FLAGS.block_rows}
  for label, fn in (("autodiff_logsumexp", autodiff), ("fused", fused), ("matmul", matmul)):
    out[f"{label}_ms"] = round(timing.median_ms(fn, (h, W, b), FLAGS.repeats, warmup=3), 2)
  print(json.dumps(out))


if __name__ == "__main__":
  flags.DEFINE_integer("rows", 768, "rows N (batch x time)")
  flags.DEFINE_integer("hidden", 256, "hidden size H")
  flags.DEFINE_integer("vocab", 10003, "vocabulary V")
  flags.DEFINE_integer("block_rows", 128, "rows per block of the fused layer")
  flags.DEFINE_integer("repeats", 20, "timed calls")
  app.run(main)
