"""Training throughput of the pmapped train step on real batches.

  python benchmarks/train_throughput.py --config=configs/ptb.py:svae \
      --data_dir=../shared/data/ptb --steps=200

Builds the config's data pipeline (length-bucketed grain batches, as in
training), compiles the step for every batch shape that the measured steps will
see, runs `--warmup_passes` untimed passes over the measured batches (the first
pass after compilation is ~15% slower; it is reported as
first_pass_tokens_per_s), then times `--steps` steps, input pipeline included,
at most 2 steps queued as in training. Prints one JSON object as its last line: tokens_per_s (real tokens,
</s> counted, padding excluded), step_ms, compile_s, peak_rss_mb.
"""

import json
import resource
import sys
import time

from absl import app
from absl import flags
import jax
from ml_collections import config_flags

from textvae import allocator
from textvae import models
from textvae import parallel
from textvae import steps
from textvae.data import prepared

config_flags.DEFINE_config_file("config", None, "Training config.", lock_config=True)
_DATA_DIR = flags.DEFINE_string("data_dir", None, "Corpus folder (config.data.source_dir).")
_STEPS = flags.DEFINE_integer("steps", 200, "Steps measured after compilation.")
_SKIP = flags.DEFINE_integer("skip", 0, "Batches skipped before measuring.")
_WARMUP_PASSES = flags.DEFINE_integer(
    "warmup_passes", 1, "Untimed passes over the measured batches after compilation.")
_KEEP_FREED_MEMORY = flags.DEFINE_bool(
    "keep_freed_memory", True, "As textvae.main: glibc malloc keeps freed memory for reuse "
    "(textvae.allocator).")
flags.mark_flag_as_required("config")


def main(argv):
  del argv
  if _KEEP_FREED_MEMORY.value:
    allocator.keep_freed_memory()
  config = flags.FLAGS.config
  if _DATA_DIR.value:
    config.data.source_dir = _DATA_DIR.value
  data = prepared.prepare(config, splits=("train",))  # the training run's batches
  make_iter = lambda: iter(data.train_dataset(batch_size=config.train.batch_size,
                                              seed=config.seed))
  model = models.create_model(config.model, len(data.vocab))
  init_key, train_key = jax.random.split(jax.random.key(config.seed))
  state = steps.place_state(steps.create_train_state(model, init_key, config.train))
  p_step = steps.pmap_train_step(config.train)

  # Compile once per batch shape the measured window will use.
  it = make_iter()
  for _ in range(_SKIP.value):
    next(it)
  measured = [next(it) for _ in range(_STEPS.value)]
  shapes = {}
  for b in measured:
    shapes.setdefault(b["tokens_BxT"].shape, b)
  start = time.time()
  for b in shapes.values():
    state, metrics = p_step(state, parallel.shard(b), train_key)
  jax.block_until_ready(metrics)
  compile_s = time.time() - start
  tokens = sum(int((b["tokens_BxT"] != 0).sum()) for b in measured)
  del measured

  def timed_pass(state):
    it = make_iter()
    for _ in range(_SKIP.value):
      next(it)
    start = time.time()
    in_flight = parallel.DispatchBound()  # as train.py: at most 2 steps queued
    for _ in range(_STEPS.value):
      state, metrics = p_step(state, parallel.shard(next(it)), train_key)
      in_flight.push(metrics)
    jax.block_until_ready((state, metrics))
    return state, time.time() - start

  # The first pass after compilation runs ~15% slower than the following ones
  # on the 2-core CPU (first executions of each executable); a training run
  # lives in the steady state, so that is what is measured.
  first_pass_s = None
  for _ in range(_WARMUP_PASSES.value):
    state, s = timed_pass(state)
    first_pass_s = first_pass_s or s
  state, seconds = timed_pass(state)
  out = {"tokens_per_s": tokens / seconds, "step_ms": 1e3 * seconds / _STEPS.value,
         "compile_s": compile_s, "num_shapes": len(shapes),
         "warmup_passes": _WARMUP_PASSES.value,
         "first_pass_tokens_per_s": tokens / first_pass_s if first_pass_s else None,
         "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
         "steps": _STEPS.value, "tokens": tokens, "devices": jax.device_count(),
         "platform": jax.devices()[0].platform, "jax": jax.__version__}
  sys.stdout.write(json.dumps(out) + "\n")


if __name__ == "__main__":
  app.run(main)
