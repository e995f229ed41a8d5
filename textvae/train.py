"""The training loop: `train_and_evaluate(config, workdir)`.

init or resume -> a loop of pmapped steps with periodic logging, validation and
checkpoints -> the final validation and test metrics, prior samples and
reconstructions. What a collapse remedy or a learning-rate schedule adds to the
loop is a hook (textvae/hooks/); the loop itself knows none of them.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from typing import NamedTuple

from absl import logging
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from textvae import checkpoints
from textvae import config_checks
from textvae import decoding
from textvae import early_stopping
from textvae import errors
from textvae import evaluation
from textvae import fileio
from textvae import hardware
from textvae import hooks as hooks_lib
from textvae import host_limits
from textvae import lock
from textvae import metric_writers as metric_writers_lib
from textvae import periodic_actions
from textvae import models
from textvae import objectives
from textvae import optim
from textvae import parallel
from textvae import steps
from textvae import workdir as workdir_lib
from textvae.data import pipeline
from textvae.data import prepared

NAN_MARKER = "nonfinite_stop.json"


class NonFiniteError(FloatingPointError):
  """A training metric became NaN/Inf; the last good checkpoint is kept."""


class Keys(NamedTuple):
  """The root key's named streams (docs/design.md, "PRNG streams")."""
  init: jax.Array
  train: jax.Array
  eval: jax.Array
  sample: jax.Array


def _flat_hparams(config):
  """The config as TensorBoard hparams: dotted keys, non-scalar values as text."""
  return {k: v if isinstance(v, (int, float, str, bool)) else str(v)
          for k, v in workdir_lib.flatten(json.loads(config.to_json())).items()}


class TrainLog:
  """The training metrics of the steps since the last write: fetched from the
  devices once per window (not per step), checked to be finite, averaged and
  written with the throughput of the window."""

  def __init__(self, writer, workdir: str):
    self.writer, self.workdir = writer, workdir
    self.window, self.start = [], time.time()

  def append(self, metrics):
    self.window.append(metrics)

  def restart_clock(self):
    self.start = time.time()

  def write(self, step: int, latest_checkpoint, extra: dict):
    fetched = _fetch_window(self.window, step - len(self.window) + 1, latest_checkpoint,
                            self.workdir)
    scalars, sums = _train_scalars(fetched)
    scalars.update(extra)
    scalars["train/tokens_per_s"] = sums["num_tokens"] / (time.time() - self.start)
    self.writer.write_scalars(step, scalars)
    self.window, self.start = [], time.time()


def _fetch_window(metric_list, first_step, latest_good, workdir):
  """The window's per-step metrics on the host; stops at the first step whose
  metrics are not finite."""
  fetched = jax.device_get([steps.unreplicate(m) for m in metric_list])
  for offset, m in enumerate(fetched):
    bad = sorted(k for k, v in m.items() if not np.all(np.isfinite(v)))
    if bad:
      step = first_step + offset
      info = {"step": step, "metric": bad[0], "value": str(m[bad[0]]),
              "last_good_checkpoint": latest_good}
      if jax.process_index() == 0:
        fileio.write_json(os.path.join(workdir, NAN_MARKER), info)
      resume = (f"The last good checkpoint is step {latest_good} in {workdir}"
                if latest_good is not None else
                f"No checkpoint was saved yet in {workdir}: a rerun starts from scratch")
      raise NonFiniteError(
          f"non-finite training metric {bad[0]}={m[bad[0]]} at step {step}; stopped "
          f"without saving. {resume}")
  return fetched


def _train_scalars(fetched):
  """Averages of a window of per-step metrics."""
  sums = {k: sum(float(m[k]) for m in fetched)
          for k in ("num_sentences", "num_tokens", "recon", "kl")}
  out = {f"train/{k}": v for k, v in objectives.summarise(sums).items()
         if k not in ("num_sentences", "num_tokens")}
  for k in ("loss", "kl_weight", "grad_norm"):
    out[f"train/{k}"] = float(np.mean([float(m[k]) for m in fetched]))
  return out, sums


