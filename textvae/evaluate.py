"""Evaluates a workdir's checkpoint on a split: IW-NLL, ELBO, KL, MI, AU, PPL.

  python -m textvae.evaluate --workdir=W [--split=test] [--num_importance_samples=500]

Restores the best validation checkpoint (workdir/best; --checkpoint=latest for
the last one, --step for a given one) with the workdir's config and
vocabulary, prints one JSON object as the last line of output, then writes it to
W/eval_<split>.json. Works for VAE and LM workdirs alike (for an LM, kl, mi and
au are 0 and iw_nll is the exact NLL). For a VAE it also scores greedy
reconstructions from the posterior mean: corpus BLEU (sacrebleu) and token
accuracy (`bleu`, `token_accuracy`, `exact_match`). Definitions: ARCHITECTURE.md and
textvae/evaluation.py (nats per sentence; PPL per token with </s> counted).
"""

import contextlib
import json
import os
import sys
import time

from absl import app
from absl import flags
from absl import logging
import jax

from textvae import config_checks
from textvae import errors
from textvae import evaluation
from textvae import reconstruction as reconstruction_lib
from textvae import restore
from textvae import steps
from textvae.data import pipeline
from textvae.data import sources

FLAGS = flags.FLAGS


def define_flags():
  """The CLI's flags, defined only when it runs as a program (so that tests can
  import several CLIs into one process)."""
  flags.DEFINE_string("workdir", None, "A textvae training workdir.")
  flags.DEFINE_enum("split", "test", ["train", "valid", "test"], "Split to evaluate.")
  flags.DEFINE_integer("num_importance_samples", 500, "K for the IW-NLL estimate.")
  flags.DEFINE_integer("step", None, "Checkpoint step of workdir/checkpoints "
                       "(default: see --checkpoint).")
  flags.DEFINE_enum("checkpoint", "auto", list(restore.CHOICES),
                    "best: the model selected on validation data (workdir/best); "
                    "latest: the last checkpoint; auto: best when there is one.")
  flags.DEFINE_integer("batch_size", 32, "Sentences per batch (global).")
  flags.DEFINE_integer("chunk_size", 50, "Importance samples decoded at once.")
  flags.DEFINE_integer("seed", 0, "Seed of the importance samples.")
  flags.DEFINE_bool("reconstruction", True, "Also score greedy reconstructions from "
                              "the posterior mean: corpus BLEU and token accuracy (VAE only).")
  flags.DEFINE_string("source_dir", None, "Override config.data.source_dir "
                                    "(the corpus moved).")
  flags.mark_flag_as_required("workdir")

KEYS = ("iw_nll", "elbo", "recon", "kl", "mi", "au", "ppl", "ppl_elbo", "num_sentences",
        "num_tokens", "num_importance_samples", "seconds")


def evaluate_workdir(workdir, *, split="test", num_samples=500, step=None, batch_size=32,
                     chunk_size=50, seed=0, source_dir=None, reconstruction=True,
                     checkpoint="auto", write=True) -> dict:
  """The metrics of one split, also written to W/eval_<split>.json with `write`."""
  for name, value in (("--num_importance_samples", num_samples), ("--batch_size", batch_size),
                      ("--chunk_size", chunk_size)):
    config_checks.check(name, value, config_checks.integer(1))
  trained = restore.load(workdir, step, checkpoint)
  config = trained.config
  if source_dir is not None:
    config.data.source_dir = source_dir
  # The training split too: its lengths give the bucket lengths batches are padded to.
  corpora = sources.load_splits(config.data, splits=tuple(dict.fromkeys(("train", split))))
  encoded = {name: pipeline.encode(name, c.sentences, trained.vocab, config.data.max_length,
                                   c.factors) for name, c in corpora.items()}
  buckets = pipeline.batch_buckets(config.data, encoded["train"].lengths)
  encoded = encoded[split]
  batch_size = max(batch_size // jax.device_count(), 1) * jax.device_count()
  result = evaluation.evaluate_split(
      trained.model, steps.replicate(trained.params), encoded, num_samples=num_samples,
      batch_size=batch_size, key=jax.random.key(seed), chunk_size=chunk_size,
      pad_multiple=config.data.pad_multiple, buckets=buckets)
  out = {k: result[k] for k in KEYS}
  out.update(split=split, step=trained.step, checkpoint=trained.checkpoint,
             model=config.model.kind,
             kl_per_dim=result["kl_per_dim"], seed=seed)
  if reconstruction and config.model.kind == "vae":
    start = time.time()
    recon = reconstruction_lib.reconstruction_metrics(
        trained.model, trained.params, encoded, trained.vocab,
        max_length=config.data.max_length, buckets=buckets)
    out.update(bleu=recon["bleu"], token_accuracy=recon["token_accuracy"],
               exact_match=recon.get("exact_match"), bleu_signature=recon["bleu_signature"],
               reconstruction_seconds=time.time() - start)
  if write:
    write_result(trained.workdir, f"eval_{split}", out)
  return out


def write_result(workdir, name, out) -> None:
  """W/<name>.json (process 0). A failure (a read-only or full disk) is a
  WorkdirError naming the file: the result itself was computed."""
  if jax.process_index() != 0:
    return
  path = os.path.join(workdir, f"{name}.json")
  try:
    with open(path + ".tmp", "w", encoding="utf-8") as f:
      json.dump(out, f, indent=2)
    os.replace(path + ".tmp", path)
  except OSError as e:
    with contextlib.suppress(OSError):
      os.remove(path + ".tmp")
    raise errors.WorkdirError(f"could not write {path} ({e.strerror or e}); the result "
                              "was computed but not saved") from None
  logging.info("Wrote %s", path)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  out = evaluate_workdir(FLAGS.workdir, split=FLAGS.split, num_samples=FLAGS.num_importance_samples,
                         step=FLAGS.step, batch_size=FLAGS.batch_size, chunk_size=FLAGS.chunk_size,
                         seed=FLAGS.seed, source_dir=FLAGS.source_dir,
                         reconstruction=FLAGS.reconstruction, checkpoint=FLAGS.checkpoint,
                         write=False)
  extra = ("bleu", "token_accuracy", "exact_match")
  # The result first: minutes of computation are not lost to a workdir that
  # cannot be written.
  sys.stdout.write(json.dumps({k: out[k] for k in KEYS + extra if k in out}) + "\n")
  sys.stdout.flush()
  write_result(os.path.abspath(FLAGS.workdir), f"eval_{FLAGS.split}", out)


if __name__ == "__main__":
  define_flags()
  app.run(errors.cli_main(main))
