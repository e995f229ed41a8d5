import sys, time, json, os, resource
import numpy as np, jax
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from step_setup import *
state, m = p(state, sb, tk); jax.block_until_ready(m)  # compiled before timing
from textvae import parallel
mode = os.environ["MODE"]
rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
t0 = time.time()
b = parallel.DispatchBound(int(os.environ.get("DEPTH", 2)))
for _ in range(150):
    state, m = p(state, parallel.shard(batch), tk)
    if mode == "bound": b.push(m)
jax.block_until_ready((state, m))
dt = (time.time() - t0) / 150 * 1e3
print(json.dumps({"mode": mode, "step_ms": round(dt, 1), "rss_before_mb": round(rss0), "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}))
