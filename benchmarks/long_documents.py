"""Issue 14, must-show 4: a corpus of 200 distinct lengths trains, evaluates with
IW-NLL and compiles a bounded number of programs; its padding waste and
tokens/s beside PTB's.

  nice -n 0 taskset -c 0 python -m benchmarks.long_documents --config=configs/ptb.py \\
      --ptb_dir=../shared/data/ptb --out_dir=/tmp/long_documents \\
      --json_out=results/reliability/long_documents.json

1. Builds a corpus of documents from PTB (`--ptb_dir`, ptb.{train,valid,test}.txt):
   each split's words, in order, are cut into documents of 1..`--max_words` words
   (the lengths in turn from a seeded permutation of 1..max_words, again and again;
   the words left after the last whole document are dropped), written one
   document per line to OUT/corpus/{train,valid,test}.txt. Every length from 1 to
   max_words words occurs in train (checked): with </s>, 2..max_words+1 tokens,
   i.e. `--max_words` distinct training lengths; `--max_length` (default
   max_words+1 = 201) truncates nothing.
2. Trains `--config` on it through `textvae.train.train_and_evaluate` (what
   `python -m textvae.main` calls) with config.data.name=text_files for
   `--steps` steps in OUT/docs (validation, checkpoint and the end-of-run test
   metrics at the last step only), then `textvae.evaluate.evaluate_workdir` on
   the test split with `--num_importance_samples` (IW-NLL; reconstruction BLEU off).
3. The same config trains `--ptb_steps` steps on PTB itself (config.data.name=ptb,
   the sentences as they are) in OUT/ptb, in the same process, right after.

Measured for both: every XLA compilation (jax.monitoring's
/jax/core/compile/backend_compile_duration events, by function name and phase),
the padded batch lengths of the steps trained (replayed from the batch plan,
which is a pure function of the seed) and of the evaluation batches, the padding
waste (`pipeline.padding_summary`, the figure the training log gives, and over
the steps actually trained) and tokens/s: real tokens (</s> counted) per second
of training over the logged windows of `--log_every` steps in which no batch of
a new length appeared (no compilation), from the training log's
train/tokens_per_s. Prints one JSON object as the last line and writes it to
`--json_out` when given.
"""

import json
import logging as pylogging
import os
import resource
import sys
import time

from absl import app
from absl import flags
from absl import logging
import jax
import ml_collections
import numpy as np
from ml_collections import config_flags

from textvae import evaluate as evaluate_lib
from textvae import train
from textvae import workdir as workdir_lib
from textvae.data import pipeline
from textvae.data import sources
from textvae.data import vocab as vocab_lib

config_flags.DEFINE_config_file("config", None, "Training config (configs/ptb.py).",
                                lock_config=True)
_PTB_DIR = flags.DEFINE_string("ptb_dir", None, "Folder with ptb.{train,valid,test}.txt.")
_OUT_DIR = flags.DEFINE_string("out_dir", None, "Corpus, TFDS data and both workdirs "
                               "(OUT/corpus, OUT/tfds, OUT/docs, OUT/ptb); must not hold "
                               "earlier workdirs.")
_JSON_OUT = flags.DEFINE_string("json_out", None, "Also write the result JSON here.")
_MAX_WORDS = flags.DEFINE_integer("max_words", 200, "Documents of 1..max_words words.")
_MAX_LENGTH = flags.DEFINE_integer("max_length", None, "config.data.max_length "
                                   "(default max_words + 1: no document truncated).")
_STEPS = flags.DEFINE_integer("steps", 2000, "Training steps on the documents.")
_DOCS = flags.DEFINE_bool("docs", True, "Run the documents part (--nodocs: PTB only).")
_PTB_STEPS = flags.DEFINE_integer("ptb_steps", 500, "Training steps on PTB (0: skip).")
_LOG_EVERY = flags.DEFINE_integer("log_every", 20, "config.train.log_every_steps: the "
                                  "windows tokens/s is measured over.")
_K = flags.DEFINE_integer("num_importance_samples", 20, "K of the test IW-NLL "
                          "(0: skip textvae.evaluate).")
_EVAL_BATCH = flags.DEFINE_integer("eval_batch_size", 32, "textvae.evaluate --batch_size.")
_CHUNK = flags.DEFINE_integer("chunk_size", 10, "textvae.evaluate --chunk_size.")
_PTB_EVAL = flags.DEFINE_integer(
    "ptb_eval_sentences", 256, "The PTB run's valid and test splits: their first N "
    "sentences (its end-of-run evaluation compiles once per eval batch length; only its "
    "training is measured). 0: the whole splits (config.data.name=ptb).")
