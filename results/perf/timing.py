"""Shared by the microbenchmarks here: the repository on sys.path, and one timer."""
import os
import sys
import time

import jax

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))


def bench(f, *args, n=40, warmup=5):
    """Milliseconds per call of f(*args): one compiling call and `warmup` calls
    untimed, then the mean over n calls."""
    r = f(*args); jax.block_until_ready(r)
    for _ in range(warmup): r = f(*args)
    jax.block_until_ready(r); t = time.time()
    for _ in range(n): r = f(*args)
    jax.block_until_ready(r); return (time.time() - t) / n * 1e3
