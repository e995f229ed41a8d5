"""One [32, T] PTB-shaped batch, the svae model, its placed state and the pmapped
step, shared by the step benchmarks here (`from step_setup import *`)."""
import os, numpy as np, jax
import timing  # noqa: F401  (the repository on sys.path)
from configs import ptb
from textvae import models, steps, parallel
cfg = ptb.get_config("svae")
V = 10003
T = int(os.environ.get("T", 24))
rng = np.random.default_rng(0)
B = 32
lens = rng.integers(T - 3, T + 1, B)
tok = rng.integers(4, V, (B, T)).astype(np.int32)
for i, l in enumerate(lens):
    tok[i, l:] = 0; tok[i, l - 1] = 2
inp = np.concatenate([np.full((B, 1), 1, np.int32), tok[:, :-1]], 1); inp = np.where(tok == 0, 0, inp)
batch = {"tokens_BxT": tok, "inputs_BxT": inp, "weights_B": np.ones(B, np.float32)}
model = models.create_model(cfg.model, V)
ik, tk = jax.random.split(jax.random.key(0))
state = steps.place_state(steps.create_train_state(model, ik, cfg.train))
p = steps.pmap_train_step(cfg.train)
sb = parallel.shard(batch)