_CORPUS_SEED = flags.DEFINE_integer("corpus_seed", 0, "Seed of the document lengths.")

COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"
SPLITS = ("train", "valid", "test")


def build_documents(ptb_dir, out_dir, max_words, seed):
  """OUT/{train,valid,test}.txt of documents cut from each PTB split's words;
  returns per split the number of documents and their word counts."""
  os.makedirs(out_dir, exist_ok=True)
  stats = {}
  for i, split in enumerate(SPLITS):
    with open(os.path.join(ptb_dir, f"ptb.{split}.txt"), encoding="utf-8") as f:
      words = f.read().split()
    rng = np.random.default_rng([seed, i])
    docs, start, order = [], 0, []
    while True:
      if not order:
        order = list(rng.permutation(max_words) + 1)
      n = int(order.pop(0))
      if start + n > len(words):
        break
      docs.append(words[start:start + n])
      start += n
    with open(os.path.join(out_dir, f"{split}.txt"), "w", encoding="utf-8") as f:
      for d in docs:
        f.write(" ".join(d) + "\n")
    lengths = np.asarray([len(d) for d in docs])
    stats[split] = {"documents": len(docs), "words": int(lengths.sum()),
                    "words_dropped": len(words) - start,
                    "distinct_word_counts": int(len(np.unique(lengths))),
                    "mean_words": float(lengths.mean())}
  missing = set(range(1, max_words + 1)) - set(
      len(l.split()) for l in open(os.path.join(out_dir, "train.txt"), encoding="utf-8"))
  if missing:
    raise ValueError(f"lengths missing from train: {sorted(missing)[:10]}")
  return stats


class CompileLog:
  """Every backend compilation, tagged with the current phase."""

  def __init__(self):
    self.phase = "setup"
    self.events = []

  def __call__(self, event, duration, **kwargs):
    if event == COMPILE_EVENT:
      self.events.append({"phase": self.phase, "fun_name": str(kwargs.get("fun_name")),
                          "seconds": float(duration), "time": time.time()})

  def summary(self, phase):
    ev = [e for e in self.events if e["phase"] == phase]
    by_name = {}
    for e in ev:
      by_name[e["fun_name"]] = by_name.get(e["fun_name"], 0) + 1
    return {"programs": len(ev), "compile_seconds": sum(e["seconds"] for e in ev),
            "by_name": dict(sorted(by_name.items(), key=lambda kv: -kv[1]))}


class LogCapture(pylogging.Handler):
  """Keeps the training log's padding line and final metrics line."""

  def __init__(self):
    super().__init__()
    self.lines = []

  def emit(self, record):
    msg = record.getMessage()
    if msg.startswith(("Padding:", "Final metrics:", "Model ")):
      self.lines.append(msg)


def encoded_splits(config, workdir, names):
  """The splits as training encoded them (the workdir's vocabulary)."""
  vocab = vocab_lib.Vocabulary.load(workdir_lib.vocab_path(workdir))
  corpora = sources.load_splits(config.data, splits=names)
  return {n: pipeline.encode(n, c.sentences, vocab, config.data.max_length)
          for n, c in corpora.items()}


