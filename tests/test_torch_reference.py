"""benchmarks/torch_reference.py: the PyTorch reference's loss against a
per-sentence computation without packing, and its CLI's JSON line on a tiny
corpus. Skipped without the `bench` extra (torch)."""

import importlib.util
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from configs import ptb  # pylint: disable=g-import-not-at-top
from textvae.data import pipeline  # pylint: disable=g-import-not-at-top
from textvae.data import sources  # pylint: disable=g-import-not-at-top
from textvae.data import vocab as vocab_lib  # pylint: disable=g-import-not-at-top

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "benchmarks", "torch_reference.py")


def _module():
  spec = importlib.util.spec_from_file_location("torch_reference", SCRIPT)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_packed_loss_equals_per_sentence_loss(cell):
  """Unsorted lengths: packing must keep every row's own z, initial state and
  targets (LSTM: c0 = W z + b, h0 = tanh(c0))."""
  eos = vocab_lib.EOS_ID
  rows = [np.array([5, 6, 7, 8, eos]), np.array([9, eos]), np.array([10, 11, eos])]
  batch = pipeline.collate(rows, np.ones(3))
  tokens = torch.from_numpy(batch["tokens_BxT"]).long()
  inputs = torch.from_numpy(batch["inputs_BxT"]).long()
  lengths = (tokens != vocab_lib.PAD_ID).sum(1)
  torch.manual_seed(0)
  model = _module().SentenceVAE(vocab_size=12, embed_dim=6, hidden_dim=5, latent_dim=3,
                                cell=cell)

  torch.manual_seed(1)
  nll, kl = model(tokens, inputs, lengths)
  torch.manual_seed(1)
  eps = torch.randn(3, 3)  # the same draw as the model's randn_like(mu)

  want_nll, want_kl = 0.0, 0.0
  with torch.no_grad():
    for b, r in enumerate(rows):
      L = len(r)
      _, last = model.enc_rnn(model.enc_embed(tokens[b:b + 1, :L]))
      h = last[0] if cell == "lstm" else last
      mu, logvar = model.posterior(h[0, 0]).chunk(2)
      z = mu + torch.exp(0.5 * logvar) * eps[b]
      x = torch.cat([model.dec_embed(inputs[b, :L]), z.expand(L, -1)], -1)
      v = model.init_state(z)[None, None]
      hs, _ = model.dec_rnn(x[None], (torch.tanh(v), v) if cell == "lstm" else torch.tanh(v))
      logp = torch.log_softmax(model.output(hs[0]), -1)
      want_nll -= logp[torch.arange(L), tokens[b, :L]].sum()
      want_kl += torch.distributions.kl_divergence(
          torch.distributions.Normal(mu, torch.exp(0.5 * logvar)),
          torch.distributions.Normal(0.0, 1.0)).sum()
  torch.testing.assert_close(nll.detach(), want_nll, rtol=1e-5, atol=1e-5)
  torch.testing.assert_close(kl.detach(), want_kl, rtol=1e-5, atol=1e-5)


def test_cli_json_line_on_tiny_corpus(tmp_path):
  rng = np.random.default_rng(0)
  words = [f"w{i}" for i in range(30)]
  corpus = tmp_path / "corpus"
  corpus.mkdir()
  for split, n in (("train", 40), ("valid", 4), ("test", 4)):
    lines = [" ".join(rng.choice(words, rng.integers(1, 12))) + "\n" for _ in range(n)]
    (corpus / f"{split}.txt").write_text("".join(lines), encoding="utf-8")
  cmd = [sys.executable, SCRIPT, f"--config={os.path.join(ROOT, 'configs', 'ptb.py')}:svae",
         "--config.data.name=text_files", f"--config.data.tfds_data_dir={tmp_path / 'tfds'}",
         "--config.train.batch_size=4", "--config.model.embed_dim=8",
         "--config.model.hidden_dim=16", "--config.model.latent_dim=4",
         f"--data_dir={corpus}", "--steps=3", "--warmup=2", "--skip=1"]
  env = dict(os.environ, PYTHONPATH=ROOT)
  out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT)
  result = json.loads(out.stdout.strip().splitlines()[-1])
  for key in ("tokens_per_s", "step_ms", "compile_s", "peak_rss_mb", "steps", "tokens",
              "framework", "torch", "threads"):
    assert key in result, key
  assert result["steps"] == 3 and result["framework"] == "torch"
  assert result["tokens_per_s"] > 0 and result["step_ms"] > 0
  # An untrained model predicts nearly uniformly: about log V nats per token.
  assert abs(result["first_nll_per_token"] - math.log(result["vocab_size"])) < 0.5
  # The tokens of batches 1-3 of the training pipeline (--skip=1).
  config = ptb.get_config("svae")
  config.data.update(name="text_files", source_dir=str(corpus),
                     tfds_data_dir=str(tmp_path / "tfds"))
  sentences = sources.load_splits(config.data, splits=("train",))["train"].sentences
  split = pipeline.encode("train", sentences, vocab_lib.Vocabulary.build(sentences),
                          config.data.max_length)
  it = iter(pipeline.train_dataset(split, global_batch_size=4, seed=config.seed,
                                   pad_multiple=config.data.pad_multiple,
                                   pool_batches=config.data.pool_batches))
  batches = [next(it) for _ in range(4)][1:]
  assert result["tokens"] == sum(int((b["tokens_BxT"] != 0).sum()) for b in batches)
