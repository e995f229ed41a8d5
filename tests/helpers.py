"""What several test modules share: the repository root, the tiny synthetic
training config, the metrics of a workdir, its final
checkpoint, and the session's one tiny trained workdir."""

import fcntl
import json
import os
import shutil

from configs import default

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Every test process compiles with LLVM's optimisation level 0: compiling the
# tiny models' steps is most of the suite's time, and it halves it (a train
# step: 9 s -> 4.5 s on the 2-core machine). Results agree with level 3's to
# float rounding, not bitwise (three train steps: losses equal to 6 digits),
# so every process of the suite, subprocesses included, uses the same flags;
# the suite never times the programs.
COMPILE_FLAGS = "--xla_backend_optimization_level=0"


def xla_flags(num_devices: int) -> str:
  """XLA_FLAGS of a test subprocess with `num_devices` host CPU devices."""
  return f"--xla_force_host_platform_device_count={num_devices} {COMPILE_FLAGS}"


TINY_HELD_OUT = 200  # sentences in each of tiny_config's valid and test splits


def tiny_config(tmp_path, **train_overrides):
  """configs/default.py at a size that trains 60 steps in seconds."""
  config = default.get_config()
  config.data.tfds_data_dir = str(tmp_path / "tfds")
  config.data.synthetic_num_train = 640
  # Validations and the final test evaluation are much of a tiny run's time.
  config.data.synthetic_num_valid = config.data.synthetic_num_test = TINY_HELD_OUT
  # synthetic's sentences have 9-21 tokens: one padded length, so each
  # program compiles once
  config.data.pad_multiple = 24
  config.model.embed_dim = 16
  config.model.hidden_dim = 32
  config.model.latent_dim = 4
  config.train.batch_size = 16
  config.train.eval_batch_size = 200
  config.train.learning_rate = 1e-2
  config.train.num_steps = 60
  config.train.log_every_steps = 10
  config.train.eval_every_steps = 30
  config.train.checkpoint_every_steps = 20
  config.train.kl_schedule.warmup_steps = 30
  config.train.num_samples = 3
  for k, v in train_overrides.items():
    config.train[k] = v
  return config


def read_metrics(workdir):
  """Every row of W/metrics.jsonl; a line that is not whole JSON fails the test."""
  with open(os.path.join(workdir, "metrics.jsonl"), encoding="utf-8") as f:
    return [json.loads(l) for l in f]


def final_params(config, workdir):
  """(train state, metadata) of the workdir's latest checkpoint."""
  # Imported here, as in tiny_workdir: modules that only need the configs or
  # REPO do not import the training code.
  import jax  # pylint: disable=g-import-not-at-top
  from textvae import checkpoints  # pylint: disable=g-import-not-at-top
  from textvae import models  # pylint: disable=g-import-not-at-top
  from textvae import steps  # pylint: disable=g-import-not-at-top
  with open(os.path.join(workdir, "vocab.json"), encoding="utf-8") as f:
    vocab_size = len(json.load(f)["tokens"])
  model = models.create_model(config.model, vocab_size)
  state = steps.create_train_state(model, jax.random.key(0), config.train)
  ckpt = checkpoints.Checkpointer(workdir)
  restored, _, meta = ckpt.restore(ckpt.latest_step(), state)
  ckpt.close()
  return restored, meta


def built_once(tmp_path_factory, name, build):
  """The folder `name` that `build(folder)` fills, made once per test session
  and shared by the session's xdist workers (their base temporary folders are
  siblings): the first worker to ask builds it while the others wait on a lock;
  a build that failed is started again by the next one to ask. Users must not
  change what is in it (copy it first)."""
  base = tmp_path_factory.getbasetemp()
  shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
  folder, done = shared / name, shared / f"{name}.done"
  with open(shared / f"{name}.lock", "a", encoding="utf-8") as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    try:
      if not done.exists():
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir()
        build(folder)
        done.touch()
    finally:
      fcntl.flock(lock, fcntl.LOCK_UN)
  return folder


def tiny_workdir(tmp_path_factory):
  """A 60-step synthetic VAE, trained once per session (the generation,
  notebook, probe and control tests ask for the same path and reuse it)."""
  from textvae import train  # pylint: disable=g-import-not-at-top

  def build(root):
    config = tiny_config(root, num_steps=60, eval_importance_samples=2, log_every_steps=20,
                         checkpoint_every_steps=60, num_samples=2)
    # The probe tests fit and score classifiers on its valid and test splits.
    config.data.synthetic_num_valid = config.data.synthetic_num_test = 1000
    train.train_and_evaluate(config, str(root / "run"))
  return str(built_once(tmp_path_factory, "tiny_generation_workdir", build) / "run")


def assert_same_training(run_a, run_b):
  """Two runs of the same steps, (losses, final train state) each, e.g. on 1
  and on 4 devices, agree up to the order of float sums, and the steps did
  change the loss."""
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  (losses_a, state_a), (losses_b, state_b) = run_a, run_b
  np.testing.assert_allclose(losses_a, losses_b, rtol=1e-5, atol=1e-5)
  for a, b in ((state_a.params, state_b.params), (state_a.batch_stats, state_b.batch_stats)):
    jax.tree_util.tree_map(lambda x, y: np.testing.assert_allclose(x, y, rtol=2e-5, atol=2e-6),
                           a, b)
  assert losses_a[0] != losses_a[1]
