"""Orbax CheckpointManager: train state + data-iterator state + metadata (JSON).

Orbax writes each step to a temporary folder and renames it when complete, so a
crash while saving never leaves a checkpoint that `latest_step` would pick up.

Several processes (multi-host): every process calls `save` and `restore`, with
a workdir on a filesystem they all see. The state the training loop hands over
is host-local (unreplicated from `pmap`); Orbax refuses to save host-local
arrays across processes, so they are first made one global, fully replicated
array over all devices (process 0 writes it), and restored the same way, then
handed back host-local. A checkpoint saved by N processes restores in one, and
the other way round.
"""

from __future__ import annotations

import os

import jax
import numpy as np
import orbax.checkpoint as ocp

from textvae import parallel


def _replicated_sharding():
  mesh = jax.sharding.Mesh(np.asarray(jax.devices()), ("replica",))
  return jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())


def _to_global(tree):
  """Host-local replicated arrays -> global fully replicated arrays (multi-process only)."""
  if jax.process_count() == 1:
    return tree
  sharding = _replicated_sharding()

  def to_global(x):
    if not isinstance(x, jax.Array):
      return x
    host = np.asarray(x)  # device-to-host copy only: no cross-device computation
    return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])
  return jax.tree_util.tree_map(to_global, tree)


def _restore_target(state_like):
  if jax.process_count() == 1:
    return jax.tree_util.tree_map(ocp.utils.to_shape_dtype_struct, state_like)
  sharding = _replicated_sharding()

  def global_struct(x):
    s = ocp.utils.to_shape_dtype_struct(x)
    if not isinstance(s, jax.ShapeDtypeStruct):  # a Python scalar (TrainState.step at init)
      return s
    return jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sharding)
  return jax.tree_util.tree_map(global_struct, state_like)


def _to_local(tree):
  """Global replicated arrays -> this process's copy on its first local device."""
  if jax.process_count() == 1:
    return tree
  return parallel.first_local_copy(tree)


class Checkpointer:
  """Saves and restores `{state, data, meta}` under `workdir/checkpoints` (or
  `workdir/<subdir>`: `best` holds the model selected on validation data)."""

  def __init__(self, workdir: str, max_to_keep: int = 3, subdir: str = "checkpoints"):
    self.directory = os.path.join(os.path.abspath(workdir), subdir)
    self.manager = ocp.CheckpointManager(
        self.directory,
        options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True))

  def latest_step(self) -> int | None:
    return self.manager.latest_step()

  def all_steps(self) -> list[int]:
    return list(self.manager.all_steps())

  def save(self, step: int, state, data_state: dict, meta: dict) -> None:
    self.manager.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(_to_global(state)),
        data=ocp.args.JsonSave(data_state),
        meta=ocp.args.JsonSave(meta)))

  def restore(self, step: int, state_like):
    """Restores into the structure of `state_like` (arrays or shape structs)."""
    target = _restore_target(state_like)
    out = self.manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(target),
        data=ocp.args.JsonRestore(),
        meta=ocp.args.JsonRestore()))
    return _to_local(out.state), out.data, out.meta

  def restore_variables(self, step: int, params_like, batch_stats_like=None) -> dict:
    """Only the model's variables ({'params'[, 'batch_stats']}) of a checkpoint's
    state, whatever its optimizer state looks like: what evaluation and
    generation need, and robust to optimizer changes between versions."""
    target = {"params": params_like}
    if batch_stats_like:
      target["batch_stats"] = batch_stats_like
    out = self.manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.PyTreeRestore(
            _restore_target(target),
            restore_args=ocp.checkpoint_utils.construct_restore_args(_restore_target(target)),
            partial_restore=True)))
    return _to_local(out.state)

  def delete(self, step: int) -> None:
    self.manager.delete(step)

  def restore_meta(self, step: int) -> dict:
    return self.manager.restore(step, args=ocp.args.Composite(
        meta=ocp.args.JsonRestore())).meta

  def wait_until_finished(self) -> None:
    self.manager.wait_until_finished()

  def close(self) -> None:
    self.manager.wait_until_finished()
    self.manager.close()
