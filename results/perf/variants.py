"""Step-time variants on one [32, T] batch: donation off, host sync per step."""
import sys, time, json, os, functools
import numpy as np, jax
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from step_setup import *
def run(p, state, sync, N=40):
    for _ in range(5): state, m = p(state, sb, tk)
    jax.block_until_ready(m); t0 = time.time()
    for _ in range(N):
        state, m = p(state, sb, tk)
        if sync: float(m["loss"][0])
    jax.block_until_ready((state, m)); return (time.time() - t0) / N * 1e3
nodonate = jax.pmap(functools.partial(steps.train_step, train_config=cfg.train), axis_name="batch",
                    in_axes=(None, 0, None), out_axes=(None, 0))
res = {}
for name, fn, sync in [("default", p, False), ("host_sync_each_step", p, True), ("no_donation", nodonate, False), ("default_again", p, False)]:
    st = steps.place_state(steps.create_train_state(model, ik, cfg.train))
    res[name] = round(run(fn, st, sync), 1)
print(json.dumps({"T": T, **res}))
