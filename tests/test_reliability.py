"""Reliability: kill -9 at several points and resume bitwise; bad corpus
input named by file and line; a workdir with another vocabulary, corpus or model
refused with nothing in it changed; unknown config keys; no pickle anywhere."""

import json
import os
import re
import subprocess

import jax
import numpy as np
import pytest

from configs import default
from textvae import checkpoints
from textvae import lock
from textvae import main as main_lib
from textvae import restore
from textvae import train
from textvae import workdir as workdir_lib
from textvae.data import prepared
from textvae.data import sources
from textvae.data.builders import lines
from tests.helpers import final_params
from tests.helpers import xla_flags
from tests.cli_runs import (CKPT_EVERY, NUM_STEPS, REPO, TMP_SUFFIX, assert_took_over_lock_of,
                            ckpt_names, cli,
                            cli_config, cli_env, count_lines, log_text, metrics_by_step, start,
                            start_and_kill_while_saving, straight_run)

@pytest.fixture(scope="module")
def straight(tmp_path_factory):
  """An uninterrupted CLI run: (its tmp folder, its workdir)."""
  return straight_run(tmp_path_factory)


def test_kill_9_at_several_points_then_resume_equals_uninterrupted_run(straight, tmp_path):
  straight_dir = straight[1]
  workdir = str(tmp_path / "killed")
  record = []
  # 1. Killed while writing its first checkpoint: nothing complete to resume from.
  proc, caught1, contents = start_and_kill_while_saving(workdir, tmp_path, "run1", CKPT_EVERY)
  assert json.load(open(lock.lock_path(workdir)))["pid"] == proc.pid  # left behind
  complete = checkpoints.Checkpointer(workdir).all_steps()
  assert complete == list(range(CKPT_EVERY, caught1, CKPT_EVERY))[-2:]
  assert f"{caught1}{TMP_SUFFIX}" in ckpt_names(workdir)
  if not complete:  # the usual case: the checkpoint caught is the first one
    with pytest.raises(FileNotFoundError, match="holds no complete checkpoint"):
      restore.load(workdir)
  record.append({"killed": f"while writing checkpoint {caught1}", "tmp_contents": contents,
                 "complete_checkpoints": complete})

  # 2. Rerun: starts from scratch (the half-written folder is not a checkpoint);
  # killed while writing checkpoint 30, after 10 and 20 completed.
  start2 = max(complete, default=0)
  killed = proc
  proc, caught2, contents = start_and_kill_while_saving(
      workdir, tmp_path, "run2", max(3 * CKPT_EVERY, caught1 + 20), inside="state")
  assert_took_over_lock_of(killed, workdir, tmp_path, "run2")
  assert (f"Resuming from step {start2}" if start2 else "Starting from scratch") in log_text(
      tmp_path, "run2")
  complete = checkpoints.Checkpointer(workdir).all_steps()
  assert max(complete) == caught2 - CKPT_EVERY
  record.append({"resumed_from": start2, "killed": f"while writing checkpoint {caught2}",
                 "tmp_contents": contents, "complete_checkpoints": complete})

  # 3. Rerun: resumes from the last complete checkpoint, not the half-written
  # one; killed while writing the final checkpoint (50), after 40 completed.
  # (Freezing at Orbax's temporary folder makes the kill point exact however
  # fast the run is; a kill "soon after checkpoint 40" raced a fast machine.)
  resume_from = max(complete)
  killed = proc
  proc, caught3, _ = start_and_kill_while_saving(workdir, tmp_path, "run3", NUM_STEPS)
  assert_took_over_lock_of(killed, workdir, tmp_path, "run3")
  assert caught3 == NUM_STEPS
  assert f"Resuming from step {resume_from}" in log_text(tmp_path, "run3")
  record.append({"resumed_from": resume_from, "killed": f"while writing checkpoint {caught3}",
                 "complete_checkpoints": checkpoints.Checkpointer(workdir).all_steps()})

  # 4. Rerun to the end.
  killed, proc = proc, start(workdir, tmp_path, "run4")
  assert proc.wait(timeout=300) == 0, log_text(tmp_path, "run4")[-3000:]
  assert "Resuming from step 40" in log_text(tmp_path, "run4")
  assert_took_over_lock_of(killed, workdir, tmp_path, "run4")
  assert not os.path.exists(lock.lock_path(workdir))  # released by the finished run
  record.append({"resumed_from": 40, "finished": NUM_STEPS})

  a, b = restore.load(straight_dir), restore.load(workdir)
  assert a.step == b.step == NUM_STEPS
  leaves_a = jax.tree_util.tree_leaves(a.params)
  leaves_b = jax.tree_util.tree_leaves(b.params)
  assert len(leaves_a) == len(leaves_b) > 0
  max_diff = max(float(np.max(np.abs(np.asarray(x) - np.asarray(y))))
                 for x, y in zip(leaves_a, leaves_b))
  jax.tree_util.tree_map(np.testing.assert_array_equal, a.params, b.params)
  assert max_diff == 0.0

  # Every logged value (last occurrence of each step) equals the uninterrupted run's.
  ma, mb = metrics_by_step(straight_dir), metrics_by_step(workdir)
  assert set(ma) == set(mb)
  assert sorted({s for s, k in ma if k == "train/loss"}) == list(range(1, NUM_STEPS + 1))
  differing = [k for k in ma if ma[k] != mb[k]]
  assert not differing, differing[:5]
  assert mb[(NUM_STEPS, "valid/elbo")] == ma[(NUM_STEPS, "valid/elbo")] < 0
  # Metrics reach the disk before each checkpoint, so no step up to the last
  # checkpoint a run began is missing; a resumed run drops the rows that the
  # killed run logged past the step it resumes from, and logs them again: each
  # step appears exactly once.
  counts = [count_lines(workdir, s) for s in range(1, NUM_STEPS + 1)]
  assert counts == [1] * NUM_STEPS, counts
  # A half-written checkpoint is replaced when its step is saved again.
  assert not [n for n in ckpt_names(workdir) if TMP_SUFFIX in n]
  with open(tmp_path / "kill_record.json", "w") as f:
    json.dump({"runs": record, "max_abs_param_diff": max_diff,
               "num_params": int(sum(x.size for x in leaves_a)),
               "metric_values_compared": len(ma),
               "final_train_loss": ma[(NUM_STEPS, "train/loss")],
               "final_valid_elbo": ma[(NUM_STEPS, "valid/elbo")]}, f, indent=1)


