"""Training CLI runs in subprocesses for the reliability tests: the tiny
config as --config overrides, an environment of 4 CPU devices, and ways to
watch, freeze and SIGKILL a run at a given moment (a checkpoint being
written)."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

from configs import default
from configs import override
from textvae import lock
from tests.helpers import REPO
from tests.helpers import TINY_HELD_OUT
from tests.helpers import built_once
from tests.helpers import xla_flags

TMP_SUFFIX = ".orbax-checkpoint-tmp"

# The CLI run of tests/helpers.py's tiny config (its data, model and
# optimizer, so the same compiled steps), with a metric line per step.
NUM_STEPS, CKPT_EVERY = 50, 10
OVERRIDES = {
    "data.synthetic_num_train": 640, "data.synthetic_num_valid": TINY_HELD_OUT,
    "data.synthetic_num_test": TINY_HELD_OUT, "data.pad_multiple": 24,
    "model.embed_dim": 16, "model.hidden_dim": 32, "model.latent_dim": 4,
    "train.batch_size": 16, "train.eval_batch_size": 200, "train.learning_rate": 1e-2,
    "train.num_steps": NUM_STEPS, "train.log_every_steps": 1,
    "train.eval_every_steps": 1000, "train.checkpoint_every_steps": CKPT_EVERY,
    "train.keep_checkpoints": 2, "train.kl_schedule.warmup_steps": 30,
    "train.num_samples": 3, "train.eval_importance_samples": 2,
}
# Metrics that measure time, not the run.
TIMING = ("tokens_per_s", "steps_per_sec", "uptime", "seconds")


def cli(workdir, tmp_path, **extra):
  args = [sys.executable, "-m", "textvae.main", "--config=configs/default.py",
          f"--workdir={workdir}", f"--config.data.tfds_data_dir={tmp_path / 'tfds'}"]
  args += [f"--config.{k}={v}" for k, v in {**OVERRIDES, **extra}.items()]
  return args


def cli_config(tmp_path):
  """The config that `cli` gives the training process, for in-process runs."""
  config = default.get_config()
  config.data.tfds_data_dir = str(tmp_path / "tfds")
  return override(config, OVERRIDES)


def cli_env(tmp_path):
  env = dict(os.environ)
  # Four devices, as in the pytest processes (tests/conftest.py): a CLI run and
  # an in-process run of the same config then share their compiled programs.
  env.update(JAX_PLATFORMS="cpu", XLA_FLAGS=xla_flags(4))
  # Later runs load the first run's executables: seconds, not tens (the
  # suite's cache, tests/conftest.py, else one of this test's own).
  env.setdefault("JAX_COMPILATION_CACHE_DIR", str(tmp_path / "jax_cache"))
  env.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
  env.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")
  return env


def start(workdir, tmp_path, name, **extra):
  log = open(tmp_path / f"{name}.log", "w")  # pylint: disable=consider-using-with
  return subprocess.Popen(cli(workdir, tmp_path, **extra), cwd=REPO, env=cli_env(tmp_path),
                          stdout=log, stderr=subprocess.STDOUT)


def straight_run(tmp_path_factory):
  """(its tmp folder, its workdir): the CLI run of NUM_STEPS steps straight
  through (checkpoints NUM_STEPS - CKPT_EVERY and NUM_STEPS kept, the final
  validation saved as best), once per session. Its tmp folder holds the TFDS
  data its config names: a copy of the workdir resumes with `cli(copy, that
  folder)` or `cli_config(that folder)`."""
  def build(root):
    proc = start(str(root / "straight"), root, "straight")
    assert proc.wait(timeout=300) == 0, log_text(root, "straight")[-3000:]
  root = built_once(tmp_path_factory, "cli_straight_run", build)
  return root, str(root / "straight")


def log_text(tmp_path, name):
  return (tmp_path / f"{name}.log").read_text()


def ckpt_names(workdir):
  d = os.path.join(workdir, "checkpoints")
  return set(os.listdir(d)) if os.path.isdir(d) else set()


def wait_for(proc, predicate, what, timeout=120):
  deadline = time.time() + timeout
  while not predicate():
    assert proc.poll() is None, f"the run ended (rc {proc.returncode}) before {what}"
    assert time.time() < deadline, f"timed out waiting for {what}"
    time.sleep(0.001)


def is_stopped(pid):
  with open(f"/proc/{pid}/stat") as f:
    return f.read().rsplit(")", 1)[1].split()[0] in ("T", "t")


def kill_while_saving(proc, workdir, step, inside=None):
  """SIGKILLs `proc` while checkpoint `step` is being written: freezes it with
  SIGSTOP once Orbax's temporary folder appears (and holds `inside`, if given),
  checks that the folder is still temporary, then kills. Returns the step it
  caught (the next checkpoint's if `step` was finalised between the two looks)
  and what the temporary folder held; None if the run finished first (its last
  checkpoint finalised between two looks)."""
  while True:
    tmp = f"{step}{TMP_SUFFIX}"
    tmp_dir = os.path.join(workdir, "checkpoints", tmp)
    wait_for(proc, lambda: proc.poll() is not None or tmp in ckpt_names(workdir) and (
        inside is None or os.path.exists(os.path.join(tmp_dir, inside))),
             f"checkpoint {step} being written")
    if proc.poll() is not None:
      assert proc.returncode == 0, f"the run failed (rc {proc.returncode})"
      return None
    os.kill(proc.pid, signal.SIGSTOP)
    while not is_stopped(proc.pid):
      time.sleep(0.001)
    names = ckpt_names(workdir)
    if tmp in names and str(step) not in names:
      contents = sorted(os.listdir(tmp_dir))
      proc.kill()
      proc.wait()
      return step, contents
    os.kill(proc.pid, signal.SIGCONT)  # finalised meanwhile: catch the next one
    step += CKPT_EVERY


def start_and_kill_while_saving(workdir, tmp_path, name, step, inside=None, attempts=5,
                                **extra):
  """Starts run `name` on `workdir` and SIGKILLs it while checkpoint `step` (or
  a later one) is being written (`kill_while_saving`). On a fast machine the
  run's last checkpoint can be finalised between two looks and the run ends:
  the workdir is then put back as it was before the run and the run started
  again, up to `attempts` times. Returns (the killed process, the step caught,
  what the temporary folder held)."""
  before = f"{workdir}.before_{name}"
  if os.path.exists(workdir):
    shutil.copytree(workdir, before, symlinks=True)
  for _ in range(attempts):
    proc = start(workdir, tmp_path, name, **extra)
    caught = kill_while_saving(proc, workdir, step, inside)
    if caught is not None:
      shutil.rmtree(before, ignore_errors=True)
      return (proc, *caught)
    shutil.rmtree(workdir)
    if os.path.exists(before):
      shutil.copytree(before, workdir, symlinks=True)
  raise AssertionError(f"run {name} finished before checkpoint {step} could be caught being "
                       f"written, {attempts} times")


def metrics_by_step(workdir):
  """{(step, metric): value}, the last occurrence of each, as a reader of a
  resumed run's metrics.jsonl takes them; every line must be whole JSON."""
  out = {}
  with open(os.path.join(workdir, "metrics.jsonl"), encoding="utf-8") as f:
    for line in f:
      row = json.loads(line)
      for k, v in row.items():
        if k != "step" and not k.endswith(TIMING):
          out[(row["step"], k)] = v
  return out


def assert_took_over_lock_of(killed, workdir, tmp_path, name):
  """The killed run's lock was left behind, and run `name` took it over."""
  assert (f"Taking over the stale lock {lock.lock_path(workdir)} of a run that is no longer "
          f"running (PID {killed.pid} on host") in log_text(tmp_path, name)


def count_lines(workdir, step):
  with open(os.path.join(workdir, "metrics.jsonl"), encoding="utf-8") as f:
    return sum(1 for l in f if json.loads(l)["step"] == step and "train/loss" in l)
