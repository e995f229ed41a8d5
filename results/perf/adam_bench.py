import sys, time
import jax, jax.numpy as jnp, optax, numpy as np
import timing  # noqa: F401  (the repository on sys.path)
from textvae import optim
V, E, H = 10003, 300, 256
params = {"a": jnp.zeros((V, E)), "b": jnp.zeros((V, E)), "c": jnp.zeros((V, H)), "d": jnp.zeros((E, 3*H)), "e": jnp.zeros((E, 3*H)), "f": jnp.zeros((H, 3*H))}
g = jax.tree.map(lambda p: p + jax.random.normal(jax.random.key(p.size), p.shape), params)
def bench(step, state, n=30):
    for _ in range(3): state = step(state, g)
    jax.block_until_ready(state); t = time.time()
    for _ in range(n): state = step(state, g)
    jax.block_until_ready(state); return (time.time() - t) / n * 1e3, state
tx = optax.chain(optax.clip_by_global_norm(5.0), optax.adam(1e-3))
def s1(st, g):
    p, o = st; u, o = tx.update(g, o, p); return optax.apply_updates(p, u), o
t1, r1 = bench(jax.jit(s1, donate_argnums=0), (params, tx.init(params)))
def s2(st, g):
    p, o = st
    return optim.adam_apply(p, g, o, learning_rate=1e-3, b1=0.9, b2=0.999, scale=optim.clip_factor(g, 5.0))
params = jax.tree.map(jnp.zeros_like, g)
t2, r2 = bench(jax.jit(s2, donate_argnums=0), (params, optax.adam(1e-3).init(params)))
print("optax", t1, "fused", t2)
print(max(float(jnp.abs(a - b).max()) for a, b in zip(jax.tree.leaves(r1[0]), jax.tree.leaves(r2[0]))))