# --- Bad corpus input through the text_files builder --------------------------

def write_corpus(folder, train, valid=b"a b\n", test=b"b a\n"):
  os.makedirs(folder, exist_ok=True)
  for name, content in (("train.txt", train), ("valid.txt", valid), ("test.txt", test)):
    with open(os.path.join(folder, name), "wb") as f:
      f.write(content)
  return str(folder)


def text_config(tmp_path, source_dir, **data):
  config = default.get_config()
  config.data.name = "text_files"
  config.data.source_dir = source_dir
  config.data.tfds_data_dir = str(tmp_path / "tfds")
  for k, v in data.items():
    config.data[k] = v
  return config


def messages(caplog):
  return [r.getMessage() for r in caplog.records]


def test_empty_lines_are_skipped_counted_and_logged_per_file(tmp_path, caplog):
  folder = write_corpus(tmp_path / "c", b"the cat sat\n\n   \nthe dog ran\n\t\r\n",
                        valid=b"\n" * 7 + b"a b\n")
  with caplog.at_level("INFO"):
    corpus = sources.load_splits(text_config(tmp_path, folder).data)
  assert sorted(corpus["train"].sentences) == ["the cat sat", "the dog ran"]
  assert corpus["valid"].sentences == ["a b"]
  logged = messages(caplog)
  assert f"{folder}/train.txt: 2 sentences; skipped 3 empty lines (lines 2, 3, 5)" in logged
  assert (f"{folder}/valid.txt: 1 sentence; skipped 7 empty lines "
          "(lines 1, 2, 3, 4, 5, ...)") in logged
  assert f"{folder}/test.txt: 1 sentence" in logged


