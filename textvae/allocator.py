"""glibc malloc settings for XLA:CPU's per-step buffers.

Every execution of a compiled step allocates its temporaries (about 110 MB for
the PTB LSTM VAE step) and its outputs afresh and frees them at the end. glibc
serves allocations over its mmap threshold (at most 32 MB) with a new mmap and
unmaps them on free, so each step writes to fresh pages: about 9,000 page
faults per step on the 2-core CPU, 15% of its time (results/perf.md). With
mmap off and the heap never trimmed below 1 GiB of free space, freed buffers
are reused by the next step. Peak memory is unchanged in that measurement;
memory the process freed is kept for reuse instead of going back to the OS.

The settings change only where memory comes from, not any computed value.
Called by the entry points (training, evaluation, the benchmarks), never on
import.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import platform

from absl import logging

# mallopt parameters, <malloc.h>
M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
TRIM_THRESHOLD_BYTES = 1 << 30


def keep_freed_memory() -> bool:
  """Turns off glibc's mmap for large allocations and its trimming of the heap
  (`mallopt`). False, and nothing changed (with a warning), where the C library
  is not glibc."""
  if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
    logging.warning("keep_freed_memory: not a glibc system, malloc left as it is")
    return False
  libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
  mallopt = libc.mallopt
  mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
  mallopt.restype = ctypes.c_int
  # mallopt returns 1 on success, 0 on a bad parameter or value.
  return bool(mallopt(M_MMAP_MAX, 0)) and bool(mallopt(M_TRIM_THRESHOLD,
                                                        TRIM_THRESHOLD_BYTES))
