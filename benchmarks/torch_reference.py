"""Plain-PyTorch reference of textvae's training step, for a throughput comparison.

  pip install torch==2.13.0   # or: pip install -e .[bench]; the CPU build here
  PYTHONPATH=. python benchmarks/torch_reference.py --config=configs/ptb.py:svae \
      --data_dir=../shared/data/ptb --steps=200
  PYTHONPATH=. python benchmarks/torch_reference.py --config=configs/ptb.py:svae \
      --data_dir=../shared/data/ptb --steps=200 --compare --repeats=3

The model of textvae.models.TextVAE in PyTorch: separate encoder and decoder
embeddings, nn.GRU or nn.LSTM encoder (config.model.cell) over the packed target
tokens whose last state gives mu and logvar, z = mu + exp(logvar / 2) eps,
decoder state h0 = tanh(W z + b) (LSTM: c0 = W z + b, h0 = tanh(c0)), decoder
RNN over packed [dropout(embedding(inputs)); z], output dropout and the output
layer on the packed (real) positions only; loss = (summed token NLL + beta * KL)
/ B with textvae's linear KL warm-up, global gradient-norm clipping and Adam or
SGD from config.train. `kind = 'lm'`: the decoder alone.
It trains on exactly textvae's batches (the config's length-bucketed grain
pipeline, `--skip` as in benchmarks/train_throughput.py).

`--warmup` steps run first (their wall time is reported as compile_s); then the
iterator is rebuilt and `--steps` steps are timed, the numpy-to-tensor
conversion and the input pipeline included. Prints one JSON object as its last
line, with the keys of benchmarks/train_throughput.py: tokens_per_s (real
tokens, </s> counted, padding excluded), step_ms, compile_s, peak_rss_mb.

`--compare` runs benchmarks/train_throughput.py and this script (without
--compare) alternately, `--repeats` times each, one subprocess at a time with
the same config, data and steps, and prints the medians and their ratio
(textvae / torch) as its last line, with `other_cores` per run: the cores that
other processes used meanwhile. Both sides run with the same glibc malloc
settings (`--keep_freed_memory`, textvae.allocator, on by default as in
textvae.main); textvae's repeats share a persistent compilation cache.
Compare on an otherwise idle machine: with threads = cores, PyTorch's OpenMP
steps slow down several times as soon as another process takes a core (on 2
cores: 4,400 -> 600 tokens/s).
"""

import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

from absl import app
from absl import flags
from ml_collections import config_flags
import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils import rnn as rnn_utils

from textvae import allocator
from textvae.data import prepared
from textvae.data import vocab as vocab_lib

FLAGS = flags.FLAGS


def define_flags():
  """Defined only when run as a program (tests import the module)."""
  config_flags.DEFINE_config_file("config", "configs/ptb.py:svae", "Training config.",
                                  lock_config=True)
  flags.DEFINE_string("data_dir", None, "Corpus folder (config.data.source_dir).")
  flags.DEFINE_integer("steps", 200, "Steps measured after the warm-up.")
  flags.DEFINE_integer("skip", 0, "Batches skipped before measuring.")
  flags.DEFINE_integer("warmup", 10, "Untimed steps before measuring.")
  flags.DEFINE_bool("compare", False, "Run train_throughput.py and this script alternately.")
  flags.DEFINE_integer("repeats", 3, "--compare: runs of each.")
  flags.DEFINE_bool("keep_freed_memory", True, "glibc malloc keeps freed memory for reuse "
                    "(textvae.allocator, as textvae.main); --compare runs both sides so.")


class SentenceVAE(nn.Module):
  """textvae.models.TextVAE (or RNNLM, `latent_dim == 0`) with nn.GRU or nn.LSTM
  over packed sequences. LSTM: the decoder's c0 = W z + b, h0 = tanh(c0) (as
  textvae's cells and the papers' code); dropout on the decoder's input
  embeddings and its output states (nn.Dropout, as the papers' code)."""

  def __init__(self, vocab_size, embed_dim, hidden_dim, latent_dim, cell="gru",
               embed_dropout=0.0, output_dropout=0.0, output_bias=True):
    super().__init__()
    rnn = {"gru": nn.GRU, "lstm": nn.LSTM}[cell]
    self.cell, self.latent_dim = cell, latent_dim
    if latent_dim:
      self.enc_embed = nn.Embedding(vocab_size, embed_dim)
      self.enc_rnn = rnn(embed_dim, hidden_dim, batch_first=True)
      self.posterior = nn.Linear(hidden_dim, 2 * latent_dim)
      self.init_state = nn.Linear(latent_dim, hidden_dim)
    self.dec_embed = nn.Embedding(vocab_size, embed_dim)
    self.dec_rnn = rnn(embed_dim + latent_dim, hidden_dim, batch_first=True)
    self.output = nn.Linear(hidden_dim, vocab_size, bias=output_bias)
    self.dropout_in = nn.Dropout(embed_dropout)
    self.dropout_out = nn.Dropout(output_dropout)

  def forward(self, tokens_BxT, inputs_BxT, lengths_B):
    """Summed NLL of the real target tokens and summed KL, over the batch."""
    pack = lambda x: rnn_utils.pack_padded_sequence(
        x, lengths_B, batch_first=True, enforce_sorted=False)
    x = self.dropout_in(self.dec_embed(inputs_BxT))
    state0 = None
    kl = torch.zeros(())
    if self.latent_dim:
      _, last = self.enc_rnn(pack(self.enc_embed(tokens_BxT)))  # batch order
      h_last = last[0] if self.cell == "lstm" else last
      mu, logvar = self.posterior(h_last[0]).chunk(2, dim=-1)
      z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
      v = self.init_state(z)[None]
      state0 = (torch.tanh(v), v) if self.cell == "lstm" else torch.tanh(v)
      T = inputs_BxT.shape[1]
      x = torch.cat([x, z[:, None, :].expand(-1, T, -1)], dim=-1)
      kl = 0.5 * torch.sum(mu.square() + logvar.exp() - 1.0 - logvar)
    hs, _ = self.dec_rnn(pack(x), state0)
    logits = self.output(self.dropout_out(hs.data))
    nll = F.cross_entropy(logits, pack(tokens_BxT).data, reduction="sum")
    return nll, kl