def test_non_utf8_is_named_by_file_line_column_or_replaced_when_asked(tmp_path, caplog):
  folder = write_corpus(tmp_path / "c", b"good line\nbad \xe9t\xe9 here\nok\n")
  path = f"{folder}/train.txt"
  with pytest.raises(lines.CorpusError) as e:
    sources.load_splits(text_config(tmp_path, folder).data)
  assert str(e.value) == (f"{path}:2: invalid UTF-8 byte 0xe9 at column 5 (set "
                          "config.data.encoding_errors='replace' to substitute U+FFFD)")
  with caplog.at_level("INFO"):
    corpus = sources.load_splits(text_config(tmp_path, folder, encoding_errors="replace").data)
  assert "bad \ufffdt\ufffd here" in corpus["train"].sentences
  assert (f"{path}: 3 sentences; replaced invalid UTF-8 by U+FFFD in 1 line (line 2)"
          in messages(caplog))
  with pytest.raises(ValueError) as e:
    sources.load_splits(text_config(tmp_path, folder, encoding_errors="latin-1").data)
  assert str(e.value) == ("config.data.encoding_errors='latin-1': expected one of "
                          "'strict', 'replace', 'ignore'")


def test_over_long_lines_are_truncated_counted_and_named(tmp_path, caplog):
  folder = write_corpus(tmp_path / "c", b"a b\na b c d e f\n\nb c\nf e d c b a a\n")
  config = text_config(tmp_path, folder, max_length=5)
  os.makedirs(tmp_path / "w")
  with caplog.at_level("WARNING"):
    _, splits = prepared.encode_splits(config, str(tmp_path / "w"))
  train_split = splits["train"]
  assert train_split.num_truncated == 2 and splits["valid"].num_truncated == 0
  assert sorted(train_split.lengths.tolist()) == [3, 3, 5, 5]
  assert all(t[-1] == 2 for t in train_split.tokens)  # <eos> kept
  assert (f"train: 2 of 4 sentences longer than max_length=5 tokens were truncated "
          f"({folder}/train.txt: 2 lines longer than max_length=5 tokens (</s> included): "
          "lines 2, 5)") in messages(caplog)


def test_missing_split_file_and_empty_training_split(tmp_path):
  folder = write_corpus(tmp_path / "c", b"a b\n")
  os.remove(os.path.join(folder, "valid.txt"))
  with pytest.raises(lines.CorpusError) as e:
    sources.load_splits(text_config(tmp_path, folder).data)
  assert str(e.value) == (f"missing split file(s): {folder}/valid.txt (expected "
                          f"train.txt, valid.txt, test.txt in {folder})")
  folder = write_corpus(tmp_path / "e", b"\n  \n")
  with pytest.raises(lines.CorpusError) as e:
    sources.load_splits(text_config(tmp_path, folder).data)
  assert str(e.value) == f"{folder}/train.txt: the training split holds no sentence"


# --- A workdir restarted with another vocabulary, model or corpus -------------

def snapshot(workdir):
  """Every file and folder under `workdir` with its size and mtime."""
  out = {}
  for root, dirs, files in os.walk(workdir):
    for name in dirs + files:
      p = os.path.join(root, name)
      st = os.stat(p)
      out[os.path.relpath(p, workdir)] = (st.st_size if name in files else 0, st.st_mtime_ns)
  return out


def refused(config, workdir):
  """Runs training expecting a refusal; returns the message after checking
  that nothing in the workdir changed."""
  before = snapshot(workdir)
  with pytest.raises(ValueError) as e:
    train.train_and_evaluate(config, workdir)
  assert snapshot(workdir) == before
  return str(e.value)


