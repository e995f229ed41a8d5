"""Generates from a trained workdir: prior samples, reconstructions, interpolations.

  python -m textvae.generate --workdir=W --mode=sample [--num=10]
  python -m textvae.generate --workdir=W --mode=reconstruct --inputs="s1|s2" [--posterior=mean|sample]
  python -m textvae.generate --workdir=W --mode=interpolate --inputs="s1|s2" [--num=7]
  python -m textvae.generate --workdir=W --mode=sample --label=L [--label_feature=F]
  python -m textvae.generate --workdir=W --mode=transfer --label=L [--inputs="s1|s2"
      --input_labels="L1|L2"] [--label_feature=F] [--direction_scale=1] [--guidance=0]

  decoding: --strategy=greedy|sample|top_k|top_p|beam [--temperature=1] [--top_k=10]
            [--top_p=0.9] [--beam_size=4] [--length_penalty=1] [--max_length=config's]
            [--seed=0]

Prints one result per line on stdout, nothing else:
  sample       --num sentences decoded from z ~ N(0, I) (the RNNLM: unconditional)
  reconstruct  one line per input sentence, decoded from its posterior mean (or a
               sample); without --inputs the first --num validation sentences
  interpolate  --num (>= 2) sentences decoded from evenly spaced points on the line
               between the posterior means of the two inputs, endpoints included;
               without --inputs the first two validation sentences
  transfer     one line per input sentence: encoded with its own label, decoded
               with --label; without --inputs the first --num validation
               sentences of other labels
Labels (textvae/control.py): a conditional VAE (config.model.condition) samples
z ~ p(z|L) and decodes with L, and needs the inputs' own labels (--input_labels,
one for all or one per input; the validation split's labels by default); an
unconditional VAE controls the label feature --label_feature along its latent
direction (the difference of the label means of the posterior means over the
training split, times --direction_scale). --guidance=w > 0 pushes each step of a
transfer away from the source's own code, and of a labelled prior sample away
from another label (textvae/control.py).
Inputs are split on whitespace (give them tokenised as the corpus is); words not
in the vocabulary become <unk> and are reported on stderr.
"""

from __future__ import annotations

import sys

from absl import app
from absl import flags
from absl import logging
import jax
import numpy as np

from textvae import config_checks
from textvae import control
from textvae import decoding
from textvae import errors
from textvae import restore

FLAGS = flags.FLAGS


def define_flags():
  """The CLI's flags, defined only when it runs as a program (so that tests can
  import several CLIs into one process)."""
  flags.DEFINE_string("workdir", None, "A textvae training workdir.")
  flags.DEFINE_enum("mode", "sample", ["sample", "reconstruct", "interpolate", "transfer"],
                            "What to generate.")
  flags.DEFINE_integer("num", 10, "sample: sentences; reconstruct: validation "
                              "sentences when no --inputs; interpolate: points on the path.")
  flags.DEFINE_enum("strategy", "greedy", list(decoding.STRATEGIES),
                                "Decoding strategy.")
  flags.DEFINE_float("temperature", 1.0, "Softmax temperature (sample, top_k, "
                                    "top_p).")
  flags.DEFINE_integer("top_k", 10, "k of top-k sampling.")
  flags.DEFINE_float("top_p", 0.9, "p of nucleus (top-p) sampling.")
  flags.DEFINE_integer("beam_size", 4, "Beams of beam search.")
  flags.DEFINE_float("length_penalty", 1.0, "Beam score = log p / length ** "
                                       "length_penalty (0: no normalisation).")
  flags.DEFINE_integer("max_length", None, "Most tokens per output, </s> "
                                     "included (default: config.data.max_length).")
  flags.DEFINE_string("inputs", None, "Input sentences separated by '|'.")
  flags.DEFINE_enum("posterior", "mean", ["mean", "sample"],
                                 "reconstruct from the posterior mean or one sample.")
  flags.DEFINE_integer("seed", 0, "Seed of z and of the sampling strategies.")
  flags.DEFINE_integer("step", None, "Checkpoint step (default: the best validation "
                       "checkpoint, workdir/best, else the latest).")
  flags.DEFINE_string("source_dir", None, "Override config.data.source_dir "
                                    "(default inputs come from the validation split).")
  flags.DEFINE_string("label", None, "sample/transfer: the label to generate (its name).")
  flags.DEFINE_string("input_labels", None, "The --inputs' own labels, separated by '|' "
                      "(one for all inputs, or one per input).")
  flags.DEFINE_string("label_feature", None, "An unconditional VAE: the corpus's label "
                      "feature to control (e.g. sentiment); a conditional VAE's is its own.")
  flags.DEFINE_float("direction_scale", 1.0, "An unconditional VAE: multiple of the "
                     "latent direction added to z.")
  flags.DEFINE_float("guidance", 0.0, "transfer, sample --label: weight w of the guidance "
                     "away from the source's own code / another label (0: none).")
  flags.mark_flag_as_required("workdir")


