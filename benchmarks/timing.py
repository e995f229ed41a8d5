"""The timer of the microbenchmarks here (imported by the scripts beside it)."""

import time

import jax
import numpy as np


def median_ms(fn, args, repeats: int, warmup: int = 1) -> float:
  """Milliseconds per call of fn(*args), the median of `repeats` timed calls
  after one compiling call and `warmup` more untimed calls."""
  jax.block_until_ready(fn(*args))
  for _ in range(warmup):
    jax.block_until_ready(fn(*args))
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    jax.block_until_ready(fn(*args))
    times.append(time.perf_counter() - t0)
  return 1e3 * float(np.median(times))