def test_resume_on_another_device_count_continues_the_same_run(straight, tmp_path):
  """Checkpoint 40 of the 4-device run resumed on 1 device: the same global
  batches and the same noise (keys folded per global row), so steps 41-50
  equal the uninterrupted 4-device run's up to the order of float sums."""
  import shutil  # pylint: disable=import-outside-toplevel
  runs_tmp, straight_dir = straight
  workdir = str(tmp_path / "w")
  shutil.copytree(straight_dir, workdir)
  os.remove(os.path.join(workdir, "final_metrics.json"))
  shutil.rmtree(os.path.join(workdir, "checkpoints", str(NUM_STEPS)))
  env = dict(cli_env(runs_tmp), XLA_FLAGS=xla_flags(1))
  proc = subprocess.run(cli(workdir, runs_tmp), cwd=REPO, env=env, capture_output=True,
                        text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert f"Resuming from step {NUM_STEPS - CKPT_EVERY}" in proc.stderr
  a, b = metrics_by_step(straight_dir), metrics_by_step(workdir)
  resumed = range(NUM_STEPS - CKPT_EVERY + 1, NUM_STEPS + 1)
  for key in ("train/loss", "train/kl", "train/grad_norm"):
    np.testing.assert_allclose([b[(s, key)] for s in resumed], [a[(s, key)] for s in resumed],
                               rtol=2e-5, err_msg=key)
  config = cli_config(runs_tmp)
  state_a, _ = final_params(config, straight_dir)
  state_b, _ = final_params(config, workdir)
  jax.tree_util.tree_map(lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-6),
                         state_a.params, state_b.params)


def test_other_vocabulary_or_model_refused_with_workdir_untouched(straight, tmp_path):
  import shutil  # pylint: disable=import-outside-toplevel
  runs_tmp, straight_dir = straight
  config = cli_config(runs_tmp)
  config.train.num_steps = 2 * NUM_STEPS
  workdir = str(tmp_path / "w")
  shutil.copytree(straight_dir, workdir)
  vpath = workdir_lib.vocab_path(workdir)
  tokens = json.load(open(vpath))["tokens"]
  n = len(tokens)
  where = f"checkpoint {NUM_STEPS} in {workdir}/checkpoints"
  head = (f"{where} does not match this run; nothing was changed in {workdir}. Use a "
          "new --workdir, or restore the workdir's files:\n  ")

  def set_vocab(toks):
    with open(vpath, "w") as f:
      json.dump({"tokens": toks}, f)

  set_vocab(tokens + ["zebra"])
  assert refused(config, workdir) == head + (
      f"vocabulary: vocab.json has {n + 1} tokens, the checkpoint {n}")
  swapped = tokens[:4] + [tokens[5], tokens[4]] + tokens[6:]
  set_vocab(swapped)
  msg = refused(config, workdir)
  assert msg.startswith(head + f"vocabulary: vocab.json's {n} tokens are not the ones the "
                        "checkpoint was trained with (digest "), msg
  os.remove(vpath)
  assert refused(config, workdir) == (
      f"{vpath} is missing but {where} exists; nothing was changed. Restore vocab.json, "
      "or use a new --workdir.")
  set_vocab(tokens)
  config.model.hidden_dim = 64
  assert refused(config, workdir) == (
      f"{workdir} was trained with a different model or data config; nothing was changed "
      "in it. Use a new --workdir, or the workdir's values:\n"
      "  config.model.hidden_dim: workdir has 32, this run 64")
  os.remove(workdir_lib.config_path(workdir))  # the checkpoint's metadata still knows
  assert refused(config, workdir) == head + (
      "config.model.hidden_dim: the checkpoint has 32, this run 64")


