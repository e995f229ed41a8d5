"""Scale-out on CPU: the same global batches give the same training on 1 device,
on 4 devices, and on 2 OS processes x 2 devices coordinated by jax.distributed
(gloo CPU collectives on 127.0.0.1); checkpoints written by the 2 processes
restore in this single process. The 1-device run goes through launch/local.sh
(end to end, with TEXTVAE_VENV set to this interpreter's virtualenv). The 2
processes run textvae.main through tests/slow_end_main.py, which makes process
0's end-of-run work outlast JAX's shutdown barrier (as on a loaded machine):
both must still exit with status 0.

One module fixture starts the three subprocess runs, trains the 4-device
reference in this process (conftest gives it 4 CPU devices) while they run,
then waits for them: about 45 s of wall time on 2 cores, plus up to the 20 s
that slow_end_main.py adds to process 0's end.
"""

import json
import os
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from configs import default
from configs import override
from tests.helpers import REPO
from tests.helpers import TINY_HELD_OUT
from tests.helpers import xla_flags
from textvae import checkpoints
from textvae import models
from textvae import steps
from textvae import train

NUM_STEPS = 6
TOL = 1e-5
# A tiny config: one padded length (max_length = pad_multiple) so that every run
# compiles one train step; checkpoints at steps 3 and 6.
OVERRIDES = {
    "data.synthetic_num_train": 640, "data.synthetic_num_valid": TINY_HELD_OUT,
    "data.synthetic_num_test": TINY_HELD_OUT, "data.max_length": 24, "data.pad_multiple": 24,
    "model.embed_dim": 16, "model.hidden_dim": 32, "model.latent_dim": 4,
    "train.batch_size": 16, "train.eval_batch_size": 200, "train.learning_rate": 0.01,
    "train.num_steps": NUM_STEPS, "train.log_every_steps": 1,
    "train.eval_every_steps": NUM_STEPS, "train.checkpoint_every_steps": 3,
    "train.kl_schedule.warmup_steps": 30, "train.num_samples": 2,
}


def _config(tfds_dir):
  config = default.get_config()
  config.data.tfds_data_dir = tfds_dir
  return override(config, OVERRIDES)


def _flags(tfds_dir, workdir):
  return (["--config=configs/default.py", f"--config.data.tfds_data_dir={tfds_dir}",
           f"--workdir={workdir}"] + [f"--config.{k}={v}" for k, v in OVERRIDES.items()])


def _env(num_devices, **extra):
  env = dict(os.environ)
  env.update(XLA_FLAGS=xla_flags(num_devices),
             JAX_PLATFORMS="cpu", PYTHONPATH=REPO, **extra)
  for name in ("TEXTVAE_DISTRIBUTED", "JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES",
               "JAX_PROCESS_ID"):
    if name not in extra:
      env.pop(name, None)
  return env


def _free_port():
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _start(cmd, env, log_path):
  log = open(log_path, "w", encoding="utf-8")  # pylint: disable=consider-using-with
  return subprocess.Popen(cmd, env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT), log


def _wait(procs, timeout=900):
  """Waits for every run; `timeout` only guards against a hang (a machine busy
  with other work can take minutes)."""
  deadline = time.time() + timeout
  for name, (proc, log) in procs.items():
    try:
      proc.wait(timeout=max(1, deadline - time.time()))
    except subprocess.TimeoutExpired:
      for p, _ in procs.values():
        p.kill()
    log.close()
  failed = {name: p.returncode for name, (p, _) in procs.items() if p.returncode != 0}
  if failed:
    tails = "\n".join(f"--- {name} ({proc.args[0]}): rc {proc.returncode}\n"
                      + open(log.name, encoding="utf-8").read()[-3000:]
                      for name, (proc, log) in procs.items() if name in failed)
    pytest.fail(f"runs failed: {failed}\n{tails}")


def _losses(workdir):
  with open(os.path.join(workdir, "metrics.jsonl"), encoding="utf-8") as f:
    rows = [json.loads(line) for line in f]
  return {r["step"]: r["train/loss"] for r in rows if "train/loss" in r}


def _restore(config, workdir, step):
  """The checkpoint at `step`, restored in this (single) process."""
  vocab = json.load(open(os.path.join(workdir, "vocab.json"), encoding="utf-8"))["tokens"]
  model = models.create_model(config.model, len(vocab))
  template = steps.create_train_state(model, jax.random.key(123), config.train)
  ckpt = checkpoints.Checkpointer(workdir)
  try:
    state, data, meta = ckpt.restore(step, template)
  finally:
    ckpt.close()
  return state, data, meta


def _leaf_diff(x, y) -> float:
  """Max abs difference; equal infinities (a plateau's initial best) count 0 and a
  NaN or infinity in one tree only counts inf, so no leaf drops out as NaN."""
  x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
  if not x.size:
    return 0.0
  same = (x == y) | (np.isnan(x) & np.isnan(y))
  diff = np.abs(np.where(same, 0.0, x) - np.where(same, 0.0, y))
  return float(np.max(np.nan_to_num(diff, nan=np.inf, posinf=np.inf)))


