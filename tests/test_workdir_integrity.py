"""A workdir under faults and concurrency, with real processes and real files:
one training run per workdir (lock.json), resume past unreadable checkpoints,
vocab.json checked by every CLI, evaluate's result kept when the workdir
cannot be written, a failed checkpoint save, metrics rows once per step, and
two runs preparing one TFDS dataset at the same moment."""

import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest

from tests.cli_runs import (CKPT_EVERY, NUM_STEPS, REPO, cli, cli_config, cli_env, log_text,
                            straight_run, wait_for)
from textvae import checkpoints
from textvae import generate
from textvae import lock
from textvae import restore
from textvae import train
from textvae import workdir as workdir_lib

# The trained workdir: checkpoints STEPS - CKPT_EVERY and STEPS (keep 2), best at STEPS.
STEPS = NUM_STEPS


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  """(tmp folder, workdir) of a finished run with the CLI's tiny config (the
  session's one, shared with test_reliability.py: tests copy it)."""
  return straight_run(tmp_path_factory)


def copy_of(trained, tmp_path, name="w"):
  workdir = str(tmp_path / name)
  shutil.copytree(trained[1], workdir)
  return workdir


def run_cli(module, *args, env, limit_file_size=None, timeout=300):
  """`python -m module args` to the end; stdout and stderr are pipes (a file
  size limit does not apply to them)."""
  preexec = None
  if limit_file_size is not None:  # writes past this size fail with EFBIG, as on a full disk
    preexec = lambda: resource.setrlimit(resource.RLIMIT_FSIZE,
                                         (limit_file_size, limit_file_size))
  return subprocess.run([sys.executable, "-m", module, *args], cwd=REPO, env=env,
                        capture_output=True, text=True, timeout=timeout, preexec_fn=preexec)


def last_line(text):
  return text.strip().splitlines()[-1] if text.strip() else ""


def metric_steps(workdir):
  with open(workdir_lib.metrics_path(workdir), encoding="utf-8") as f:
    return [json.loads(l)["step"] for l in f if "train/loss" in l]


def params_of(workdir, step):
  return restore.load(workdir, step).params


# --- One training run per workdir ---------------------------------------------

def test_second_training_run_is_refused_at_once_naming_the_holder(trained, tmp_path):
  data_tmp = trained[0]  # its prepared data
  workdir = str(tmp_path / "locked")
  log = open(tmp_path / "first.log", "w")  # pylint: disable=consider-using-with
  first = subprocess.Popen(cli(workdir, data_tmp, **{"train.num_steps": 10}), cwd=REPO,
                           env=cli_env(data_tmp), stdout=log, stderr=subprocess.STDOUT)
  try:
    # Well past taking the lock; frozen so that it holds it however fast it is.
    wait_for(first, lambda: os.path.exists(workdir_lib.metrics_path(workdir)), "training")
    os.kill(first.pid, signal.SIGSTOP)
    holder = json.load(open(lock.lock_path(workdir)))
    assert holder["pid"] == first.pid and holder["host"] == socket.gethostname()
    before = sorted(os.listdir(workdir))
    second = subprocess.run(cli(workdir, data_tmp), cwd=REPO, env=cli_env(data_tmp),
                            capture_output=True, text=True, timeout=300)
    assert second.returncode == 1
    assert last_line(second.stderr) == (
        f"error: {workdir} is in use by another training run (PID {first.pid} on host "
        f"{socket.gethostname()}, started {holder['started']}; {workdir}/lock.json): wait "
        "for it to finish, or use another --workdir")
    assert "Traceback" not in second.stderr and "Starting from scratch" not in second.stderr
    assert sorted(os.listdir(workdir)) == before
  finally:
    os.kill(first.pid, signal.SIGCONT)
  assert first.wait(timeout=300) == 0, log_text(tmp_path, "first")[-3000:]
  assert not os.path.exists(lock.lock_path(workdir))  # released at the end
  steps = metric_steps(workdir)
  assert steps == sorted(set(steps)), "a step logged twice"