def test_changed_corpus_refused_with_workdir_untouched(tmp_path):
  folder = write_corpus(tmp_path / "c", b"a b c\nb c d\n")
  config = text_config(tmp_path, folder)
  workdir = str(tmp_path / "w")
  os.makedirs(workdir)
  prepared.encode_splits(config, workdir)
  workdir_lib.save_config(config, workdir)
  with open(os.path.join(folder, "train.txt"), "ab") as f:
    f.write(b"c d e\n")
  msg = refused(config, workdir)
  saved = json.load(open(workdir_lib.corpus_path(workdir)))["train"]
  assert saved["sentences"] == 2
  assert re.fullmatch(
      f"{re.escape(workdir)} was trained on a different corpus \\({re.escape(workdir)}"
      r"/corpus.json\); nothing was changed in it. Use a new --workdir, or the original "
      r"corpus files:\n  train split: workdir has 2 sentences \(sha256 "
      f"{saved['sha256']}\\), this run 3 sentences \\(sha256 [0-9a-f]{{16}}\\)", msg), msg


# --- Unknown config keys --------------------------------------------------------

def test_unknown_config_key_is_one_line_with_the_nearest_keys(tmp_path):
  argv = ["main", "--config=configs/default.py", "--workdir=W"]
  errors = lambda *keys: main_lib.unknown_override_errors(argv + [f"{k}=1" for k in keys])
  assert errors("--config.train.num_steps", "--config.train.kl_schedule.name") == []
  assert errors("--config.train.num_step") == [
      "error: unknown config key --config.train.num_step (not in configs/default.py); "
      "did you mean: --config.train.num_steps, --config.train.num_samples"]
  assert errors("--config.trian.batch_size")[0].endswith(
      "did you mean: --config.train.batch_size, --config.train.eval_batch_size")
  from configs import default  # pylint: disable=g-import-not-at-top
  assert errors("--config.model.foo") == [
      "error: unknown config key --config.model.foo (not in configs/default.py); valid "
      "keys in --config.model: " + ", ".join(sorted(default.get_config().model.keys()))]
  # The CLI: that line on stderr, exit status 2, no traceback, no workdir.
  workdir = tmp_path / "w"
  proc = subprocess.run(cli(workdir, tmp_path, **{"model.latnet_dim": 8}), cwd=REPO,
                        env=cli_env(tmp_path), capture_output=True, text=True, timeout=120)
  assert proc.returncode == 2
  assert proc.stderr.strip() == (
      "error: unknown config key --config.model.latnet_dim (not in configs/default.py); "
      "did you mean: --config.model.latent_dim, --config.model.label_dim")
  assert not workdir.exists()


# --- No pickle --------------------------------------------------------------------

PICKLE_PATTERNS = re.compile(
    r"\bimport\s+(c?pickle|cloudpickle|dill|joblib|shelve)\b|\bfrom\s+(c?pickle|cloudpickle|"
    r"dill|joblib|shelve)\b|allow_pickle\s*=\s*True|\bnp\.save[z]?(_compressed)?\(|"
    r"\bnumpy\.save|torch\.save|\.to_pickle\(|read_pickle\(")


def test_no_pickle_in_the_package_or_its_checkpoints(straight):
  hits = []
  for top in ("textvae", "configs"):
    for root, _, files in os.walk(os.path.join(REPO, top)):
      for name in files:
        if name.endswith(".py"):
          path = os.path.join(root, name)
          for i, line in enumerate(open(path, encoding="utf-8"), start=1):
            if PICKLE_PATTERNS.search(line):
              hits.append(f"{os.path.relpath(path, REPO)}:{i}: {line.strip()}")
  assert not hits, hits
  # Every file a checkpoint holds is JSON, OCDBT, zstd or a commit marker.
  kinds = {}
  for root, _, files in os.walk(os.path.join(straight[1], "checkpoints")):
    for name in files:
      path = os.path.join(root, name)
      head = open(path, "rb").read(4)
      if head.startswith(b"{"):
        json.load(open(path))
        kind = "json"
      elif head[:2] == b"\x0c\xdb":
        kind = "ocdbt"
      elif head == b"\x28\xb5\x2f\xfd":
        kind = "zstd"
      elif name == "commit_success.txt":
        kind = "marker"
      else:
        kind = f"unknown: {path} starts {head!r}"
      kinds[kind] = kinds.get(kind, 0) + 1
  assert set(kinds) == {"json", "ocdbt", "zstd", "marker"}, kinds
