"""The training loop: `train_and_evaluate(config, workdir)`.

init -> resume from the latest complete checkpoint -> pmapped steps -> periodic
validation and checkpoints -> test split, prior samples and reconstructions.
"""

from __future__ import annotations

import json
import math
import os
import time

from absl import logging
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from textvae import checkpoints
from textvae import conditioning
from textvae import config_checks
from textvae import decoding
from textvae import early_stopping
from textvae import errors
from textvae import evaluation
from textvae import lock
from textvae import metric_writers as metric_writers_lib
from textvae.metric_writers import periodic_actions
from textvae import models
from textvae import objectives
from textvae import optim
from textvae import parallel
from textvae import steps
from textvae import workdir as workdir_lib
from textvae.data import pipeline
from textvae.data import sources
from textvae.data import vocab as vocab_lib
from textvae.data.builders import text_files

NAN_MARKER = "nonfinite_stop.json"


class NonFiniteError(FloatingPointError):
  """A training metric became NaN/Inf; the last good checkpoint is kept."""


def prepare_data(config, workdir):
  """Corpus splits encoded with the workdir's vocabulary (built from train once)."""
  corpus = sources.load_splits(config.data)
  if jax.process_index() == 0:  # refuses a changed corpus before vocab.json is written
    workdir_lib.check_corpus(workdir_lib.corpus_fingerprint(
        {name: c.sentences for name, c in corpus.items()}), workdir)
  vpath = workdir_lib.vocab_path(workdir)
  if os.path.exists(vpath):
    vocab = vocab_lib.Vocabulary.load(vpath)
    logging.info("Loaded vocabulary of %d tokens from %s", len(vocab), vpath)
  else:
    vocab = vocab_lib.Vocabulary.build(corpus["train"].sentences,
                                       max_size=config.data.vocab_size,
                                       min_count=config.data.min_count)
    if jax.process_index() == 0:
      vocab.save(vpath)
    logging.info("Built vocabulary of %d tokens from the training split", len(vocab))
  splits = {name: pipeline.encode(name, c.sentences, vocab, config.data.max_length, c.factors,
                                 text_files.truncation_locator(config.data, name))
            for name, c in corpus.items()}
  return vocab, splits


def prepare_labels(config, splits, workdir):
  """A conditional VAE's labels (`config.model.condition`, a label feature of
  the corpus) from the dataset's feature info, checked against every split and
  recorded in (or checked against) workdir/labels.json; None when unconditional."""
  condition = config.model.get("condition", "") or ""
  if not condition:
    return None
  values = pipeline.split_labels(splits["train"], condition)
  labels = conditioning.feature_names(config.data, condition, values)
  for name, split in splits.items():
    conditioning.check_values(labels, pipeline.split_labels(split, condition),
                              f"the {name} split")
  if jax.process_index() == 0:
    conditioning.check_workdir_labels(labels, workdir)
  return labels


def _flat_hparams(config):
  def flatten(d, prefix=""):
    out = {}
    for k, v in d.items():
      if isinstance(v, dict):
        out.update(flatten(v, f"{prefix}{k}."))
      else:
        out[f"{prefix}{k}"] = v if isinstance(v, (int, float, str, bool)) else str(v)
    return out
  return flatten(json.loads(config.to_json()))


def _fetch_window(metric_list, first_step, latest_good, workdir):
  """Fetches a window of per-step metrics (one host sync per window, not per
  step) and stops at the first step whose metrics are not finite."""
  fetched = jax.device_get([steps.unreplicate(m) for m in metric_list])
  for offset, m in enumerate(fetched):
    bad = sorted(k for k, v in m.items() if not np.all(np.isfinite(v)))
    if bad:
      step = first_step + offset
      info = {"step": step, "metric": bad[0], "value": str(m[bad[0]]),
              "last_good_checkpoint": latest_good}
      if jax.process_index() == 0:
        with open(os.path.join(workdir, NAN_MARKER), "w", encoding="utf-8") as f:
          json.dump(info, f)
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