def encode_inputs(vocab, sentences, max_length: int):
  """(tokens [B, T], warnings): each sentence cut to `max_length` tokens, </s>
  included (the length the model was trained on); the warnings name the
  words mapped to <unk> and how many sentences were cut."""
  rows, warnings, cut = [], [], 0
  for s in sentences:
    ids = vocab.encode(s)
    if len(ids) > max_length:
      ids = np.concatenate([ids[:max_length - 1], ids[-1:]])
      cut += 1
    rows.append(ids)
    words = vocab.unknown_words(s)
    if words:
      warnings.append(f"unknown words mapped to <unk>: {' '.join(words)} (in: {s})")
  if cut:
    warnings.append(f"{cut} of {len(sentences)} input sentences were longer than "
                    f"config.data.max_length={max_length} tokens (</s> included) and were "
                    "cut to it")
  return decoding.pad_batch(rows), warnings


def validation_sentences(trained, num: int, source_dir=None) -> list[str]:
  from textvae.data import sources  # pylint: disable=g-import-not-at-top
  data_config = trained.config.data
  if source_dir is not None:
    data_config.source_dir = source_dir
  return sources.load_splits(data_config, splits=("valid",))["valid"].sentences[:num]


def _mode_inputs(trained, mode: str, num: int, inputs):
  """`encode_inputs` of the sentences a reconstruct/interpolate/transfer mode
  starts from, after interpolation's own checks (2 sentences, --num >= 2)."""
  if mode == "interpolate" and len(inputs) != 2:
    raise errors.ConfigError(f"--mode=interpolate takes exactly 2 sentences in --inputs, "
                             f"got {len(inputs)}")
  if mode == "interpolate":
    config_checks.check("--num", num, config_checks.integer(2))  # both endpoints
  return encode_inputs(trained.vocab, inputs, trained.config.data.max_length)


def run(trained, mode: str, *, num: int = 10, inputs=None, seed: int = 0,
        max_length: int | None = None, posterior: str = "mean", source_dir=None,
        label=None, input_labels=None, label_feature=None, direction_scale: float = 1.0,
        guidance: float = 0.0, **generate_kwargs) -> tuple[list[str], list[str]]:
  """(output lines, warnings) of one `mode`; the CLI prints them."""
  model, variables, vocab = trained.model, trained.variables, trained.vocab
  max_length = max_length or trained.config.data.max_length
  key = jax.random.key(seed)
  warnings = []
  if guidance and not (mode == "transfer" or (mode == "sample" and label is not None)):
    raise errors.ConfigError(f"--guidance is for --mode=transfer and --mode=sample with "
                             f"--label, not --mode={mode}")
  if label is not None or mode == "transfer" or decoding.num_labels(model):
    return run_labelled(trained, mode, num=num, inputs=inputs, key=key,
                        max_length=max_length, posterior=posterior, source_dir=source_dir,
                        label=label, input_labels=input_labels, label_feature=label_feature,
                        direction_scale=direction_scale, guidance=guidance,
                        **generate_kwargs)
  if mode == "sample":
    if inputs:
      warnings.append("--inputs is ignored in --mode=sample")
    _, tokens = decoding.prior_sample(model, variables, key, num, max_length=max_length,
                                      **generate_kwargs)
    return [vocab.decode(t) for t in np.asarray(tokens)], warnings
  if not decoding.latent_dim(model):
    raise errors.ConfigError(f"--mode={mode} needs a VAE; {trained.workdir} holds a "
                             "language model (latent_dim 0): use --mode=sample")
  if inputs is None:
    inputs = validation_sentences(trained, num if mode == "reconstruct" else 2, source_dir)
  tokens, input_warnings = _mode_inputs(trained, mode, num, inputs)
  warnings += input_warnings
  if mode == "reconstruct":
    _, out = decoding.reconstruct(model, variables, tokens, key, max_length=max_length,
                                  use_mean=posterior == "mean", **generate_kwargs)
  else:
    _, out = decoding.interpolate(model, variables, tokens, key, num_steps=num,
                                  max_length=max_length, **generate_kwargs)
  return [vocab.decode(t) for t in np.asarray(out)], warnings


