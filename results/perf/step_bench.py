import sys, time, json, os
import jax
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from step_setup import *
t0 = time.time(); state, m = p(state, sb, tk); jax.block_until_ready(m); c = time.time() - t0
for _ in range(5): state, m = p(state, sb, tk)
jax.block_until_ready(m)
N = 40; t0 = time.time()
for _ in range(N): state, m = p(state, sb, tk)
jax.block_until_ready((state, m)); dt = (time.time() - t0) / N
ntok = int((tok != 0).sum())
print(json.dumps({"T": T, "step_ms": dt * 1e3, "tok_per_s": ntok / dt, "compile_s": c, "ntok": ntok}))
