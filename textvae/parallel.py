"""Devices and hosts: jax.distributed start-up, batch splitting over devices.

One process per host (TPU VM, one GPU box) or one process per GPU (SLURM). Every
process runs the same program; `jax.pmap` maps the step over the process's local
devices and its collectives (`lax.pmean`/`psum` over axis 'batch') span all
devices of all processes. Each process reads only its own contiguous share of
every global batch (`pipeline.process_rows`), process `p`'s rows going to the
global device indices `p * local_device_count + d`, so that a sentence's global
row index, and hence its noise, does not depend on how the batch is split.

Multi-process start-up (`maybe_initialize_distributed`) is asked for with
`--distributed`, `TEXTVAE_DISTRIBUTED=1` or `JAX_COORDINATOR_ADDRESS`. JAX finds
the coordinator, process count and process id itself on Cloud TPU VMs, SLURM,
Open MPI and Kubernetes; elsewhere set `JAX_COORDINATOR_ADDRESS=host:port`,
`JAX_NUM_PROCESSES` and `JAX_PROCESS_ID` on every process.
"""

from __future__ import annotations

import collections
import contextlib
import os

from absl import logging
import jax
import numpy as np

from textvae import errors
ENV_FLAG = "TEXTVAE_DISTRIBUTED"
ENV_NUM_PROCESSES = "JAX_NUM_PROCESSES"
ENV_PROCESS_ID = "JAX_PROCESS_ID"


def distributed_requested(enabled: bool | None = None) -> bool:
  """The flag when given, else the environment."""
  if enabled is not None:
    return bool(enabled)
  return (os.environ.get(ENV_FLAG) == "1"
          or bool(os.environ.get("JAX_COORDINATOR_ADDRESS")))


def maybe_initialize_distributed(enabled: bool | None = None) -> bool:
  """`jax.distributed.initialize()` when asked by flag or by the environment
  (TEXTVAE_DISTRIBUTED=1, or JAX_COORDINATOR_ADDRESS set). Must run before
  anything touches a JAX device. Returns whether it initialised."""
  if not distributed_requested(enabled):
    return False
  kwargs = {}
  for name, key in ((ENV_NUM_PROCESSES, "num_processes"), (ENV_PROCESS_ID, "process_id")):
    value = os.environ.get(name)
    if value:
      try:
        kwargs[key] = int(value)
      except ValueError:
        raise errors.ConfigError(f"{name}={value!r}: expected an integer") from None
  # CPU processes need a cross-process collectives backend (gloo is the default
  # from jax 0.5 on; older versions default to none).
  if jax.config.jax_cpu_collectives_implementation in (None, "", "none"):
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
  jax.distributed.initialize(**kwargs)
  logging.info("jax.distributed: process %d of %d, %d local devices of %d",
               jax.process_index(), jax.process_count(), jax.local_device_count(),
               jax.device_count())
  return True


def sync(name: str) -> None:
  """A barrier over all processes (nothing to do in a single process)."""
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
    multihost_utils.sync_global_devices(name)


@contextlib.contextmanager
def process_zero_first(name: str):
  """Process 0 runs the block first, then the others: for work on shared files
  that must happen once (preparing a TFDS dataset, writing the vocabulary)."""
  if jax.process_index() != 0:
    sync(name)
  try:
    yield
  finally:
    if jax.process_index() == 0:
      sync(name)


def check_global_batch(batch_size: int, name: str = "config.train.batch_size") -> int:
  """Rows per device; a clear error when the global batch does not split evenly."""
  devices = jax.device_count()
  if batch_size % devices:
    raise errors.ConfigError(
        f"{name}={batch_size} does not split evenly over {devices} devices "
        f"({jax.process_count()} processes x {jax.local_device_count()} local); "
        f"use a multiple of {devices}")
  return batch_size // devices


def shard(batch):
  """[B_host, ...] numpy arrays -> [local_devices, B_host / local_devices, ...]."""
  n = jax.local_device_count()
  return jax.tree_util.tree_map(lambda x: np.reshape(x, (n, -1) + x.shape[1:]), batch)


def first_local_copy(tree):
  """Each array's copy on this process's first local device (of a replicated
  array); other leaves unchanged."""
  return jax.tree_util.tree_map(
      lambda x: x.addressable_data(0) if isinstance(x, jax.Array) else x, tree)


class DispatchBound:
  """Keeps at most `depth` dispatched steps unfinished: `push(x)` blocks on the
  output of the step `depth` steps back. The device always has the next steps
  queued (no host sync on the current step), while the host cannot run ahead
  and pile up the outputs (states, metrics) of many steps: without donation
  (CPU, `steps.donate_state`) each queued step holds its own copy of the state,
  and 200 unbounded steps of the svae model peaked at 4.7 GB of memory."""

  def __init__(self, depth: int = 2):
    self.depth = depth
    self._pending = collections.deque()

  def push(self, outputs):
    self._pending.append(outputs)
    if len(self._pending) > self.depth:
      jax.block_until_ready(self._pending.popleft())
