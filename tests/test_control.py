"""Controlled generation: the label classifier, the latent direction, the
generate and evaluate CLIs with labels, and a conditional run killed with -9
and resumed bitwise (tests/cli_runs.py)."""

import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from configs import override
from tests.helpers import tiny_workdir
from tests.cli_runs import (CKPT_EVERY, REPO, cli_config, cli_env, log_text,
                            metrics_by_step, start, start_and_kill_while_saving)
from textvae import conditioning
from textvae import control
from textvae import decoding
from textvae import errors
from textvae import generate
from textvae import restore
from textvae import train
from textvae.data import pipeline

CONDITION = {"model.condition": "sentiment", "model.condition_prior": "learned",
             "model.label_dim": 4, "train.num_steps": 2 * CKPT_EVERY}


def test_other_labels_are_drawn_among_the_other_labels():
  drawn = control.other_labels(jax.random.key(0), 600, 1, 3)
  assert set(drawn.tolist()) == {0, 2} and 250 < np.sum(drawn == 0) < 350
  np.testing.assert_array_equal(control.other_labels(jax.random.key(1), 5, 0, 2), [1] * 5)
  np.testing.assert_array_equal(control.other_labels(jax.random.key(1), 5, 1, 2), [0] * 5)


def test_bow_classifier_learns_word_presence():
  rng = np.random.default_rng(0)
  filler = ["the", "a", "cat", "dog", "ran", "sat"]

  def make(n):
    y = rng.integers(0, 2, n)
    s = [" ".join(list(rng.choice(filler, 4)) + [("good" if l else "bad")]) for l in y]
    return s, y

  train_s, train_y = make(200)
  test_s, test_y = make(50)
  clf = control.BowClassifier.fit(train_s, train_y, 2)
  assert clf.name == control.CLASSIFIER_NAME
  assert clf.accuracy(test_s, test_y) == 1.0
  assert list(clf.predict(["good", "bad", "zzz good"])) == [1, 0, 1]  # unknown words ignored
  # A word seen only once counts; repetition does not (presence, not counts).
  np.testing.assert_allclose(clf.logits(["good good good"]), clf.logits(["good"]))


