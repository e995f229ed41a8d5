import sys, time, json, os, functools
import numpy as np, jax
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from step_setup import *
def run(p, state, N=60):
    for _ in range(5): state, m = p(state, sb, tk)
    jax.block_until_ready(m); t0 = time.time()
    for _ in range(N): state, m = p(state, sb, tk)
    jax.block_until_ready((state, m)); return (time.time() - t0) / N * 1e3
nod = jax.pmap(functools.partial(steps.train_step, train_config=cfg.train), axis_name="batch", in_axes=(None, 0, None), out_axes=(None, 0))
r = {"donate": [], "no_donate": []}
for i in range(3):
    for name, fn in (("donate", p), ("no_donate", nod)):
        r[name].append(round(run(fn, steps.place_state(steps.create_train_state(model, ik, cfg.train))), 1))
print(json.dumps({"T": T, **r, "median_donate": float(np.median(r["donate"])), "median_no_donate": float(np.median(r["no_donate"]))}))