def test_two_process_run_is_one_run_refused_by_both_processes(trained, tmp_path):
  """Process 0 owns the lock; process 1 stops with it instead of waiting."""
  workdir = str(tmp_path / "w")
  os.makedirs(workdir)
  me = lock.acquire(workdir)  # held by this (live) test process
  port = socket.socket()
  port.bind(("127.0.0.1", 0))
  coordinator = f"127.0.0.1:{port.getsockname()[1]}"
  port.close()
  procs = []
  for pid in range(2):
    env = cli_env(trained[0])
    env.update(JAX_COORDINATOR_ADDRESS=coordinator, JAX_NUM_PROCESSES="2",
               JAX_PROCESS_ID=str(pid))
    procs.append(subprocess.Popen(cli(workdir, trained[0]), cwd=REPO, env=env, text=True,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
  try:
    outs = [p.communicate(timeout=300)[0] for p in procs]
  finally:
    for p in procs:
      p.kill()
  expected = (f"error: {workdir} is in use by another training run (PID {os.getpid()} on host "
              f"{socket.gethostname()}, started {me['started']}; {workdir}/lock.json): wait "
              "for it to finish, or use another --workdir")
  for p, out in zip(procs, outs):
    assert p.returncode == 1, out[-3000:]
    # Gloo's native threads write to the same pipe, mid-line at times (not through
    # sys.stderr), so the message is looked for in the text, not as a whole line.
    assert expected in out, out[-3000:]
  assert json.load(open(lock.lock_path(workdir)))["pid"] == os.getpid()  # still ours
  lock.release(workdir, me)
  assert not os.path.exists(lock.lock_path(workdir))


def test_stale_lock_taken_over_live_or_remote_holder_refused(tmp_path, caplog):
  workdir = str(tmp_path)
  path = lock.lock_path(workdir)
  dead = subprocess.Popen(["true"])
  dead.wait()
  me = lock.identity()
  for stale in (dict(me, pid=dead.pid),  # no such process any more
                dict(me, start_ticks=me["start_ticks"] + 1),  # a reused PID
                dict(me, boot_id="another boot")):  # the machine restarted
    json.dump(stale, open(path, "w"))
    with caplog.at_level("WARNING"):
      got = lock.acquire(workdir)
    assert json.load(open(path)) == got and got["pid"] == os.getpid()
    assert f"Taking over the stale lock {path}" in caplog.text
    caplog.clear()
  lock.release(workdir, got)
  live = subprocess.Popen(["sleep", "60"])
  try:
    json.dump(dict(lock.identity(), pid=live.pid,
                   start_ticks=lock._start_ticks(live.pid)), open(path, "w"))
    with pytest.raises(lock.errors.WorkdirError, match=f"PID {live.pid} on host"):
      lock.acquire(workdir)
  finally:
    live.kill()
    live.wait()
  json.dump(dict(me, host="elsewhere"), open(path, "w"))
  with pytest.raises(lock.errors.WorkdirError) as e:
    lock.acquire(workdir)
  assert str(e.value).endswith(f"or delete {path} if that run is no longer running")


# --- Resume past unreadable checkpoints ----------------------------------------

def _corrupt(workdir, how):
  """(the unreadable step, the step to resume from, a damaged file's path in the step)."""
  latest = os.path.join(workdir, "checkpoints", str(STEPS))
  if how == "empty_step_folder":  # `mkdir W/checkpoints/<STEPS + CKPT_EVERY>`
    os.makedirs(os.path.join(workdir, "checkpoints", str(STEPS + CKPT_EVERY)))
    return STEPS + CKPT_EVERY, STEPS, None
  if how == "truncated_array_file":
    data = os.path.join("state", "ocdbt.process_0", "d")
    biggest = max(os.listdir(os.path.join(latest, data)),
                  key=lambda n: os.path.getsize(os.path.join(latest, data, n)))
    damaged = os.path.join(data, biggest)
    with open(os.path.join(latest, damaged), "r+b") as f:
      f.truncate(1000)
  else:
    damaged = os.path.join("meta", "metadata")
    open(os.path.join(latest, damaged), "w").close()
  return STEPS, STEPS - CKPT_EVERY, damaged


@pytest.mark.parametrize("how", ["empty_step_folder", "truncated_array_file",
                                 "emptied_meta_metadata"])
def test_unreadable_latest_step_is_moved_aside_and_the_previous_one_resumed(
    trained, tmp_path, how, caplog):
  workdir = copy_of(trained, tmp_path)
  bad, good, damaged = _corrupt(workdir, how)
  config = cli_config(trained[0])
  config.train.num_steps = STEPS + CKPT_EVERY
  with caplog.at_level("WARNING"):
    train.train_and_evaluate(config, workdir)
  moved = os.path.join(workdir, "checkpoints.corrupt", str(bad))
  assert (f"Checkpoint {workdir}/checkpoints/{bad} cannot be restored (" in caplog.text
          and f"moved it aside to {moved} and resuming from step {good}" in caplog.text)
  assert os.path.isdir(moved)  # kept as it was, not deleted
  if damaged:
    assert os.path.getsize(os.path.join(moved, damaged)) == (1000 if "state" in damaged else 0)
  assert checkpoints.Checkpointer(workdir).latest_step() == STEPS + CKPT_EVERY
  if good < STEPS:  # step STEPS trained again from the one before: the same as the first time
    jax.tree_util.tree_map(np.testing.assert_array_equal, params_of(trained[1], STEPS),
                           params_of(workdir, STEPS))
  steps = metric_steps(workdir)
  assert steps == list(range(1, STEPS + CKPT_EVERY + 1)), steps  # each step once


def test_damaged_best_checkpoint_falls_back_to_the_latest_in_evaluate_and_generate(
    trained, tmp_path, caplog):
  workdir = copy_of(trained, tmp_path)
  best = os.path.join(workdir, "best", str(STEPS))
  open(os.path.join(best, "meta", "metadata"), "w").close()
  warning = (f"The best checkpoint in {workdir}/best cannot be restored (JSONDecodeError: "
             "Expecting value: line 1 column 1 (char 0)); using the latest regular checkpoint "
             "instead")
  proc = run_cli("textvae.evaluate", f"--workdir={workdir}", "--split=valid",
                 "--num_importance_samples=2", "--reconstruction=false",
                 env=cli_env(trained[0]))
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert warning in proc.stderr
  assert json.loads(last_line(proc.stdout))["iw_nll"] > 0
  saved = json.load(open(os.path.join(workdir, "eval_valid.json")))
  assert (saved["checkpoint"], saved["step"]) == ("latest", STEPS)
  with caplog.at_level("WARNING"):
    loaded = restore.load(workdir)  # what generate and probe load
  assert warning in caplog.text and (loaded.checkpoint, loaded.step) == ("latest", STEPS)
  assert os.path.isdir(best)  # read-only tools move nothing


# --- vocab.json against the checkpoint, in every CLI ---------------------------

def test_edited_vocabulary_refused_by_every_cli_naming_the_file(trained, tmp_path):
  workdir = copy_of(trained, tmp_path)
  vpath = workdir_lib.vocab_path(workdir)
  tokens = json.load(open(vpath))["tokens"]
  json.dump({"tokens": tokens[:4] + [tokens[5], tokens[4]] + tokens[6:]}, open(vpath, "w"))
  swapped = (f"error: {vpath} does not match checkpoint {STEPS} in {workdir}/best "
             f"(vocabulary: vocab.json's {len(tokens)} tokens are not the ones the checkpoint "
             "was trained with (digest ")
  for module, args in (("textvae.evaluate", ["--num_importance_samples=2"]),
                       ("textvae.generate", ["--mode=sample", "--num=2"])):
    proc = run_cli(module, f"--workdir={workdir}", *args, env=cli_env(trained[0]))
    assert proc.returncode == 1, (module, proc.stderr[-3000:])
    assert last_line(proc.stderr).startswith(swapped), (module, proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr and not proc.stdout.strip()
  json.dump({"tokens": tokens + ["zebra"]}, open(vpath, "w"))
  proc = run_cli("textvae.probe", f"--workdir={workdir}", f"--step={STEPS - CKPT_EVERY}",
                 env=cli_env(trained[0]))
  assert proc.returncode == 1, proc.stderr[-3000:]
  assert last_line(proc.stderr) == (
      f"error: {vpath} does not match checkpoint {STEPS - CKPT_EVERY} in {workdir}/checkpoints "
      "(vocabulary: "
      f"vocab.json has {len(tokens) + 1} tokens, the checkpoint {len(tokens)}); restore the "
      "vocab.json it was trained with")
  assert "Traceback" not in proc.stderr
  # Training refuses it too (test_reliability checks its message).
  with pytest.raises(lock.errors.WorkdirError, match="vocab.json has"):
    train.train_and_evaluate(cli_config(trained[0]), workdir)


# --- evaluate on a workdir that cannot be written --------------------------------

def test_evaluate_prints_its_result_before_a_failed_write(trained, tmp_path):
  workdir = copy_of(trained, tmp_path)
  env = cli_env(trained[0])
  env.pop("JAX_COMPILATION_CACHE_DIR")  # nothing else may need writing
  proc = run_cli("textvae.evaluate", f"--workdir={workdir}", "--split=valid",
                 "--num_importance_samples=2", "--reconstruction=false",
                 limit_file_size=64, env=env)
  path = os.path.join(workdir, "eval_valid.json")
  assert proc.returncode == 1, proc.stderr[-3000:]
  assert json.loads(last_line(proc.stdout))["iw_nll"] > 0  # the result, printed
  assert last_line(proc.stderr) == (f"error: could not write {path} (File too large); the "
                                    "result was computed but not saved")
  assert "Traceback" not in proc.stderr
  assert not os.path.exists(path) and not os.path.exists(path + ".tmp")


# --- A checkpoint save that fails -----------------------------------------------

def test_failed_checkpoint_save_stops_training_and_the_rerun_resumes_before_it(
    trained, tmp_path, caplog):
  workdir = copy_of(trained, tmp_path)
  # 32 kB: below every checkpoint's largest array file, above the metric files.
  proc = subprocess.run(cli(workdir, trained[0], **{"train.num_steps": STEPS + 2 * CKPT_EVERY}),
                        cwd=REPO, env=cli_env(trained[0]), capture_output=True, text=True,
                        timeout=300, preexec_fn=lambda: resource.setrlimit(
                            resource.RLIMIT_FSIZE, (32000, 32000)))
  assert proc.returncode == 1, proc.stderr[-3000:]
  # (Orbax's own threads may still report their failed writes after this line.)
  assert (f"error: saving checkpoint {STEPS + CKPT_EVERY} to {workdir}/checkpoints failed "
          "(File too large); training stopped. The checkpoints saved before it are kept: a rerun "
          "resumes from the latest of them") in proc.stderr.splitlines(), proc.stderr[-3000:]
  assert max(metric_steps(workdir)) == STEPS + CKPT_EVERY  # stopped at the failed save
  assert checkpoints.Checkpointer(workdir).all_steps() == [STEPS - CKPT_EVERY, STEPS]
  config = cli_config(trained[0])
  config.train.num_steps = STEPS + 2 * CKPT_EVERY
  with caplog.at_level("INFO"):
    train.train_and_evaluate(config, workdir)  # the rerun, without the limit
  assert f"Resuming from step {STEPS} (checkpoint {workdir}/checkpoints/{STEPS})" in caplog.text
  assert metric_steps(workdir) == list(range(1, STEPS + 2 * CKPT_EVERY + 1))  # each step once


# --- Smaller ------------------------------------------------------------------

def test_nonfinite_stop_on_a_fresh_workdir_says_a_rerun_starts_from_scratch(trained, tmp_path):
  config = cli_config(trained[0])
  config.train.num_steps, config.train.learning_rate = 5, 1e30  # overflows at once
  workdir = str(tmp_path / "w")
  with pytest.raises(train.NonFiniteError) as e:
    train.train_and_evaluate(config, workdir)
  assert str(e.value).endswith(f"No checkpoint was saved yet in {workdir}: a rerun starts "
                               "from scratch")
  assert "None" not in str(e.value)


def test_generate_warns_how_many_inputs_were_cut_to_max_length(trained):
  loaded = restore.load(trained[1])
  max_length = loaded.config.data.max_length
  long = " ".join(["the chef baked a cake ."] * max_length)
  lines, warnings = generate.run(loaded, "reconstruct", inputs=[long, "the chef baked a cake ."])
  assert len(lines) == 2
  assert warnings == [f"1 of 2 input sentences were longer than config.data.max_length="
                      f"{max_length} tokens (</s> included) and were cut to it"]


# --- Two runs preparing one TFDS dataset at once ------------------------------------

PREPARE = """
import os, sys, time
from configs import default
from textvae.data import sources
config = default.get_config()
config.data.tfds_data_dir, config.data.synthetic_num_train = sys.argv[1], 3000
open(sys.argv[2] + "." + str(os.getpid()), "w").close()  # imported: ready
while not os.path.exists(sys.argv[2]):  # both start preparing at the same moment
  time.sleep(0.001)
print(len(sources.load_splits(config.data)["train"].sentences))
"""


def test_two_processes_preparing_one_dataset_at_once_both_succeed(tmp_path):
  go = tmp_path / "go"
  env = dict(os.environ, PYTHONPATH=REPO, JAX_PLATFORMS="cpu")
  procs = [subprocess.Popen([sys.executable, "-c", PREPARE, str(tmp_path / "tfds"), str(go)],
                            cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True) for _ in range(2)]
  for p in procs:
    wait_for(p, lambda p=p: os.path.exists(f"{go}.{p.pid}"), "the imports")
  go.touch()
  outs = [p.communicate(timeout=300) for p in procs]
  for p, (out, err) in zip(procs, outs):
    assert p.returncode == 0, err[-3000:]
    assert last_line(out) == "3000"
  # One prepared it; the other waited for it and read the prepared copy.
  assert sum("downloaded and prepared" in out for out, _ in outs) == 1, outs