def run_labelled(trained, mode: str, *, num: int, inputs, key, max_length: int,
                 posterior: str, source_dir, label, input_labels, label_feature,
                 direction_scale: float, guidance: float = 0.0,
                 **generate_kwargs) -> tuple[list[str], list[str]]:
  """`run` with labels: every mode of a conditional VAE, and sample/transfer
  of a label along an unconditional VAE's latent direction."""
  model, variables, vocab = trained.model, trained.variables, trained.vocab
  warnings = []
  if not decoding.latent_dim(model):
    raise errors.ConfigError(f"--label needs a VAE; {trained.workdir} holds a language model")
  conditional = bool(decoding.num_labels(model))
  if not conditional and mode not in ("sample", "transfer"):
    raise errors.ConfigError(f"--label with --mode={mode}: an unconditional VAE controls a "
                             "label in --mode=sample and --mode=transfer only")
  if source_dir is not None:
    trained.config.data.source_dir = source_dir
  direction = None
  if conditional:
    labels = control.control_labels(trained, label_feature, {})
  else:  # the latent direction of the training split
    labels, direction = control.direction_for(trained, label_feature, scale=direction_scale)
  target = None if label is None else labels.index(label)
  if mode in ("sample", "transfer") and target is None:
    raise errors.ConfigError(f"--mode={mode} needs --label, one of: "
                             f"{', '.join(labels.names)}")
  if mode == "sample":
    if inputs:
      warnings.append("--inputs is ignored in --mode=sample")
    tokens = control.sample(model, variables, key, num, target, max_length=max_length,
                            direction=direction, guidance=guidance, **generate_kwargs)
    return [vocab.decode(t) for t in tokens], warnings
  if inputs is None:
    sentences, values = control.labelled_split(trained, labels, "valid")
    keep = [i for i in range(len(sentences)) if mode != "transfer" or values[i] != target]
    keep = keep[:2 if mode == "interpolate" else num]
    inputs, sources = [sentences[i] for i in keep], values[keep]
    if input_labels is not None:
      warnings.append("--input_labels is ignored without --inputs (the validation "
                      "split's labels are used)")
  else:
    if input_labels is None:
      raise errors.ConfigError(f"--mode={mode} with --inputs needs their own labels: "
                               f"--input_labels (one of {', '.join(labels.names)} for all "
                               "inputs, or one per input separated by '|')")
    given = [s.strip() for s in input_labels.split("|")]
    if len(given) not in (1, len(inputs)):
      raise errors.ConfigError(f"--input_labels has {len(given)} labels for {len(inputs)} "
                               "inputs: give one for all, or one per input")
    sources = np.broadcast_to(labels.indices(given), (len(inputs),))
  tokens, input_warnings = _mode_inputs(trained, mode, num, inputs)
  warnings += input_warnings
  if mode == "transfer":
    out = control.transfer(model, variables, tokens, sources, target, key, max_length=max_length,
                           direction=direction, guidance=guidance, **generate_kwargs)
  elif mode == "reconstruct":
    _, out = decoding.reconstruct(model, variables, tokens, key, max_length=max_length,
                                  use_mean=posterior == "mean", labels=sources,
                                  target_labels=target, **generate_kwargs)
  else:
    _, out = decoding.interpolate(model, variables, tokens, key, num_steps=num,
                                  max_length=max_length, labels=sources,
                                  target_label=target, **generate_kwargs)
  return [vocab.decode(t) for t in np.asarray(out)], warnings


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  config_checks.check("--num", FLAGS.num, config_checks.integer(1))
  inputs = None
  if FLAGS.inputs is not None:
    inputs = [s.strip() for s in FLAGS.inputs.split("|")]
    if not all(inputs):
      raise errors.ConfigError(f"--inputs={FLAGS.inputs!r} holds an empty sentence")
  trained = restore.load(FLAGS.workdir, FLAGS.step)
  logging.info("Loaded %s at step %d (%s)", trained.workdir, trained.step,
               trained.config.model.kind)
  lines, warnings = run(
      trained, FLAGS.mode, num=FLAGS.num, inputs=inputs, seed=FLAGS.seed,
      max_length=FLAGS.max_length, posterior=FLAGS.posterior, source_dir=FLAGS.source_dir,
      label=FLAGS.label, input_labels=FLAGS.input_labels, label_feature=FLAGS.label_feature,
      direction_scale=FLAGS.direction_scale, guidance=FLAGS.guidance, strategy=FLAGS.strategy,
      temperature=FLAGS.temperature, top_k=FLAGS.top_k, top_p=FLAGS.top_p,
      beam_size=FLAGS.beam_size, length_penalty=FLAGS.length_penalty)
  for w in warnings:
    logging.warning("%s", w)
    sys.stderr.write(f"warning: {w}\n")
  sys.stderr.flush()
  sys.stdout.write("".join(line + "\n" for line in lines))
  sys.stdout.flush()


if __name__ == "__main__":
  define_flags()
  app.run(errors.cli_main(main))