def _warn_if_stopped_nonfinite(workdir):
  marker = os.path.join(workdir, NAN_MARKER)
  if os.path.exists(marker):
    with open(marker, encoding="utf-8") as f:
      info = json.load(f)
    good = info["last_good_checkpoint"]
    logging.warning("The previous run stopped at step %s on non-finite %s=%s; %s.",
                    info["step"], info["metric"], info["value"],
                    f"resuming from the last good checkpoint (step {good})" if good is not None
                    else "it had saved no checkpoint: starting from scratch")


def _clear_nonfinite_marker(workdir):
  marker = os.path.join(workdir, NAN_MARKER)
  if jax.process_index() == 0 and os.path.exists(marker):
    os.remove(marker)


def _resume(new_state, template, workdir, ckpt, best_ckpt, tracker, train_iter, hooks,
            vocab_size):
  """The state of the newest checkpoint that restores completely (unreadable
  newer ones are moved aside) into `template` (steps.abstract_train_state),
  with the tracker, the iterator and the hooks restored; `new_state()` when
  there is none. Drops the metrics.jsonl rows a killed run logged past the
  resumed step."""
  restored = checkpoints.restore_newest(ckpt, lambda s: ckpt.restore(s, template),
                                        move_aside=True)
  if restored is None:
    state = new_state()
    logging.info("Starting from scratch in %s", workdir)
  else:
    latest, (state, data_state, meta) = restored
    if "early_stopping" in meta:
      tracker.restore(meta["early_stopping"])
    else:  # a workdir started before the tracker: its validation history
      tracker.replay(workdir_lib.metrics_path(workdir), int(state.step))
    _sync_best_checkpoint(tracker, ckpt, best_ckpt, state)
    train_iter.set_state(data_state)
    hooks.restore(meta)
    logging.info("Resuming from step %d (checkpoint %s)", int(state.step),
                 os.path.join(ckpt.directory, str(latest)))
    if meta.get("vocab_size") != vocab_size:
      raise errors.WorkdirError(f"checkpoint {latest} has vocab_size "
                                f"{meta.get('vocab_size')}, the workdir's vocab.json "
                                f"{vocab_size}")
  if jax.process_index() == 0:
    workdir_lib.trim_metrics(workdir, int(state.step))
  return state


def _stop_reason(tracker, hooks, state) -> str | None:
  if tracker.stopped:
    return (f"early stopping, validation {tracker.metric} has not improved for "
            f"{tracker.evals_since_best} evaluations (best {tracker.best_value:.4f} at step "
            f"{tracker.best_step})")
  return hooks.stop_reason(state)


def _best_variables(best_ckpt, best_step, state):
  """The model variables of the best checkpoint (host-local, like `state`'s)."""
  best_state, _, _ = best_ckpt.restore(best_step, steps.local_state(state))
  return best_state.variables()


def _sync_best_checkpoint(tracker, ckpt, best_ckpt, state):
  """On resume: `best/` holds exactly the tracker's best step. A best checkpoint
  from after the resumed step (the killed run got further) is dropped, since the
  resumed run will reach and save it again; a missing one is copied from the
  regular checkpoints when they still hold it."""
  for step in best_ckpt.all_steps():
    if step != tracker.best_step:
      best_ckpt.delete(step)
  if tracker.best_step is None or tracker.best_step in best_ckpt.all_steps():
    return
  if tracker.best_step in ckpt.all_steps():
    best_state, data_state, meta = ckpt.restore(tracker.best_step, state)
    best_ckpt.save(tracker.best_step, best_state, data_state,
                   dict(meta, early_stopping=tracker.to_meta()))
    best_ckpt.wait_until_finished()
    logging.info("Best checkpoint (step %d) copied to %s", tracker.best_step,
                 best_ckpt.directory)
  else:
    logging.warning("The best validation step %d has no checkpoint left; the final "
                    "test metrics will use the last model", tracker.best_step)