def _max_abs_diff(a, b):
  return max(jax.tree_util.tree_leaves(jax.tree_util.tree_map(_leaf_diff, a, b)))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
  root = tmp_path_factory.mktemp("scaleout")
  dirs = {name: str(root / name) for name in ("dev4", "dev1", "proc2")}
  tfds = {name: str(root / f"tfds_{name}") for name in dirs}
  start = time.time()
  procs = {}
  procs["dev1"] = _start(
      ["bash", os.path.join(REPO, "launch", "local.sh")] + _flags(tfds["dev1"], dirs["dev1"]),
      _env(1, TEXTVAE_VENV=sys.prefix), root / "dev1.log")
  coordinator = f"127.0.0.1:{_free_port()}"
  for pid in range(2):
    procs[f"proc2_{pid}"] = _start(
        [sys.executable, os.path.join(REPO, "tests", "slow_end_main.py")]
        + _flags(tfds["proc2"], dirs["proc2"]),
        _env(2, JAX_COORDINATOR_ADDRESS=coordinator, JAX_NUM_PROCESSES="2",
             JAX_PROCESS_ID=str(pid)),
        root / f"proc2_{pid}.log")
  assert jax.device_count() == 4, "conftest sets 4 host CPU devices"
  train.train_and_evaluate(_config(tfds["dev4"]), dirs["dev4"])
  _wait(procs)
  dirs["wall_s"] = time.time() - start
  dirs["logs"] = str(root)
  return dirs


def test_one_device_run_via_local_sh_equals_four_devices(runs):
  ref, one = _losses(runs["dev4"]), _losses(runs["dev1"])
  assert sorted(ref) == sorted(one) == list(range(1, NUM_STEPS + 1)), (ref, one)
  loss_diff = max(abs(ref[s] - one[s]) / abs(ref[s]) for s in ref)
  config = _config("")
  p4, _, _ = _restore(config, runs["dev4"], NUM_STEPS)
  p1, _, _ = _restore(config, runs["dev1"], NUM_STEPS)
  param_diff = _max_abs_diff(p4.params, p1.params)
  msg = (f"4 devices {ref}\n1 device  {one}\nloss max rel diff {loss_diff:.3g}, "
         f"params max abs diff {param_diff:.3g} (wall of all runs {runs['wall_s']:.0f} s)")
  print(msg)
  assert loss_diff <= TOL and param_diff <= TOL, msg


def test_two_processes_equal_one_process_and_restore_in_one(runs):
  ref, two = _losses(runs["dev4"]), _losses(runs["proc2"])
  # metrics.jsonl is written by process 0 only: one row per step, not two.
  assert sorted(ref) == sorted(two) == list(range(1, NUM_STEPS + 1)), (ref, two)
  with open(os.path.join(runs["proc2"], "metrics.jsonl"), encoding="utf-8") as f:
    loss_rows = [l for l in f if "train/loss" in l]
  assert len(loss_rows) == NUM_STEPS, f"{len(loss_rows)} train rows: more than process 0 wrote"
  loss_diff = max(abs(ref[s] - two[s]) / abs(ref[s]) for s in ref)

  config = _config("")
  diffs = {}
  for step in (3, NUM_STEPS):  # both checkpoints the 2 processes saved restore here
    s4, data4, meta4 = _restore(config, runs["dev4"], step)
    s2, data2, meta2 = _restore(config, runs["proc2"], step)
    assert int(s2.step) == step == meta2["step"], (int(s2.step), meta2["step"])
    assert data2 == data4, (data2, data4)  # the data iterator's position
    diffs[step] = max(_max_abs_diff(s4.params, s2.params),
                      _max_abs_diff(s4.opt_state, s2.opt_state))
  with open(os.path.join(runs["dev4"], "final_metrics.json"), encoding="utf-8") as f:
    final4 = json.load(f)
  with open(os.path.join(runs["proc2"], "final_metrics.json"), encoding="utf-8") as f:
    final2 = json.load(f)
  elbo_diff = abs(final4["test"]["elbo"] - final2["test"]["elbo"])
  msg = (f"1 process x 4 devices {ref}\n2 processes x 2 devices {two}\n"
         f"loss max rel diff {loss_diff:.3g}; params+optimiser max abs diff by checkpoint "
         f"{ {k: float(f'{v:.3g}') for k, v in diffs.items()} }; test ELBO "
         f"{final4['test']['elbo']:.6f} vs {final2['test']['elbo']:.6f} "
         f"(wall of all runs {runs['wall_s']:.0f} s)")
  print(msg)
  assert loss_diff <= TOL and max(diffs.values()) <= TOL and elbo_diff <= 1e-4, msg
