"""`python -m textvae.main` for tests/test_multiprocess.py's 2-process run, with
process 0's end-of-run work made slower than JAX's shutdown barrier waits (as
on a loaded machine): process 0 sleeps SLOW_END_S after writing its samples,
and the barrier times out after SHUTDOWN_TIMEOUT_S instead of 300 s. Without a
barrier at the end of training, process 1 reaches the shutdown barrier alone
and both processes abort."""

import functools
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# pylint: disable=g-import-not-at-top,wrong-import-position
from absl import app
import jax

from textvae import errors
from textvae import main
from textvae import train

SHUTDOWN_TIMEOUT_S = 15
# Past the barrier's timeout by more than the two processes' skew at the end
# (both write their samples at the same step), so that without the end-of-
# training barrier process 1 waits alone until it times out.
SLOW_END_S = SHUTDOWN_TIMEOUT_S + 5


def _slow_on_process_zero(write_samples):
  @functools.wraps(write_samples)
  def wrapped(*args, **kwargs):
    out = write_samples(*args, **kwargs)
    if jax.process_index() == 0:
      time.sleep(SLOW_END_S)
    return out
  return wrapped


if __name__ == "__main__":
  jax.distributed.initialize = functools.partial(
      jax.distributed.initialize, shutdown_timeout_seconds=SHUTDOWN_TIMEOUT_S)
  train.write_samples = _slow_on_process_zero(train.write_samples)
  app.run(errors.cli_main(main.main), flags_parser=main.parse_flags)