def write_samples(model, params, vocab, splits, config, sample_key, workdir, labels=None,
                  buckets=None):
  """Prior samples (greedy from z ~ N(0, I)) and reconstructions (greedy from the
  posterior mean) of the first validation sentences, to samples.txt and the log.
  A conditional VAE's (`labels`): z ~ p(z|y) with y cycling through the labels,
  each line prefixed by its label."""
  n = config.train.num_samples
  max_len = config.data.max_length
  lines = []
  sample_labels = None if labels is None else np.arange(n) % len(labels)
  prefix = lambda y: "" if labels is None else f"[{labels.names[int(y)]}] "
  if labels is not None:
    z, tokens = decoding.prior_sample(model, params, sample_key, n, max_length=max_len,
                                      labels=sample_labels)
    lines.append("# prior samples, z ~ p(z|y), y cycling through the labels, greedy")
  else:
    if model.latent_dim:
      z = jax.random.normal(sample_key, (n, model.latent_dim))
      lines.append("# prior samples, z ~ N(0, I), greedy")
    else:
      z = jnp.zeros((n, 0))
      lines.append("# samples from the language model (temperature 1)")
    tokens = decoding.decode(model, params, z, sample_key, max_length=max_len,
                             temperature=0.0 if model.latent_dim else 1.0)
  lines += [prefix(y) + vocab.decode(t) for t, y in
            zip(np.asarray(tokens), sample_labels if labels is not None else [0] * n)]
  if model.latent_dim:
    lines.append("# reconstructions of validation sentences (posterior mean, greedy)")
    valid = splits["valid"]
    m = min(n, len(valid))
    valid_labels = None
    if labels is not None:
      valid_labels = pipeline.split_labels(valid, labels.feature)[:m]
    batch = pipeline.collate([valid.tokens[i] for i in range(m)], np.ones(m), buckets=buckets)
    mu = decoding.posterior_mean(model, params, batch["tokens_BxT"], valid_labels)
    recon = decoding.decode(model, params, mu, sample_key, max_length=max_len,
                            labels=valid_labels)
    for i, (src, out) in enumerate(zip(batch["tokens_BxT"], np.asarray(recon))):
      y = 0 if valid_labels is None else valid_labels[i]
      lines.append(f"  in: {prefix(y)}{vocab.decode(src)}")
      lines.append(f" out: {vocab.decode(out)}")
  text = "\n".join(lines) + "\n"
  if jax.process_index() == 0:
    fileio.write_atomic(os.path.join(workdir, "samples.txt"), text)
  logging.info("Samples:\n%s", text)


@dataclasses.dataclass
class Run:
  """What the loop works with besides the train state."""
  config: ml_collections.ConfigDict
  workdir: str
  data: prepared.Prepared
  model: models.TextVAE
  keys: Keys
  state: steps.TrainState      # restored (or fresh), placed for the pmapped steps
  start_step: int
  train_iter: object
  ckpt: checkpoints.Checkpointer
  best_ckpt: checkpoints.Checkpointer
  tracker: early_stopping.Tracker
  hooks: hooks_lib.Hooks
  writer: object
  log: TrainLog

  def evaluate(self, split: str, variables) -> dict:
    """IW-NLL with a small K, ELBO, KL, MI and AU: the curves show MI and AU
    over time."""
    c = self.config
    return evaluation.evaluate_split(
        self.model, steps.replicate(variables), self.data.splits[split],
        num_samples=c.train.eval_importance_samples, batch_size=c.train.eval_batch_size,
        key=self.keys.eval, pad_multiple=c.data.pad_multiple, condition=self.data.condition,
        buckets=self.data.buckets)

  def save(self, step: int, state, checkpointer) -> None:
    meta = {"step": step, "vocab_size": len(self.data.vocab),
            "config": json.loads(self.config.to_json()),
            "vocab_sha256": workdir_lib.vocab_digest(self.data.vocab.tokens),
            "early_stopping": self.tracker.to_meta(), **self.hooks.meta()}
    self.writer.flush()  # every metric up to `step` is on disk before checkpoint `step`
    checkpointer.save(step, steps.local_state(state), self.train_iter.get_state(), meta)