def linear_kl_weight(step, schedule):
  """textvae.objectives.kl_weight's linear warm-up (beta does not change speed)."""
  if schedule.warmup_steps <= 0:
    return schedule.max_weight
  return schedule.max_weight * min(1.0, step / schedule.warmup_steps)


def train_batches(config, skip=0):
  """The vocabulary size and a function giving a fresh iterator over the
  config's training batches, `skip` batches in (as train_throughput.py)."""
  data = prepared.prepare(config, splits=("train",))  # the training run's batches

  def make_iter():
    it = iter(data.train_dataset(batch_size=config.train.batch_size, seed=config.seed))
    for _ in range(skip):
      next(it)
    return it
  return len(data.vocab), make_iter


def benchmark(config, *, steps, warmup=10, skip=0):
  threads = os.cpu_count()
  torch.set_num_threads(threads)
  torch.manual_seed(config.seed)
  vocab_size, make_iter = train_batches(config, skip)
  m, t = config.model, config.train
  model = SentenceVAE(vocab_size, m.embed_dim, m.hidden_dim,
                      m.latent_dim if m.kind == "vae" else 0, cell=m.get("cell", "gru"),
                      embed_dropout=m.embed_dropout,
                      output_dropout=m.get("output_dropout", 0.0))
  model.train()
  params = list(model.parameters())
  if t.get("optimizer", "adam") == "sgd":
    optimizer = torch.optim.SGD(params, lr=t.learning_rate)
  else:
    optimizer = torch.optim.Adam(params, lr=t.learning_rate, betas=(t.adam_b1, t.adam_b2))
  step = 0

  def train_step(batch):
    nonlocal step
    tokens = torch.from_numpy(batch["tokens_BxT"]).long()
    inputs = torch.from_numpy(batch["inputs_BxT"]).long()
    lengths = (tokens != vocab_lib.PAD_ID).sum(1)
    nll, kl = model(tokens, inputs, lengths)
    loss = (nll + linear_kl_weight(step, t.kl_schedule) * kl) / tokens.shape[0]
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if t.grad_clip > 0:
      nn.utils.clip_grad_norm_(params, t.grad_clip)
    optimizer.step()
    step += 1
    return nll, int(lengths.sum())

  it = make_iter()
  first_nll_per_token = None
  start = time.time()
  for i in range(warmup):
    nll, n = train_step(next(it))
    if i == 0:
      first_nll_per_token = nll.item() / n
  compile_s = time.time() - start

  it = make_iter()
  tokens = 0
  start = time.time()
  for _ in range(steps):
    nll, n = train_step(next(it))
    tokens += n
  last_nll_per_token = nll.item() / n  # CPU ops are synchronous: nothing left to wait for
  seconds = time.time() - start
  return {"tokens_per_s": tokens / seconds, "step_ms": 1e3 * seconds / steps,
          "compile_s": compile_s,
          "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
          "steps": steps, "tokens": tokens, "warmup": warmup, "framework": "torch",
          "torch": torch.__version__, "threads": threads, "vocab_size": vocab_size,
          "first_nll_per_token": first_nll_per_token,
          "last_nll_per_token": last_nll_per_token}


def _busy_cpu_s():
  """CPU seconds used by every process on the machine so far (Linux), or None."""
  try:
    with open("/proc/stat", encoding="ascii") as f:
      user, nice, system = map(int, f.readline().split()[1:4])
  except (OSError, ValueError):
    return None
  return (user + nice + system) / os.sysconf("SC_CLK_TCK")


def _children_cpu_s():
  usage = resource.getrusage(resource.RUSAGE_CHILDREN)
  return usage.ru_utime + usage.ru_stime