def test_latent_direction_is_the_difference_of_label_means(tmp_path_factory):
  trained = restore.load(tiny_workdir(tmp_path_factory))
  rng = np.random.default_rng(1)
  rows = [np.append(rng.integers(4, len(trained.vocab), 5), 2).astype(np.int32)
          for _ in range(12)]
  split = pipeline.EncodedSplit("t", rows, np.full(12, 6, np.int32), {})
  y = np.asarray([0, 1, 2] * 4)
  d = control.latent_direction(trained.model, trained.variables, split, y, 3, scale=2.0)
  mu = np.asarray(decoding.posterior_mean(trained.model, trained.variables,
                                          decoding.pad_batch(rows)))
  means = np.stack([mu[y == k].mean(0) for k in range(3)])
  np.testing.assert_allclose(d.label_means, means, rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(d.transfer_shift([0, 2], 1),
                             2.0 * (means[[1, 1]] - means[[0, 2]]), rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(d.sample_shift(2), 2.0 * (means[2] - mu.mean(0)), rtol=1e-4,
                             atol=1e-5)
  assert list(d.counts) == [4, 4, 4]


def test_unconditional_vae_controls_along_its_latent_direction(tmp_path_factory):
  trained = restore.load(tiny_workdir(tmp_path_factory))
  lines, _ = generate.run(trained, "sample", num=3, label="positive",
                          label_feature="sentiment")
  assert len(lines) == 3
  lines, _ = generate.run(trained, "transfer", num=4, label="negative",
                          label_feature="sentiment")
  assert len(lines) == 4
  for strategy in ("sample", "top_k", "top_p", "beam"):
    out, _ = generate.run(trained, "transfer", inputs=["the chef baked a great cake ."],
                          input_labels="positive", label="negative",
                          label_feature="sentiment", strategy=strategy, beam_size=2,
                          top_k=3, top_p=0.9)
    assert len(out) == 1
  with pytest.raises(errors.ConfigError, match="name the label feature"):
    generate.run(trained, "transfer", num=2, label="negative")
  with pytest.raises(errors.ConfigError, match="unknown label 'neutral' for 'sentiment'"):
    generate.run(trained, "sample", num=2, label="neutral", label_feature="sentiment")
  with pytest.raises(errors.ConfigError, match="no label feature 'mood'.*sentiment"):
    generate.run(trained, "sample", num=2, label="x", label_feature="mood")


@pytest.fixture(scope="module")
def conditional_runs(tmp_path_factory):
  """A conditional run straight through (in this process: the CLI's config and
  compiled programs), and a CLI run killed with -9 while writing its last
  checkpoint (20) and resumed from checkpoint 10: (tmp folder, straight
  workdir, killed workdir)."""
  tmp_path = tmp_path_factory.mktemp("conditional")
  straight, killed = str(tmp_path / "straight"), str(tmp_path / "killed")
  train.train_and_evaluate(override(cli_config(tmp_path), CONDITION), straight)
  _, caught, _ = start_and_kill_while_saving(killed, tmp_path, "run1", 2 * CKPT_EVERY,
                                             inside="state", **CONDITION)
  proc = start(killed, tmp_path, "run2", **CONDITION)
  assert proc.wait(timeout=400) == 0, log_text(tmp_path, "run2")[-3000:]
  assert f"Resuming from step {caught - CKPT_EVERY}" in log_text(tmp_path, "run2")
  return tmp_path, straight, killed


def test_conditional_kill_9_and_resume_is_bitwise(conditional_runs):
  _, straight, killed = conditional_runs
  a, b = restore.load(straight), restore.load(killed)
  assert a.labels == b.labels == conditioning.Labels("sentiment", ("negative", "positive"))
  assert a.model.num_labels == 2 and a.step == b.step == CONDITION["train.num_steps"]
  assert "prior_mu" in a.params["decoder"]
  jax.tree_util.tree_map(np.testing.assert_array_equal, a.params, b.params)
  ma, mb = metrics_by_step(straight), metrics_by_step(killed)
  assert set(ma) == set(mb) and not [k for k in ma if ma[k] != mb[k]]
  assert ma[(CONDITION["train.num_steps"], "valid/kl")] > 0
  with open(os.path.join(straight, "samples.txt"), encoding="utf-8") as f:
    samples = f.read()
  assert "[negative] " in samples and "[positive] " in samples


def _cli(module, *args, tmp_path):
  return subprocess.run([sys.executable, "-m", module, *args], cwd=REPO, env=cli_env(tmp_path),
                        capture_output=True, text=True, timeout=300)


def test_conditional_generate_and_evaluate_clis(conditional_runs, tmp_path_factory):
  tmp_path, workdir, _ = conditional_runs
  out = _cli("textvae.generate", f"--workdir={workdir}", "--mode=sample", "--label=neutral",
             tmp_path=tmp_path)
  assert out.returncode == 1
  assert out.stderr.strip().splitlines()[-1] == (
      "error: unknown label 'neutral' for 'sentiment'; known labels: negative, positive")
  out = _cli("textvae.generate", f"--workdir={workdir}", "--mode=transfer",
             "--label=positive", "--num=3", "--strategy=beam", "--beam_size=2",
             tmp_path=tmp_path)
  assert out.returncode == 0, out.stderr[-2000:]
  assert len(out.stdout.splitlines()) == 3

  trained = restore.load(workdir)
  for mode in ("sample", "reconstruct", "interpolate"):
    lines, _ = generate.run(trained, mode, num=2, label="positive")
    assert len(lines) == 2
  with pytest.raises(errors.ConfigError, match="needs --label, one of: negative, positive"):
    generate.run(trained, "sample", num=2)
  with pytest.raises(errors.ConfigError, match="--input_labels"):
    generate.run(trained, "transfer", inputs=["the chef baked a cake ."], label="positive")
  with pytest.raises(errors.ConfigError, match="--guidance is for --mode=transfer"):
    generate.run(trained, "reconstruct", num=2, label="positive", guidance=1.0)

  lm = restore.load(tiny_workdir(tmp_path_factory))  # any workdir scores fluency
  result = control.control_metrics(trained, num_samples=4, num_sources=10, fluency_lm=lm)
  assert result["method"] == "conditional" and result["feature"] == "sentiment"
  assert result["classifier"]["held_out_accuracy"] > 0.9  # sentiment words decide it
  for name in ("negative", "positive"):
    row = result["per_label"][name]
    assert 0 <= row["sample_accuracy"] <= 1 and 0 <= row["transfer_accuracy"] <= 1
    assert row["num_samples"] == 4 and 0 < row["num_transfers"] < 10
    assert row["transfer_ppl"] > 1 and row["sample_ppl"] > 1
  assert sum(r["num_transfers"] for r in result["per_label"].values()) == 10
  json.dumps(result)  # writable as JSON


def test_guided_transfer_contrasts_with_the_source_code(conditional_runs, tmp_path_factory):
  """Conditional: the source label's code is the contrast; latent direction:
  the unshifted posterior mean. Checked against the guided greedy decoder
  written out step by step."""
  from tests.test_decoding import guided_greedy_by_hand  # pylint: disable=g-import-not-at-top
  _, workdir, _ = conditional_runs
  trained = restore.load(workdir)
  sentences, values = control.labelled_split(trained, trained.labels, "valid")
  src = np.asarray(values[:12])
  rows = [trained.vocab.encode(s) for s in sentences[:12]]
  tokens = decoding.pad_batch(rows)
  L, w, target = trained.config.data.max_length, 3.0, 1
  guided = control.transfer(trained.model, trained.variables, tokens, src, target,
                            max_length=L, guidance=w)
  unguided = control.transfer(trained.model, trained.variables, tokens, src, target,
                              max_length=L)
  mu = decoding.posterior_mean(trained.model, trained.variables, tokens, src)
  code = decoding.decoder_code(trained.model, trained.variables, mu, np.full(12, target))
  contrast = decoding.decoder_code(trained.model, trained.variables, mu, src)
  np.testing.assert_array_equal(
      guided, guided_greedy_by_hand(trained.model, trained.params, code, contrast, w, L))
  assert not np.array_equal(guided, unguided)
  # A source already of the target label has nothing to steer away from.
  same = src == target
  assert same.any() and (~same).any()
  np.testing.assert_array_equal(guided[same], unguided[same])
  # The CLI's transfer is the same guided decoder.
  lines, _ = generate.run(trained, "transfer", inputs=sentences[:12], label="positive",
                          input_labels="|".join(trained.labels.names[v] for v in src),
                          guidance=w)
  assert lines == [trained.vocab.decode(t) for t in guided]

  # Prior samples of a label: away from the same z with the other label.
  key = jax.random.key(4)
  samples = control.sample(trained.model, trained.variables, key, 12, target, max_length=L,
                           guidance=w)
  z, _ = decoding.prior_sample(trained.model, trained.variables, key, 12, max_length=L,
                               labels=target)
  code = decoding.decoder_code(trained.model, trained.variables, z, np.full(12, target))
  contrast = decoding.decoder_code(trained.model, trained.variables, z, np.full(12, 1 - target))
  np.testing.assert_array_equal(
      samples, guided_greedy_by_hand(trained.model, trained.params, code, contrast, w, L))
  lines, _ = generate.run(trained, "sample", num=12, label="positive", seed=4, guidance=w)
  assert lines == [trained.vocab.decode(t) for t in samples]

  plain = restore.load(tiny_workdir(tmp_path_factory))
  means = np.asarray(jax.random.normal(jax.random.key(5), (2, plain.model.latent_dim)))
  direction = control.LatentDirection(means, means.mean(0), np.asarray([1, 1]), 1.0)
  guided = control.transfer(plain.model, plain.variables, tokens, src, target, max_length=L,
                            guidance=w, direction=direction)
  mu = decoding.posterior_mean(plain.model, plain.variables, tokens)
  z = mu + direction.transfer_shift(src, target)
  np.testing.assert_array_equal(
      guided, guided_greedy_by_hand(plain.model, plain.params, z, mu, w, L))


def test_transfer_sweep_reproduces_the_control_figures(conditional_runs):
  """tools/sweep_transfer.py at one grid point gives evaluate --control's
  transfer accuracy and BLEU on the same split and sources."""
  import importlib.util  # pylint: disable=g-import-not-at-top
  spec = importlib.util.spec_from_file_location(
      "sweep_transfer", os.path.join(REPO, "tools", "sweep_transfer.py"))
  sweep = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(sweep)
  _, workdir, _ = conditional_runs
  trained = restore.load(workdir)
  result = sweep.sweep(workdir, [trained.step], [3.0], [1.0], split="valid", num_sources=10)
  assert [r["guidance"] for r in result["rows"]] == [3.0]
  for row in result["rows"]:
    want = control.control_metrics(restore.load(workdir), split="valid", num_samples=2,
                                   num_sources=10, guidance=row["guidance"])
    assert row["transfer_accuracy"] == want["overall"]["transfer_accuracy"]
    assert row["transfer_bleu"] == want["overall"]["transfer_bleu"]
    for name, per in row["per_label"].items():
      assert per["transfer_bleu"] == want["per_label"][name]["transfer_bleu"]
  assert "| 20 | - | 3 |" in sweep.markdown(result, "cmd")