def _setup(config, workdir) -> Run:
  """Data, model, the state of the newest complete checkpoint (or a fresh one),
  iterators, checkpointers, early stopping, hooks and metric writers."""
  workdir_lib.check_compatible(config, workdir)
  workdir_lib.check_checkpoint(config, workdir)  # vocabulary and model vs the checkpoint
  _warn_if_stopped_nonfinite(workdir)
  if message := host_limits.low_limit_message(jax.default_backend(), host_limits.read_limit()):
    logging.warning("%s", message)
  with parallel.process_zero_first("prepare_data"):  # shared TFDS dir and vocab.json
    data = prepared.prepare(config, workdir)
  if jax.process_index() == 0:
    workdir_lib.save_config(config, workdir)
  model = models.create_model(config.model, len(data.vocab),
                              len(data.labels) if data.labels else 0)
  keys = Keys(*jax.random.split(jax.random.key(config.seed), 4))
  # A resumed run restores into the state's shapes: initialising it first
  # would be seconds of compiling, for values the checkpoint replaces.
  template = steps.abstract_train_state(model, config.train)
  logging.info("Model %s: %d parameters, vocabulary %d", config.model.kind,
               sum(x.size for x in jax.tree_util.tree_leaves(template.params)), len(data.vocab))
  make_dataset = lambda seed: data.train_dataset(batch_size=config.train.batch_size, seed=seed)
  train_iter = iter(make_dataset(config.seed))
  ckpt = checkpoints.Checkpointer(workdir, config.train.keep_checkpoints)
  best_ckpt = checkpoints.Checkpointer(workdir, 1, subdir="best")
  tracker = early_stopping.Tracker.from_config(config)
  hooks = hooks_lib.create(config, hooks_lib.Context(
      model=model, init_key=keys.init, train_key=keys.train, make_train_dataset=make_dataset,
      best_checkpointer=best_ckpt, tracker=tracker, vocab_tokens=tuple(data.vocab.tokens)))
  state = _resume(lambda: steps.create_train_state(model, keys.init, config.train), template,
                  workdir, ckpt, best_ckpt, tracker, train_iter, hooks, len(data.vocab))
  if jax.process_index() == 0:  # the results tables' hardware, even when a run moves
    logging.info("Hardware: %s", hardware.describe(hardware.record(workdir, int(state.step))))
  writer = metric_writers_lib.create_writer(workdir, just_logging=jax.process_index() > 0)
  if int(state.step) == 0:
    writer.write_hparams(_flat_hparams(config))
  return Run(config, workdir, data, model, keys, steps.place_state(state), int(state.step),
             train_iter, ckpt, best_ckpt, tracker, hooks, writer, TrainLog(writer, workdir))


