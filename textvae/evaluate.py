"""Evaluates a workdir's checkpoint on a split: IW-NLL, ELBO, KL, MI, AU, PPL.

  python -m textvae.evaluate --workdir=W [--split=test] [--num_importance_samples=500]

Restores the best validation checkpoint (workdir/best; --checkpoint=latest for
the last one, --step for a given one) with the workdir's config and
vocabulary, prints one JSON object as the last line of output, then writes it to
W/eval_<split>.json; with --interim, for a run still training, to
W/eval_<split>_interim.json instead (launch/ptb_table.sh takes eval_test.json
as the row's final evaluation). Works for VAE and LM workdirs alike (for an LM,
kl, mi and au are 0 and iw_nll is the exact NLL). For a VAE it also scores greedy
reconstructions from the posterior mean: corpus BLEU (sacrebleu) and token
accuracy (`bleu`, `token_accuracy`, `exact_match`). Definitions: docs/design.md and
textvae/evaluation.py (nats per sentence; PPL per token with </s> counted). A
conditional VAE's figures are those of log p(x|y), each sentence with its label.

  python -m textvae.evaluate --workdir=W --control [--label_feature=F]
      [--fluency_lm_workdir=LM] [--control_samples=200] [--control_sources=1000]

also measures control (textvae/control.py) and writes it to W/control_<split>.json:
per label, the label accuracy of prior samples and of transfers of the split's
sentences of other labels, by a bag-of-words classifier trained on the training
split (its held-out accuracy is reported), the BLEU of the transfers to their
sources, and with --fluency_lm_workdir (a textvae LM workdir on the same corpus)
the PPL of the generated sentences under it. A conditional VAE controls its own
label; an unconditional one --label_feature along its latent direction;
--guidance=w guides the transfers away from the source's own code and the prior
samples away from another label.
"""

import json
import os
import sys
import time

from absl import app
from absl import flags
from absl import logging
import jax

from textvae import allocator
from textvae import config_checks
from textvae import control as control_lib
from textvae import errors
from textvae import evaluation
from textvae import fileio
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
  flags.DEFINE_bool("keep_freed_memory", True, "As textvae.main: glibc malloc keeps freed "
                    "memory for reuse (textvae.allocator; no value changes).")
  flags.DEFINE_bool("reconstruction", True, "Also score greedy reconstructions from "
                              "the posterior mean: corpus BLEU and token accuracy (VAE only).")
  flags.DEFINE_string("source_dir", None, "Override config.data.source_dir "
                                    "(the corpus moved).")
  flags.DEFINE_bool("control", False, "Also measure controlled generation (see above).")
  flags.DEFINE_string("label_feature", None, "--control of an unconditional VAE: the "
                      "label feature to control along its latent direction.")
  flags.DEFINE_string("fluency_lm_workdir", None, "--control: a textvae language-model "
                      "workdir whose PPL of the generated sentences is the fluency.")
  flags.DEFINE_integer("control_samples", 200, "--control: prior samples per label.")
  flags.DEFINE_integer("control_sources", 1000, "--control: sentences of the split "
                       "transferred (the first ones).")
  flags.DEFINE_float("direction_scale", 1.0, "--control of an unconditional VAE: "
                     "multiple of the latent direction.")
  flags.DEFINE_enum("control_strategy", "greedy", ["greedy", "beam"], "--control: the "
                    "decoding of prior samples and transfers.")
  flags.DEFINE_integer("control_beam_size", 4, "--control_strategy=beam: beams.")
  flags.DEFINE_float("guidance", 0.0, "--control: weight of the guidance of transfers (away "
                     "from the source's own code) and prior samples (away from another "
                     "label); textvae/control.py, 0: none.")
  flags.DEFINE_bool("only_control", False, "--control without the likelihood figures.")
  flags.DEFINE_bool("interim", False, "The run is still training: write "
                    "W/eval_<split>_interim.json, not W/eval_<split>.json.")
  flags.mark_flag_as_required("workdir")

KEYS = ("iw_nll", "elbo", "recon", "kl", "mi", "au", "ppl", "ppl_elbo", "num_sentences",
        "num_tokens", "num_importance_samples", "seconds")


