"""IW-NLL evaluation speed against its FLOP roofline.

  python benchmarks/eval_throughput.py --workdir=W [--split=test] \
      [--num_importance_samples=500] [--max_sentences=0] [--source_dir=DIR]

Counts the FLOPs the estimate needs over the split's REAL tokens (</s> included;
padding, the encoder and the elementwise work not counted): per token and per
importance sample, the decoder's input projection 2*E*3H, recurrent matmul
2*H*3H and output layer 2*H*V, plus 2*Z*3H + 2*Z*H per sentence and sample for
z. The roofline time is that count divided by the matmul rate measured in the
same process on the output layer's own shape ([N, H] x [H, V], float32; the
best over N in 512..4096 rows). Prints
one JSON object as its last line: seconds (wall, compilation included),
compile_s (first pass over each batch shape, measured separately), flops,
matmul_gflops, roofline_s, ratio = seconds / roofline_s.
"""

import json
import sys
import time

from absl import app
from absl import flags
import jax
import jax.numpy as jnp
import numpy as np

from textvae import evaluation
from textvae import restore
from textvae import steps
from textvae.data import pipeline
from textvae.data import sources

_WORKDIR = flags.DEFINE_string("workdir", None, "Trained workdir.")
_SPLIT = flags.DEFINE_string("split", "test", "Split.")
_K = flags.DEFINE_integer("num_importance_samples", 500, "K.")
_MAX = flags.DEFINE_integer("max_sentences", 0, "Evaluate only the first N sentences (0: all).")
_BATCH = flags.DEFINE_integer("batch_size", 32, "Sentences per batch.")
_CHUNK = flags.DEFINE_integer("chunk_size", 50, "Samples decoded at once.")
_SOURCE = flags.DEFINE_string("source_dir", None, "Override config.data.source_dir.")
_FROM = flags.DEFINE_string("seconds_from", None, "An eval_<split>.json written by "
                            "textvae.evaluate: compare its measured seconds with the roofline "
                            "instead of running the evaluation again.")
flags.mark_flag_as_required("workdir")


def matmul_gflops(n, h, v, repeats=5):
  a = jnp.asarray(np.random.default_rng(0).normal(size=(n, h)), jnp.float32)
  w = jnp.asarray(np.random.default_rng(1).normal(size=(v, h)), jnp.float32)
  f = jax.jit(lambda a, w: a @ w.T)
  f(a, w).block_until_ready()
  start = time.perf_counter()
  for _ in range(repeats):
    f(a, w).block_until_ready()
  return 2 * n * h * v * repeats / (time.perf_counter() - start) / 1e9


def iw_flops(split, *, embed, hidden, latent, vocab, samples):
  tokens = split.num_tokens
  per_token = 2 * embed * 3 * hidden + 2 * hidden * 3 * hidden + 2 * hidden * vocab
  per_sentence = 2 * latent * 3 * hidden + 2 * latent * hidden
  return samples * (tokens * per_token + len(split) * per_sentence)


def main(argv):
  del argv
  trained = restore.load(_WORKDIR.value)
  cfg = trained.config
  if _SOURCE.value is not None:
    cfg.data.source_dir = _SOURCE.value
  corpus = sources.load_splits(cfg.data, splits=(_SPLIT.value,))[_SPLIT.value]
  sentences = corpus.sentences[:_MAX.value] if _MAX.value else corpus.sentences
  split = pipeline.encode(_SPLIT.value, sentences, trained.vocab, cfg.data.max_length)
  m = cfg.model
  # The best matmul rate over row counts is the roofline the kernel is held to.
  rate = max(matmul_gflops(n, m.hidden_dim, len(trained.vocab)) for n in (512, 1024, 2048, 4096))
  flops = iw_flops(split, embed=m.embed_dim, hidden=m.hidden_dim, latent=m.latent_dim,
                   vocab=len(trained.vocab), samples=_K.value)
  if _FROM.value:
    with open(_FROM.value, encoding="utf-8") as f:
      done = json.load(f)
    assert done["num_importance_samples"] == _K.value and done["num_tokens"] == split.num_tokens
    out = {k: done[k] for k in ("split", "num_sentences", "num_tokens", "num_importance_samples",
                                "iw_nll", "ppl", "seconds")}
    out.update(flops=flops, matmul_gflops=rate, roofline_s=flops / (rate * 1e9),
               ratio=done["seconds"] / (flops / (rate * 1e9)), source=_FROM.value)
    sys.stdout.write(json.dumps(out) + "\n")
    return
  params = steps.replicate(trained.variables)
  kwargs = dict(num_samples=_K.value, batch_size=_BATCH.value, key=jax.random.key(0),
                chunk_size=_CHUNK.value, pad_multiple=cfg.data.pad_multiple)
  # Compilation: one pass with K = chunk over every batch shape (tiny compute).
  start = time.time()
  evaluation.evaluate_split(trained.model, params, split, **{**kwargs, "num_samples": _CHUNK.value})
  compile_and_small = time.time() - start
  start = time.time()
  evaluation.evaluate_split(trained.model, params, split, **{**kwargs, "num_samples": _CHUNK.value})
  small = time.time() - start
  result = evaluation.evaluate_split(trained.model, params, split, **kwargs)
  roofline = flops / (rate * 1e9)
  out = {"split": _SPLIT.value, "num_sentences": len(split), "num_tokens": split.num_tokens,
         "num_importance_samples": _K.value, "iw_nll": result["iw_nll"],
         "ppl": result["ppl"], "seconds": result["seconds"],
         "compile_s": max(compile_and_small - small, 0.0), "flops": flops,
         "matmul_gflops": rate, "roofline_s": roofline,
         "ratio": result["seconds"] / roofline, "devices": str(jax.devices()[0].platform),
         "batch_size": _BATCH.value, "chunk_size": _CHUNK.value}
  sys.stdout.write(json.dumps(out) + "\n")


if __name__ == "__main__":
  app.run(main)