def _last_json(cmd, env):
  """The command's last stdout line as JSON, with `other_cores`: the cores that
  other processes kept busy on average while it ran (contention makes the
  PyTorch build's 2-thread OpenMP steps several times slower)."""
  busy, own, start = _busy_cpu_s(), _children_cpu_s(), time.time()
  out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True, env=env).stdout
  result = json.loads(out.strip().splitlines()[-1])
  if busy is not None:
    other = _busy_cpu_s() - busy - (_children_cpu_s() - own)
    result["other_cores"] = max(0.0, other) / (time.time() - start)
  return result


def compare(config_args, *, steps, repeats, warmup=10, skip=0, data_dir=None,
            keep_freed_memory=True):
  """train_throughput.py and this script alternately, `repeats` times each, one
  subprocess at a time; `config_args` are the --config flags passed to both."""
  here = os.path.dirname(os.path.abspath(__file__))
  env = dict(os.environ, PYTHONPATH=os.pathsep.join(
      p for p in (os.path.dirname(here), os.environ.get("PYTHONPATH")) if p))
  # textvae's runs share JAX's persistent compilation cache: the repeats load the
  # executables the first run compiled (~4 minutes for the LSTM step's 46
  # shapes) instead of compiling them again. Compilation is not timed either way.
  cache = tempfile.TemporaryDirectory(prefix="textvae_compare_cache_")
  textvae_env = dict(env, JAX_COMPILATION_CACHE_DIR=cache.name,
                     JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0")
  common = list(config_args) + [f"--steps={steps}", f"--skip={skip}",
                                f"--keep_freed_memory={keep_freed_memory}"]
  if data_dir:
    common.append(f"--data_dir={data_dir}")
  commands = {
      "textvae": [sys.executable, os.path.join(here, "train_throughput.py")] + common,
      # The same warm-up for both: textvae runs one untimed pass over the measured
      # batches after compiling (train_throughput.py --warmup_passes=1), PyTorch
      # runs as many untimed steps (measured: its speed does not change after the
      # first 10; 4,289 tokens/s after 200 warm-up steps).
      "torch": [sys.executable, os.path.abspath(__file__),
                f"--warmup={max(warmup, steps)}"] + common}
  runs = {"textvae": [], "torch": []}
  try:
    for i in range(repeats):
      for name, cmd in commands.items():
        runs[name].append(_last_json(cmd, textvae_env if name == "textvae" else env))
        # Each run as it ends: a comparison stopped early keeps the runs it made.
        print(f"{name} run {i + 1}/{repeats}: {json.dumps(runs[name][-1])}", file=sys.stderr,
              flush=True)
  finally:  # a failed run leaves no cache of compiled programs behind
    cache.cleanup()
  token_counts = {r["tokens"] for rs in runs.values() for r in rs}
  if len(token_counts) != 1:
    raise RuntimeError(f"the two benchmarks measured different batches: tokens {token_counts}")
  median = lambda name, key: statistics.median(r[key] for r in runs[name])
  tv, pt = median("textvae", "tokens_per_s"), median("torch", "tokens_per_s")
  return {"textvae_tokens_per_s_median": tv, "torch_tokens_per_s_median": pt,
          "ratio": tv / pt,
          "textvae_runs": [r["tokens_per_s"] for r in runs["textvae"]],
          "torch_runs": [r["tokens_per_s"] for r in runs["torch"]],
          "textvae_step_ms_median": median("textvae", "step_ms"),
          "torch_step_ms_median": median("torch", "step_ms"),
          "textvae_other_cores": [r.get("other_cores") for r in runs["textvae"]],
          "torch_other_cores": [r.get("other_cores") for r in runs["torch"]],
          "steps": steps, "skip": skip, "tokens": token_counts.pop(), "repeats": repeats,
          "keep_freed_memory": keep_freed_memory,
          "jax": runs["textvae"][0]["jax"], "torch": runs["torch"][0]["torch"],
          "threads": runs["torch"][0]["threads"]}


def main(argv):
  del argv
  if FLAGS.compare:
    config_args = [f"--config={config_flags.get_config_filename(FLAGS['config'])}"]
    config_args += [a for a in sys.argv[1:] if a.startswith("--config.")]
    out = compare(config_args, steps=FLAGS.steps, repeats=FLAGS.repeats,
                  warmup=FLAGS.warmup, skip=FLAGS.skip, data_dir=FLAGS.data_dir,
                  keep_freed_memory=FLAGS.keep_freed_memory)
  else:
    if FLAGS.keep_freed_memory:
      allocator.keep_freed_memory()
    config = FLAGS.config
    if FLAGS.data_dir:
      config.data.source_dir = FLAGS.data_dir
    out = benchmark(config, steps=FLAGS.steps, warmup=FLAGS.warmup, skip=FLAGS.skip)
  sys.stdout.write(json.dumps(out) + "\n")


if __name__ == "__main__":
  define_flags()
  app.run(main)
