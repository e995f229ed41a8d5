"""Devices and hosts: jax.distributed start-up, batch splitting over devices."""

from __future__ import annotations

import os

from absl import logging
import jax
import numpy as np


def maybe_initialize_distributed(enabled: bool | None = None) -> None:
  """`jax.distributed.initialize()` when asked by flag or by the environment
  (TEXTVAE_DISTRIBUTED=1, or JAX_COORDINATOR_ADDRESS set, as on SLURM/TPU VMs)."""
  if enabled is None:
    enabled = (os.environ.get("TEXTVAE_DISTRIBUTED") == "1"
               or bool(os.environ.get("JAX_COORDINATOR_ADDRESS")))
  if enabled:
    jax.distributed.initialize()
    logging.info("jax.distributed: process %d of %d, %d local devices",
                 jax.process_index(), jax.process_count(), jax.local_device_count())


def check_global_batch(batch_size: int, name: str = "config.train.batch_size") -> int:
  """Rows per device; a clear error when the global batch does not split evenly."""
  devices = jax.device_count()
  if batch_size % devices:
    raise ValueError(
        f"{name}={batch_size} does not split evenly over {devices} devices "
        f"({jax.process_count()} processes x {jax.local_device_count()} local); "
        f"use a multiple of {devices}")
  return batch_size // devices


def shard(batch):
  """[B_host, ...] numpy arrays -> [local_devices, B_host / local_devices, ...]."""
  n = jax.local_device_count()
  return jax.tree_util.tree_map(lambda x: np.reshape(x, (n, -1) + x.shape[1:]), batch)