def plan_steps(config, train_split, buckets, steps_trained):
  """Per step trained: the padded length and the real tokens of its batch; and
  the first step of each padded length."""
  data = config.data
  plan = pipeline.TrainBatchPlan(train_split.lengths, config.train.batch_size, config.seed,
                                 data.pool_batches)
  padded, real, first_seen = [], [], {}
  for step in range(1, steps_trained + 1):
    lengths = train_split.lengths[plan[step - 1]]
    longest = -(-int(lengths.max()) // data.pad_multiple) * data.pad_multiple
    t = pipeline.bucket_for(longest, buckets)
    padded.append(t)
    real.append(int(lengths.sum()))
    first_seen.setdefault(t, step)
  return padded, real, first_seen


def logged_windows(rows, real, first_seen):
  """The training log's windows ({"step", "train/tokens_per_s"} rows): steps,
  real tokens, seconds, and whether a batch of a new length was in it."""
  new_length_steps = set(first_seen.values())
  windows, prev = [], 0
  for r in rows:
    if "train/tokens_per_s" not in r:
      continue
    s = int(r["step"])
    toks = sum(real[prev:s])
    windows.append({"end_step": s, "steps": s - prev, "tokens": toks,
                    "seconds": toks / r["train/tokens_per_s"],
                    "new_lengths": any(prev < x <= s for x in new_length_steps)})
    prev = s
  return windows


def replay(config, splits, steps_trained, log_every, metrics_path, eval_splits=True):
  """The padded length and real tokens of every step trained (the batch plan
  replayed), the padding over those steps, and tokens/s over the logged windows
  in which no batch of a new length appeared."""
  data = config.data
  bs = config.train.batch_size
  train_split = splits["train"]
  buckets = pipeline.batch_buckets(data, train_split.lengths)
  padded, real, first_seen = plan_steps(config, train_split, buckets, steps_trained)
  rows = [json.loads(l) for l in open(metrics_path, encoding="utf-8")]
  windows = logged_windows(rows, real, first_seen)
  new_length_steps = set(first_seen.values())
  steady = [w for w in windows if not w["new_lengths"]]
  all_s = sum(w["seconds"] for w in windows)
  steady_s = sum(w["seconds"] for w in steady)
  eval_lengths = {}
  for n, split in splits.items():
    if n == "train" or not eval_splits:
      continue
    for size in sorted({config.train.eval_batch_size, _EVAL_BATCH.value}):
      key = f"{n}@batch{size}"
      eval_lengths[key] = sorted({int(b["tokens_BxT"].shape[1]) for b in pipeline.eval_batches(
          split, global_batch_size=size, pad_multiple=data.pad_multiple, buckets=buckets)})
  return {
      "buckets": list(buckets),
      "distinct_training_lengths": int(len(np.unique(train_split.lengths))),
      "training_sentences": len(train_split),
      "mean_training_length": float(train_split.lengths.mean()),
      "padding_epoch0": pipeline.padding_summary(
          train_split.lengths, buckets, batch_size=bs, seed=config.seed,
          pool_batches=data.pool_batches, pad_multiple=data.pad_multiple),
      # The same epoch's padding had config.data.max_buckets been another value.
      "padding_epoch0_by_max_buckets": {
          k: pipeline.padding_summary(
              train_split.lengths, pipeline.bucket_lengths(
                  train_split.lengths, k, max_length=data.max_length,
                  pad_multiple=data.pad_multiple),
              batch_size=bs, seed=config.seed, pool_batches=data.pool_batches,
              pad_multiple=data.pad_multiple)["waste"]
          for k in (16, 24, 32, 48, 64, 96, 128, None)},
      "padding_steps_trained": {
          "real_tokens": sum(real), "padded_tokens": bs * sum(padded),
          "waste": bs * sum(padded) / sum(real) - 1.0},
      "train_batch_lengths_seen": len(first_seen),
      "eval_batch_lengths": {k: len(v) for k, v in eval_lengths.items()},
      "last_new_length_at_step": max(new_length_steps),
      "tokens_per_s_steady": sum(w["tokens"] for w in steady) / steady_s if steady_s else None,
      "steady_windows": len(steady), "steady_steps": sum(w["steps"] for w in steady),
      "steady_seconds": steady_s,
      "tokens_per_s_all_windows": sum(real) / all_s if all_s else None,
      "train_loop_seconds": all_s,
      "mean_padded_length": float(np.mean(padded)),
      "mean_step_ms_steady": 1e3 * steady_s / max(1, sum(w["steps"] for w in steady)),
      "steady_window_tokens_per_s": {
          q: float(np.percentile([w["tokens"] / w["seconds"] for w in steady], p))
          for q, p in (("min", 0), ("median", 50), ("max", 100))} if steady else None,
      "windows": windows,
  }


def configure(base, *, name, source_dir, tfds_dir, max_length, steps, log_every):
  config = ml_collections.ConfigDict(base.to_dict())
  config.data.name = name
  config.data.source_dir = source_dir
  config.data.tfds_data_dir = tfds_dir
  if max_length:
    config.data.max_length = max_length
  config.train.num_steps = steps
  config.train.log_every_steps = log_every
  config.train.eval_every_steps = steps
  config.train.checkpoint_every_steps = steps
  return config


def run(config, workdir, compiles, phase, capture):
  if os.path.exists(workdir):
    raise FileExistsError(f"{workdir} exists: give a fresh --out_dir")
  compiles.phase = phase
  start = time.time()
  first = len(capture.lines)
  results = train.train_and_evaluate(config, workdir)
  return {"wall_seconds": time.time() - start, "log": capture.lines[first:],
          "final": {k: results[k] for k in ("step", "valid", "test") if k in results}}


def main(argv):
  del argv
  base = flags.FLAGS.config
  out = os.path.abspath(_OUT_DIR.value)
  ptb_dir = os.path.abspath(_PTB_DIR.value)
  max_length = _MAX_LENGTH.value or _MAX_WORDS.value + 1
  t0 = time.time()
  compiles = CompileLog()
  jax.monitoring.register_event_duration_secs_listener(compiles)
  capture = LogCapture()
  pylogging.getLogger("absl").addHandler(capture)

  result = {}

  def write(result):
    result.update(
        argv=sys.argv, wall_seconds=time.time() - t0,
        peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        cpu_affinity=sorted(os.sched_getaffinity(0)), devices=jax.device_count(),
        platform=jax.devices()[0].platform, jax=jax.__version__,
        compile_events=compiles.events)
    if _JSON_OUT.value:  # after each part: a later failure keeps the earlier ones
      os.makedirs(os.path.dirname(os.path.abspath(_JSON_OUT.value)), exist_ok=True)
      with open(_JSON_OUT.value, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=1)

  if _DOCS.value:
    corpus_dir = os.path.join(out, "corpus")
    corpus = build_documents(ptb_dir, corpus_dir, _MAX_WORDS.value, _CORPUS_SEED.value)
    logging.info("Documents: %s", json.dumps(corpus))
    docs_config = configure(base, name="text_files", source_dir=corpus_dir,
                            tfds_dir=os.path.join(out, "tfds"), max_length=max_length,
                            steps=_STEPS.value, log_every=_LOG_EVERY.value)
    docs_dir = os.path.join(out, "docs")
    docs = run(docs_config, docs_dir, compiles, "docs_train", capture)
    docs["config"] = json.loads(docs_config.to_json())
    docs["compiled"] = {"docs_train": compiles.summary("docs_train")}
    result.update(corpus=corpus, docs=docs)
    write(result)
    if _K.value:
      compiles.phase = "docs_evaluate"
      start = time.time()
      ev = evaluate_lib.evaluate_workdir(docs_dir, split="test", num_samples=_K.value,
                                         batch_size=_EVAL_BATCH.value, chunk_size=_CHUNK.value,
                                         reconstruction=False, write=True)
      docs["evaluate_test"] = {k: ev[k] for k in evaluate_lib.KEYS + ("step", "checkpoint")}
      docs["evaluate_wall_seconds"] = time.time() - start
    compiles.phase = "docs_replay"
    splits = encoded_splits(docs_config, docs_dir, SPLITS)
    docs.update(replay(docs_config, splits, _STEPS.value, _LOG_EVERY.value,
                       workdir_lib.metrics_path(docs_dir)))
    docs["compiled"] = {p: compiles.summary(p) for p in ("docs_train", "docs_evaluate")}
    result.update(corpus=corpus, docs=docs)
    write(result)

  if _PTB_STEPS.value:
    jax.clear_caches()  # the documents' programs are not needed any more
    name, source = "ptb", ptb_dir
    if _PTB_EVAL.value:  # train: ptb.train.txt as it is
      name, source = "text_files", os.path.join(out, "ptb_corpus")
      os.makedirs(source, exist_ok=True)
      for split in SPLITS:
        with open(os.path.join(ptb_dir, f"ptb.{split}.txt"), encoding="utf-8") as f:
          lines = f.readlines()
        with open(os.path.join(source, f"{split}.txt"), "w", encoding="utf-8") as f:
          f.writelines(lines if split == "train" else lines[:_PTB_EVAL.value])
    ptb_config = configure(base, name=name, source_dir=source,
                           tfds_dir=os.path.join(out, "tfds"), max_length=None,
                           steps=_PTB_STEPS.value, log_every=_LOG_EVERY.value)
    ptb_dir_w = os.path.join(out, "ptb")
    ptb = run(ptb_config, ptb_dir_w, compiles, "ptb_train", capture)
    ptb["config"] = json.loads(ptb_config.to_json())
    compiles.phase = "ptb_replay"
    splits = encoded_splits(ptb_config, ptb_dir_w, SPLITS)
    ptb.update(replay(ptb_config, splits, _PTB_STEPS.value, _LOG_EVERY.value,
                      workdir_lib.metrics_path(ptb_dir_w)))
    ptb["compiled"] = {"ptb_train": compiles.summary("ptb_train")}
    result["ptb"] = ptb
    write(result)

  write(result)
  sys.stdout.write(json.dumps({k: v for k, v in result.items() if k != "compile_events"}) + "\n")


if __name__ == "__main__":
  flags.mark_flags_as_required(["config", "ptb_dir", "out_dir"])
  app.run(main)