def evaluate_workdir(workdir, *, split="test", num_samples=500, step=None, batch_size=32,
                     chunk_size=50, seed=0, source_dir=None, reconstruction=True,
                     checkpoint="auto", write=True, interim=False) -> dict:
  """The metrics of one split, also written to W/eval_<split>.json with `write`
  (`interim`: of a run still training, marked so and written to
  W/eval_<split>_interim.json)."""
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
  condition = trained.labels.feature if trained.labels is not None else ""
  batch_size = max(batch_size // jax.device_count(), 1) * jax.device_count()
  result = evaluation.evaluate_split(
      trained.model, steps.replicate(trained.variables), encoded, num_samples=num_samples,
      batch_size=batch_size, key=jax.random.key(seed), chunk_size=chunk_size,
      pad_multiple=config.data.pad_multiple, condition=condition, buckets=buckets)
  out = {k: result[k] for k in KEYS}
  out.update(split=split, step=trained.step, checkpoint=trained.checkpoint,
             model=config.model.kind,
             kl_per_dim=result["kl_per_dim"], seed=seed)
  if interim:
    out["interim"] = True
  if reconstruction and config.model.kind == "vae":
    start = time.time()
    recon = reconstruction_lib.reconstruction_metrics(
        trained.model, trained.variables, encoded, trained.vocab,
        max_length=config.data.max_length, labels=pipeline.split_labels(encoded, condition),
        buckets=buckets)
    out.update(bleu=recon["bleu"], token_accuracy=recon["token_accuracy"],
               exact_match=recon.get("exact_match"), bleu_signature=recon["bleu_signature"],
               reconstruction_seconds=time.time() - start)
  if write:
    write_result(trained.workdir, result_name(split, interim), out)
  return out


def write_result(workdir, name, out) -> None:
  """W/<name>.json (process 0). A failure (a read-only or full disk) is a
  WorkdirError naming the file: the result itself was computed."""
  if jax.process_index() != 0:
    return
  path = os.path.join(workdir, f"{name}.json")
  try:
    fileio.write_json(path, out, indent=2)
  except OSError as e:
    raise errors.WorkdirError(f"could not write {path} ({e.strerror or e}); the result "
                              "was computed but not saved") from None
  logging.info("Wrote %s", path)


def control_workdir(workdir, *, split="test", step=None, checkpoint="auto", seed=0,
                    source_dir=None, label_feature=None, fluency_lm_workdir=None,
                    num_samples=200, num_sources=1000, direction_scale=1.0,
                    keep_outputs=False, guidance=0.0, strategy="greedy",
                    beam_size=4) -> dict:
  """`control.control_metrics` of a workdir's checkpoint, written to
  W/control_<split>.json."""
  for name, value in (("--control_samples", num_samples), ("--control_sources", num_sources)):
    config_checks.check(name, value, config_checks.integer(1))
  trained = restore.load(workdir, step, checkpoint)
  lm = restore.load(fluency_lm_workdir) if fluency_lm_workdir else None
  out = control_lib.control_metrics(trained, feature=label_feature, split=split,
                                    num_samples=num_samples, num_sources=num_sources,
                                    seed=seed, fluency_lm=lm, direction_scale=direction_scale,
                                    source_dir=source_dir, keep_outputs=keep_outputs,
                                    guidance=guidance, strategy=strategy,
                                    **({"beam_size": beam_size} if strategy == "beam" else {}))
  out.update(step=trained.step, checkpoint=trained.checkpoint)
  write_result(trained.workdir, f"control_{split}", out)
  return out


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  if FLAGS.keep_freed_memory:
    allocator.keep_freed_memory()
  if FLAGS.control:
    ctl = control_workdir(FLAGS.workdir, split=FLAGS.split, step=FLAGS.step,
                          checkpoint=FLAGS.checkpoint, seed=FLAGS.seed,
                          source_dir=FLAGS.source_dir, label_feature=FLAGS.label_feature,
                          fluency_lm_workdir=FLAGS.fluency_lm_workdir,
                          num_samples=FLAGS.control_samples,
                          num_sources=FLAGS.control_sources,
                          direction_scale=FLAGS.direction_scale, guidance=FLAGS.guidance,
                          strategy=FLAGS.control_strategy, beam_size=FLAGS.control_beam_size)
    for name, row in ctl["per_label"].items():
      logging.info("control %s: %s", name, json.dumps(row))
    sys.stdout.write(json.dumps({"control": {k: ctl[k] for k in (
        "method", "feature", "classifier", "per_label", "overall")}}) + "\n")
    if FLAGS.only_control:
      sys.stdout.flush()
      return
  out = evaluate_workdir(FLAGS.workdir, split=FLAGS.split, num_samples=FLAGS.num_importance_samples,
                         step=FLAGS.step, batch_size=FLAGS.batch_size, chunk_size=FLAGS.chunk_size,
                         seed=FLAGS.seed, source_dir=FLAGS.source_dir,
                         reconstruction=FLAGS.reconstruction, checkpoint=FLAGS.checkpoint,
                         write=False, interim=FLAGS.interim)
  extra = ("bleu", "token_accuracy", "exact_match")
  # The result first: minutes of computation are not lost to a workdir that
  # cannot be written.
  sys.stdout.write(json.dumps({k: out[k] for k in KEYS + extra if k in out}) + "\n")
  sys.stdout.flush()
  write_result(os.path.abspath(FLAGS.workdir), result_name(FLAGS.split, FLAGS.interim), out)


def result_name(split: str, interim: bool = False) -> str:
  """The file name (without .json) of a split's evaluation in a workdir."""
  return f"eval_{split}_interim" if interim else f"eval_{split}"


if __name__ == "__main__":
  define_flags()
  app.run(errors.cli_main(main))
