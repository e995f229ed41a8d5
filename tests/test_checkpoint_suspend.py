"""A checkpoint save survives the process being suspended (SIGSTOP, a
scheduler's preemption) for longer than Orbax's async-save timeout: the save is
synchronous, so no wall-clock deadline can expire while the process is stopped."""

import jax
import jax.numpy as jnp
import numpy as np
from orbax.checkpoint._src.checkpointers import async_checkpointer
from orbax.checkpoint._src.futures import future

from textvae import checkpoints


class _JumpingClock:
  """time.time() that moves 2,000 s per call: every interval Orbax measures
  looks longer than its 1,200 s timeout, as after a long SIGSTOP."""

  def __init__(self):
    self.now = 1.0e9

  def time(self):
    self.now += 2000.0
    return self.now

  def __getattr__(self, name):  # sleep, monotonic, ...: the real ones
    import time  # pylint: disable=g-import-not-at-top
    return getattr(time, name)


def test_save_survives_a_suspension_longer_than_the_async_timeout(tmp_path, monkeypatch):
  state = {"w": jnp.arange(12.0).reshape(3, 4), "step": jnp.asarray(7)}
  clock = _JumpingClock()
  monkeypatch.setattr(future, "time", clock)
  monkeypatch.setattr(async_checkpointer, "time", clock)
  ckpt = checkpoints.Checkpointer(str(tmp_path))
  ckpt.save(7, state, {"epoch": 1}, {"note": "suspended"})
  ckpt.close()
  monkeypatch.undo()
  restored, data, meta = checkpoints.Checkpointer(str(tmp_path)).restore(7, state)
  jax.tree_util.tree_map(np.testing.assert_array_equal, restored, state)
  assert data == {"epoch": 1} and meta == {"note": "suspended"}
