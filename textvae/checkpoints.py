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

A step that cannot be restored (a folder made by hand, a truncated array file,
an emptied metadata file) does not block the others: `restore_newest` falls
back to the newest step that restores, and a training run (the workdir's lock
holder) moves the unreadable ones aside to `<directory>.corrupt/<step>`.
"""

from __future__ import annotations

import contextlib
import os
import re

from absl import logging
import jax
import numpy as np
import orbax.checkpoint as ocp

from textvae import errors
from textvae import models
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


class SaveError(errors.UserError, OSError):
  """A checkpoint could not be written (a full or read-only disk); the
  checkpoints written before it are kept."""


# Status codes with which TensorStore reports a failed file operation.
_TENSORSTORE_IO = ("OUT_OF_RANGE", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "DATA_LOSS",
                   "UNAVAILABLE", "NOT_FOUND", "FAILED_PRECONDITION")


def _io_error(error: BaseException) -> str | None:
  """What the operating system said, when `error` (or its cause) is a failed
  file operation; None for any other error."""
  seen = set()
  while error is not None and id(error) not in seen:
    seen.add(id(error))
    if isinstance(error, OSError):
      return error.strerror or str(error)
    code = re.search(r"os_error_code='?(\d+)", str(error))
    if code:
      return os.strerror(int(code.group(1)))
    if isinstance(error, ValueError) and str(error).startswith(_TENSORSTORE_IO):
      return error_summary(error)
    error = error.__cause__ or error.__context__
  return None


class Checkpointer:
  """Saves and restores `{state, data, meta}` under `workdir/checkpoints` (or
  `workdir/<subdir>`: `best` holds the model selected on validation data)."""

  def __init__(self, workdir: str, max_to_keep: int = 3, subdir: str = "checkpoints"):
    self.directory = os.path.join(os.path.abspath(workdir), subdir)
    self._saving = None  # the step of the latest save
    # Synchronous saves: `save` waits for each one anyway, and an async save runs
    # on a wall-clock deadline (1,200 s) that a suspended process (SIGSTOP, a
    # scheduler's preemption) overruns, failing a save that was nearly written.
    self.manager = ocp.CheckpointManager(
        self.directory,
        options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True,
                                             enable_async_checkpointing=False))

  def latest_step(self) -> int | None:
    return self.manager.latest_step()

  def all_steps(self) -> list[int]:
    return list(self.manager.all_steps())

  def save(self, step: int, state, data_state: dict, meta: dict) -> None:
    """Writes step `step` and waits until it is on disk, so that a save that
    cannot be written stops the run (SaveError) before it takes another step,
    not at the next save, possibly hours later."""
    self._saving = step
    with self._save_errors():
      self.manager.save(step, args=ocp.args.Composite(
          state=ocp.args.StandardSave(_to_global(state)),
          data=ocp.args.JsonSave(data_state),
          meta=ocp.args.JsonSave(meta)))
      self.manager.wait_until_finished()

  @contextlib.contextmanager
  def _save_errors(self):
    try:
      yield
    except Exception as e:  # pylint: disable=broad-except
      detail = _io_error(e)
      if detail is None:
        raise  # not the disk: a bug, with its traceback
      raise SaveError(
          f"saving checkpoint {self._saving} to {self.directory} failed ({detail}); "
          "training stopped. The checkpoints saved before it are kept: a rerun resumes "
          "from the latest of them") from e

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
    target = models.variables(params_like, batch_stats_like)
    out = self.manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.PyTreeRestore(
            _restore_target(target),
            restore_args=ocp.checkpoint_utils.construct_restore_args(_restore_target(target)),
            partial_restore=True)))
    return _to_local(out.state)

  def delete(self, step: int) -> None:
    self.manager.delete(step)

  def step_path(self, step: int) -> str:
    return os.path.join(self.directory, str(step))

  def move_aside(self, step: int) -> str:
    """Renames step `step` (kept for inspection, not deleted) to
    `<directory>.corrupt/<step>`; returns its new path."""
    target_dir = self.directory + ".corrupt"
    target = os.path.join(target_dir, str(step))
    if jax.process_index() == 0:
      os.makedirs(target_dir, exist_ok=True)
      n = 0
      while os.path.exists(target):  # the same step moved aside before
        n += 1
        target = os.path.join(target_dir, f"{step}.{n}")
      os.rename(self.step_path(step), target)
    parallel.sync(f"moved_aside_{step}")
    self.manager.reload()
    return target

  def restore_meta(self, step: int) -> dict:
    return self.manager.restore(step, args=ocp.args.Composite(
        meta=ocp.args.JsonRestore())).meta

  def wait_until_finished(self) -> None:
    with self._save_errors():
      self.manager.wait_until_finished()

  def close(self) -> None:
    self.wait_until_finished()
    self.manager.close()


def error_summary(error: Exception) -> str:
  lines = str(error).strip().splitlines()
  text = lines[0] if lines else ""
  return f"{type(error).__name__}: {text[:300]}"


def restore_newest(ckpt: Checkpointer, restore_step, move_aside: bool):
  """(step, restore_step(step)) for the newest of `ckpt`'s steps that restores;
  None when it has none. Each newer step that fails is named in a warning and,
  with `move_aside` (the run that holds the workdir's lock), moved aside. When
  no step restores, the newest one's error is raised and nothing is moved (a
  bug, or nothing left to fall back to). A UserError (e.g. a vocabulary that
  fits no checkpoint) is raised at once."""
  failed = []
  for step in sorted(ckpt.all_steps(), reverse=True):
    try:
      out = restore_step(step)
    except errors.UserError:
      raise
    except Exception as e:  # pylint: disable=broad-except  # whatever unreadable files raise
      failed.append((step, e))
      continue
    for bad, e in failed:
      where = ckpt.step_path(bad)
      if move_aside:
        logging.warning("Checkpoint %s cannot be restored (%s); moved it aside to %s and "
                        "resuming from step %d", where, error_summary(e), ckpt.move_aside(bad),
                        step)
      else:
        logging.warning("Checkpoint %s cannot be restored (%s); using step %d instead",
                        where, error_summary(e), step)
    return step, out
  if failed:
    step, e = failed[0]
    e.add_note(f"No step of {ckpt.directory} could be restored (tried "
               f"{', '.join(str(s) for s, _ in failed)}); the error above is step {step}'s.")
    raise e
  return None