def _after_validation(run: Run, step: int, state, valid: dict):
  """Logs the validation, saves a new best to workdir/best, runs the hooks."""
  run.writer.write_scalars(step, {f"valid/{k}": v for k, v in valid.items()
                                  if isinstance(v, (int, float))})
  if run.tracker.update(step, valid):
    run.save(step, state, run.best_ckpt)
    logging.info("Step %d: best validation %s so far, %.4f; saved to %s", step,
                 run.tracker.metric, run.tracker.best_value, run.best_ckpt.directory)
  state = run.hooks.after_validation(step, state, valid)
  if scalars := run.hooks.validation_scalars():
    run.writer.write_scalars(step, scalars)
  return state


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Trains `config` in `workdir`, resuming from its latest checkpoint; returns
  the final validation and test metrics."""
  # Settings first: a refused run leaves no file behind, not even the workdir.
  config_checks.check_config(config)
  parallel.check_global_batch(config.train.batch_size)
  parallel.check_global_batch(config.train.eval_batch_size, "config.train.eval_batch_size")
  workdir = os.path.abspath(workdir)
  os.makedirs(workdir, exist_ok=True)
  with lock.hold(workdir):  # one run per workdir, refused before it reads anything
    return _train_and_evaluate(config, workdir)


def _train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict:
  run = _setup(config, workdir)
  state, num_steps, last_valid = run.state, config.train.num_steps, {}
  p_train_step = steps.pmap_train_step(config.train)
  report = periodic_actions.ReportProgress(num_train_steps=num_steps, writer=run.writer)
  in_flight = parallel.DispatchBound()
  stop = _stop_reason(run.tracker, run.hooks, state)
  if stop:
    logging.info("Training already stopped: %s", stop)
  for step in range(int(steps.local_state(state).step) + 1, num_steps + 1):
    if stop:
      break
    with jax.profiler.StepTraceAnnotation("train", step_num=step):
      state = run.hooks.before_step(step, state)
      batch = parallel.shard(next(run.train_iter))
      state, metrics = (run.hooks.train_step(step, state, batch)
                        or p_train_step(state, batch, run.keys.train))
    run.log.append(metrics)
    in_flight.push(metrics)
    report(step)
    do_eval = step % config.train.eval_every_steps == 0 or step == num_steps
    do_ckpt = step % config.train.checkpoint_every_steps == 0 or step == num_steps
    if step % config.train.log_every_steps == 0 or do_eval or do_ckpt:
      run.log.write(step, run.ckpt.latest_step(), run.hooks.train_scalars())
    if do_eval:
      with report.timed("eval"):
        last_valid = run.evaluate("valid", steps.local_state(state).variables())
      state = _after_validation(run, step, state, last_valid)
      stop = _stop_reason(run.tracker, run.hooks, state)
      if stop:
        logging.info("Step %d: training stops: %s", step, stop)
    if do_ckpt or stop:
      with report.timed("checkpoint"):
        run.save(step, state, run.ckpt)
      _clear_nonfinite_marker(workdir)
    if do_eval:
      run.log.restart_clock()  # throughput excludes evaluation and saving
  return _finish(run, state, last_valid)


def _finish(run: Run, state, last_valid: dict) -> dict:
  """The final metrics (validation, and test on the model selected on
  validation), prior samples and reconstructions, in final_metrics.json and
  samples.txt; read back when a rerun had nothing left to train. Then every
  process waits for the others."""
  run.ckpt.wait_until_finished()
  run.best_ckpt.wait_until_finished()
  config, tracker, best_ckpt = run.config, run.tracker, run.best_ckpt
  path = os.path.join(run.workdir, "final_metrics.json")
  local = steps.local_state(state)
  final_step = int(local.step)
  if final_step == run.start_step and os.path.exists(path):
    logging.info("Already trained to step %d; nothing to do.", final_step)
    with open(path, encoding="utf-8") as f:
      results = json.load(f)
  else:
    results = {"step": final_step,
               "valid": last_valid or run.evaluate("valid", local.variables())}
    if (tracker.best_step is not None and tracker.best_step != final_step
        and tracker.best_step in best_ckpt.all_steps()):
      # The model selected on validation data is the one reported on test.
      best_vars = _best_variables(best_ckpt, tracker.best_step, state)
      results["best_valid"] = run.evaluate("valid", best_vars)
      results["test"] = run.evaluate("test", best_vars)
    else:
      results["test"] = run.evaluate("test", local.variables())
    results["best_step"] = tracker.best_step
    results["early_stopping"] = tracker.to_meta()
    results["lr_schedule"] = {
        "learning_rate": optim.learning_rate(config.train, local.opt_state),
        "decays": optim.num_decays(config.train, local.opt_state),
        "finished": optim.schedule_finished(config.train, local.opt_state)}
    run.writer.write_scalars(final_step, {f"test/{k}": v for k, v in results["test"].items()
                                          if isinstance(v, (int, float))})
    write_samples(run.model, local.variables(), run.data.vocab, run.data.splits, config,
                  run.keys.sample, run.workdir, run.data.labels, buckets=run.data.buckets)
    if jax.process_index() == 0:
      fileio.write_json(path, results, indent=2)
  run.writer.flush()
  run.ckpt.close()
  best_ckpt.close()
  # Every process waits for process 0's end-of-run files (samples, final
  # metrics): one that exits first waits alone at JAX's shutdown barrier, and
  # when that times out both processes abort.
  parallel.sync("end_of_run")
  logging.info("Final metrics: %s", json.dumps(
      {s: {k: v for k, v in m.items() if not isinstance(v, list)} if isinstance(m, dict) else m
       for s, m in results.items()}))
  return results
