"""Output layer + loss, forward+backward, N=768 rows, H=256, V=10003."""
import functools, json
import jax, jax.numpy as jnp
import timing
from textvae import models, output_layer
bench = functools.partial(timing.bench, n=20, warmup=3)
N, H, V = 768, 256, 10003
ks = jax.random.split(jax.random.key(0), 5)
h = jax.random.normal(ks[0], (N, H)) * 0.3; W = jax.random.normal(ks[1], (V, H)) * 0.05
b = jax.random.normal(ks[3], (V,)) * 0.1; t = jax.random.randint(ks[2], (N,), 0, V); w = jnp.ones(N) / 32
ref = jax.jit(jax.grad(lambda h, W, b: (w * models.output_nll(h, W, b, t)).sum(), argnums=(0, 1, 2)))
new = jax.jit(jax.grad(lambda h, W, b: output_layer.weighted_nll(h, W, b, t, w)[0], argnums=(0, 1, 2)))
mm = jax.jit(lambda h, W: h @ W.T)
r = {"autodiff logsumexp": bench(ref, h, W, b), "fused (gradient in the forward, blocks of 128)": bench(new, h, W, b),
     "one [768,256]x[256,10003] matmul": bench(mm, h, W)}
print(json.dumps({k: round(v, 2) for k, v in r.items()}))