def _aggressive_config(config):
  """config.train.aggressive when enabled (He et al. 2019), else None."""
  a = config.train.get("aggressive", None)
  return a if a is not None and a.enabled else None


def _aggressive_inner(state, batch, inner_iter, p_encoder_step, inner_key, aggressive, aggr):
  """He et al. 2019's inner loop before one outer step: encoder-only updates,
  the first on the outer step's batch (as the authors' text.py), the rest on
  fresh batches from the second iterator, until the loss per token over a
  window of `aggressive.window` steps stops decreasing (at most
  `aggressive.max_inner_steps`)."""
  holder = [state]

  def run_step(i):
    b = batch if i == 0 else parallel.shard(next(inner_iter))
    holder[0], m = p_encoder_step(holder[0], b, inner_key, i)
    return m["loss_sum"], m["num_tokens"]

  n = steps.aggressive_inner_loop(run_step, window=aggressive.window,
                                  max_steps=aggressive.max_inner_steps)
  aggr["inner_steps"].append(n)
  return holder[0]


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


def _observe_plateau(config, state, tracker, best_ckpt, valid, step):
  """The plateau learning-rate schedule after a validation (optim.py): feeds it
  the monitored metric; after a reduction, restarts from the best validation
  checkpoint when `lr_schedule.restore_best` (the authors' code reloads the best
  model at every decay). Returns the (placed) state."""
  schedule = config.train.lr_schedule
  value = float(valid[tracker.metric])
  if not early_stopping.LOWER_IS_BETTER[tracker.metric]:
    value = -value
  local = steps.local_state(state)
  opt_state, decayed = optim.observe_validation(config.train, local.opt_state, value)
  if decayed:
    logging.info("Step %d: validation %s has not improved for %d validations; learning "
                 "rate reduced to %g (reduction %d of %d)", step, tracker.metric,
                 schedule.patience, optim.learning_rate(config.train, opt_state),
                 optim.num_decays(config.train, opt_state), schedule.max_decays)
    if schedule.restore_best and tracker.best_step in best_ckpt.all_steps():
      best_ckpt.wait_until_finished()
      best_state, _, _ = best_ckpt.restore(tracker.best_step, local)
      local = best_state.replace(step=local.step)
      opt_state = local.opt_state._replace(plateau=opt_state.plateau)
      logging.info("Step %d: restarting from the best validation checkpoint (step %d)",
                   step, tracker.best_step)
  return steps.place_state(local.replace(opt_state=opt_state))


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
    with open(os.path.join(workdir, "samples.txt"), "w", encoding="utf-8") as f:
      f.write(text)
  logging.info("Samples:\n%s", text)


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
  workdir_lib.check_compatible(config, workdir)
  workdir_lib.check_checkpoint(config, workdir)  # vocabulary and model vs the checkpoint

  marker = os.path.join(workdir, NAN_MARKER)
  if os.path.exists(marker):
    with open(marker, encoding="utf-8") as f:
      info = json.load(f)
    good = info["last_good_checkpoint"]
    logging.warning("The previous run stopped at step %s on non-finite %s=%s; %s.",
                    info["step"], info["metric"], info["value"],
                    f"resuming from the last good checkpoint (step {good})" if good is not None
                    else "it had saved no checkpoint: starting from scratch")

  with parallel.process_zero_first("prepare_data"):  # shared TFDS dir and vocab.json
    vocab, splits = prepare_data(config, workdir)
  labels = prepare_labels(config, splits, workdir)
  condition = labels.feature if labels is not None else ""
  if jax.process_index() == 0:
    workdir_lib.save_config(config, workdir)
  model = models.create_model(config.model, len(vocab), len(labels) if labels else 0)

  init_key, train_key, eval_key, sample_key = jax.random.split(
      jax.random.key(config.seed), 4)
  state = steps.create_train_state(model, init_key, config.train)
  num_params = sum(x.size for x in jax.tree_util.tree_leaves(state.params))
  logging.info("Model %s: %d parameters, vocabulary %d", config.model.kind, num_params,
               len(vocab))

  # One compiled program per padded length: at most max_buckets of them.
  buckets = pipeline.batch_buckets(config.data, splits["train"].lengths)
  padding = pipeline.padding_summary(
      splits["train"].lengths, buckets, batch_size=config.train.batch_size, seed=config.seed,
      pool_batches=config.data.pool_batches, pad_multiple=config.data.pad_multiple)
  logging.info("Padding: %d bucket lengths for %d distinct training lengths (%s); an epoch "
               "of batches holds %.4f padded tokens per real one (padding waste %.2f%%; "
               "%.2f%% if padded to each batch's longest sentence)", len(buckets),
               len(np.unique(splits["train"].lengths)), " ".join(map(str, buckets)),
               1 + padding["waste"], 100 * padding["waste"], 100 * padding["exact_waste"])
  train_source = pipeline.train_dataset(
      splits["train"], global_batch_size=config.train.batch_size, seed=config.seed,
      process_index=jax.process_index(), process_count=jax.process_count(),
      pad_multiple=config.data.pad_multiple, pool_batches=config.data.pool_batches,
      condition=condition, buckets=buckets)
  train_iter = iter(train_source)

  aggressive = _aggressive_config(config)
  aggr = {"active": bool(aggressive), "prev_mi": None, "inner_steps": []}
  inner_iter = None
  if aggressive:  # the inner steps' fresh batches: a second, independent iterator
    inner_iter = iter(pipeline.train_dataset(
        splits["train"], global_batch_size=config.train.batch_size, seed=config.seed + 1,
        process_index=jax.process_index(), process_count=jax.process_count(),
        pad_multiple=config.data.pad_multiple, pool_batches=config.data.pool_batches,
        condition=condition, buckets=buckets))

  ckpt = checkpoints.Checkpointer(workdir, config.train.keep_checkpoints)
  best_ckpt = checkpoints.Checkpointer(workdir, 1, subdir="best")
  tracker = early_stopping.Tracker.from_config(config)
  start_step = 0
  # The newest step that restores completely; unreadable newer ones are moved aside.
  restored = checkpoints.restore_newest(ckpt, lambda s: ckpt.restore(s, state), move_aside=True)
  latest = None if restored is None else restored[0]
  if restored is not None:
    state, data_state, meta = restored[1]
    if "early_stopping" in meta:
      tracker.restore(meta["early_stopping"])
    else:  # a workdir started before the tracker: its validation history
      tracker.replay(workdir_lib.metrics_path(workdir), int(state.step))
    _sync_best_checkpoint(tracker, ckpt, best_ckpt, state)
    train_iter.set_state(data_state)
    if aggressive and "aggressive" in meta:
      aggr.update(active=meta["aggressive"]["active"], prev_mi=meta["aggressive"]["prev_mi"])
      inner_iter.set_state(meta["aggressive"]["inner_data"])
    start_step = int(state.step)
    logging.info("Resuming from step %d (checkpoint %s)", start_step,
                 os.path.join(ckpt.directory, str(latest)))
    if meta.get("vocab_size") != len(vocab):
      raise errors.WorkdirError(f"checkpoint {latest} has vocab_size "
                                f"{meta.get('vocab_size')}, the workdir's vocab.json "
                                f"{len(vocab)}")
  else:
    logging.info("Starting from scratch in %s", workdir)

  if jax.process_index() == 0:  # what a killed run logged past the step resumed from
    workdir_lib.trim_metrics(workdir, start_step)
  writer = metric_writers_lib.create_writer(workdir, just_logging=jax.process_index() > 0)
  if start_step == 0:
    writer.write_hparams(_flat_hparams(config))

  p_train_step = steps.pmap_train_step(config.train)
  if aggressive:
    p_decoder_step = steps.pmap_train_step(config.train, parts=("decoder",))
    p_encoder_step = steps.pmap_encoder_step(config.train)
    inner_key = steps.inner_key(train_key)
  pretrain_steps = int(config.train.get("pretrain_steps", 0) or 0)
  state = steps.place_state(state)
  num_steps = config.train.num_steps
  report = periodic_actions.ReportProgress(num_train_steps=num_steps, writer=writer)

  def run_eval(split_name, variables=None):
    # IW-NLL with a small K, ELBO, KL, MI and AU: the curves show MI and AU over time.
    if variables is None:
      variables = steps.local_state(state).variables()
    return evaluation.evaluate_split(
        model, steps.replicate(variables), splits[split_name],
        num_samples=config.train.eval_importance_samples,
        batch_size=config.train.eval_batch_size, key=eval_key,
        pad_multiple=config.data.pad_multiple, condition=condition, buckets=buckets)

  def checkpoint_meta(step):
    return {"step": step, "vocab_size": len(vocab), "config": json.loads(config.to_json()),
            "vocab_sha256": workdir_lib.vocab_digest(vocab.tokens),
            "early_stopping": tracker.to_meta()}

  def save(step):
    meta = checkpoint_meta(step)
    if aggressive:  # exact resume: the switch, the last MI and the inner batches
      meta["aggressive"] = {"active": aggr["active"], "prev_mi": aggr["prev_mi"],
                            "inner_data": inner_iter.get_state()}
    writer.flush()  # every metric up to `step` is on disk before checkpoint `step`
    ckpt.save(step, steps.local_state(state), train_iter.get_state(), meta)

  window, window_start, last_valid = [], time.time(), {}
  in_flight = parallel.DispatchBound()
  schedule = config.train.get("lr_schedule", None)
  plateau = schedule is not None and schedule.get("name", "constant") == "plateau"
  lr_done = optim.schedule_finished(config.train, steps.local_state(state).opt_state)
  stopped = tracker.stopped or lr_done
  done_at_start = start_step >= num_steps or stopped
  if stopped:
    logging.info("Training already stopped (%s; best %s=%.4f at step %d)",
                 "last learning-rate reduction" if lr_done else "early stopping",
                 tracker.metric, tracker.best_value, tracker.best_step)
  for step in range(start_step + 1, 0 if stopped else num_steps + 1):
    with jax.profiler.StepTraceAnnotation("train", step_num=step):
      if pretrain_steps and step == pretrain_steps + 1:
        # Li et al. 2019: the autoencoder phase is over; fresh decoder, VAE from here.
        state = steps.place_state(steps.reinit_decoder(
            steps.local_state(state), model, init_key, config.train))
        logging.info("Step %d: autoencoder pretraining done (%d steps); decoder "
                     "re-initialised", step, pretrain_steps)
      batch = parallel.shard(next(train_iter))
      if aggressive and aggr["active"]:
        state = _aggressive_inner(state, batch, inner_iter, p_encoder_step, inner_key,
                                  aggressive, aggr)
        state, metrics = p_decoder_step(state, batch, train_key)
      else:
        state, metrics = p_train_step(state, batch, train_key)
    window.append(metrics)
    in_flight.push(metrics)
    report(step)
    is_last = step == num_steps
    do_eval = step % config.train.eval_every_steps == 0 or is_last
    do_ckpt = step % config.train.checkpoint_every_steps == 0 or is_last
    if step % config.train.log_every_steps == 0 or do_eval or do_ckpt:
      fetched = _fetch_window(window, step - len(window) + 1, ckpt.latest_step(), workdir)
      scalars, sums = _train_scalars(fetched)
      if aggressive:
        scalars["train/aggressive"] = float(aggr["active"])
        if aggr["inner_steps"]:
          scalars["train/inner_steps"] = float(np.mean(aggr["inner_steps"]))
        aggr["inner_steps"] = []
      elapsed = time.time() - window_start
      scalars["train/tokens_per_s"] = sums["num_tokens"] / elapsed
      writer.write_scalars(step, scalars)
      window, window_start = [], time.time()
    if do_eval:
      with report.timed("eval"):
        valid = run_eval("valid")
      last_valid = valid
      if aggressive and aggr["active"]:
        aggr["active"] = steps.aggressive_still_on(True, aggr["prev_mi"], valid["mi"])
        if not aggr["active"]:
          logging.info("Step %d: validation MI %.4f did not increase (previous %s): "
                       "aggressive training switched off", step, valid["mi"], aggr["prev_mi"])
        aggr["prev_mi"] = float(valid["mi"])
      writer.write_scalars(step, {f"valid/{k}": v for k, v in valid.items()
                                  if isinstance(v, (int, float))})
      if tracker.update(step, valid):
        writer.flush()
        best_ckpt.save(step, steps.local_state(state), train_iter.get_state(),
                       checkpoint_meta(step))
        logging.info("Step %d: best validation %s so far, %.4f; saved to %s", step,
                     tracker.metric, tracker.best_value, best_ckpt.directory)
      if plateau and step >= schedule.start_step:
        state = _observe_plateau(config, state, tracker, best_ckpt, valid, step)
        lr_done = optim.schedule_finished(config.train, steps.local_state(state).opt_state)
      if plateau:
        writer.write_scalars(step, {"train/learning_rate": optim.learning_rate(
            config.train, steps.local_state(state).opt_state)})
      if tracker.stopped:
        logging.info("Step %d: early stopping, validation %s has not improved for %d "
                     "evaluations (best %.4f at step %d)", step, tracker.metric,
                     tracker.evals_since_best, tracker.best_value, tracker.best_step)
      if lr_done:
        logging.info("Step %d: the learning rate was reduced %d times: training stops "
                     "(best %s %.4f at step %d)", step, schedule.max_decays, tracker.metric,
                     tracker.best_value, tracker.best_step)
      stopped = tracker.stopped or lr_done
      if stopped:
        do_ckpt = True
    if do_ckpt:
      with report.timed("checkpoint"):
        save(step)
      if jax.process_index() == 0 and os.path.exists(marker):
        os.remove(marker)
    if do_eval:
      window_start = time.time()  # throughput excludes evaluation and saving
    if stopped:
      break

  ckpt.wait_until_finished()
  best_ckpt.wait_until_finished()
  final_step = int(steps.local_state(state).step)
  results = {"step": final_step}
  if not done_at_start or not os.path.exists(os.path.join(workdir, "final_metrics.json")):
    results["valid"] = last_valid or run_eval("valid")
    if (tracker.best_step is not None and tracker.best_step != final_step
        and tracker.best_step in best_ckpt.all_steps()):
      # The model selected on validation data is the one reported on test.
      best_vars = _best_variables(best_ckpt, tracker.best_step, state)
      results["best_valid"] = run_eval("valid", best_vars)
      results["test"] = run_eval("test", best_vars)
    else:
      results["test"] = run_eval("test")
    results["best_step"] = tracker.best_step
    results["early_stopping"] = tracker.to_meta()
    opt_state = steps.local_state(state).opt_state
    results["lr_schedule"] = {"learning_rate": optim.learning_rate(config.train, opt_state),
                              "decays": optim.num_decays(config.train, opt_state),
                              "finished": lr_done}
    writer.write_scalars(final_step, {f"test/{k}": v for k, v in results["test"].items()
                                      if isinstance(v, (int, float))})
    params = steps.local_state(state).variables()
    write_samples(model, params, vocab, splits, config, sample_key, workdir, labels,
                  buckets=buckets)
    if jax.process_index() == 0:
      with open(os.path.join(workdir, "final_metrics.json"), "w", encoding="utf-8") as f:
        json.dump(results, f, indent=2)
  else:
    with open(os.path.join(workdir, "final_metrics.json"), encoding="utf-8") as f:
      results = json.load(f)
    logging.info("Already trained to step %d; nothing to do.", final_step)
  writer.flush()
  ckpt.close()
  best_ckpt.close()
  # Every process waits for process 0's end-of-run files (samples, final
  # metrics): one that exits first waits alone at JAX's shutdown barrier, and
  # when that times out both processes abort.
  parallel.sync("end_of_run")
  logging.info("Final metrics: %s", json.dumps(
      {s: {k: v for k, v in m.items() if not isinstance(v, list)} if isinstance(m, dict) else m
       for s, m in results.items()}))
  return results
