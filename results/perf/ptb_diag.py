import sys, time, json, collections
import numpy as np, jax
import timing  # noqa: F401  (the repository on sys.path)
from configs import ptb
from textvae import models, parallel, steps
from textvae.data import pipeline, sources, vocab as vocab_lib
cfg = ptb.get_config("svae"); cfg.data.source_dir = "/work/shared/data/ptb"
corpus = sources.load_splits(cfg.data, splits=("train",))["train"]
vocab = vocab_lib.Vocabulary.build(corpus.sentences, max_size=cfg.data.vocab_size, min_count=cfg.data.min_count)
split = pipeline.encode("train", corpus.sentences, vocab, cfg.data.max_length)
it = iter(pipeline.train_dataset(split, global_batch_size=32, seed=cfg.seed, pad_multiple=cfg.data.pad_multiple, pool_batches=cfg.data.pool_batches))
S = int(sys.argv[1]) if len(sys.argv) > 1 else 200
batches = [next(it) for _ in range(S)]
Ts = collections.Counter(b["tokens_BxT"].shape[1] for b in batches)
real = sum(int((b["tokens_BxT"] != 0).sum()) for b in batches); padded = sum(b["tokens_BxT"].size for b in batches)
print("pad_multiple", cfg.data.pad_multiple, "shapes", len(Ts), "real", real, "padded", padded, "mean T", np.mean([b["tokens_BxT"].shape[1] for b in batches]))
model = models.create_model(cfg.model, len(vocab))
ik, tk = jax.random.split(jax.random.key(0))
state = steps.place_state(steps.create_train_state(model, ik, cfg.train))
p = steps.pmap_train_step(cfg.train)
sharded = [parallel.shard(b) for b in batches]
seen = {}
for b in sharded:
    if b["tokens_BxT"].shape not in seen:
        state, m = p(state, b, tk); seen[b["tokens_BxT"].shape] = 1
jax.block_until_ready(m)
t0 = time.time()
for b in sharded: state, m = p(state, b, tk)
jax.block_until_ready((state, m)); dt = time.time() - t0
print("preloaded: tok/s", real / dt, "step_ms", dt / S * 1e3)
# time per shape
by = collections.defaultdict(list)
for b in sharded[:60]:
    t0 = time.time(); state, m = p(state, b, tk); jax.block_until_ready(m); by[b["tokens_BxT"].shape[-1]].append(time.time() - t0)
for T in sorted(by)[:: max(1, len(by) // 8)]:
    print("T", T, "ms", round(1e3 * np.median(by[T]), 1), "ms/token-slot", round(1e3 * np.median(by[T]) / (32 * T), 3))
