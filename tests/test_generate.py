"""The generate CLI and the reconstruction scores on a tiny trained workdir."""

import os
import subprocess
import sys

import numpy as np
import pytest

from tests.helpers import REPO
from tests.helpers import tiny_workdir
from textvae import decoding
from textvae import generate
from textvae import reconstruction
from textvae import restore
from textvae.data import pipeline


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  return restore.load(tiny_workdir(tmp_path_factory))


def test_modes_give_one_line_per_result(trained):
  lines, warnings = generate.run(trained, "sample", num=5, seed=1)
  assert len(lines) == 5 and warnings == []
  assert all(0 < len(l.split()) < trained.config.data.max_length for l in lines)
  vocab_words = set(trained.vocab.tokens)
  assert all(w in vocab_words for l in lines for w in l.split())
  # Another seed, other samples; the same seed, the same samples.
  assert generate.run(trained, "sample", num=5, seed=1)[0] == lines
  assert generate.run(trained, "sample", num=5, seed=2)[0] != lines

  inputs = ["the chef baked a great cake happily yesterday .",
            "the zorblax will ship a fine app soon ."]
  recon, warnings = generate.run(trained, "reconstruct", inputs=inputs)
  assert len(recon) == 2
  assert warnings == ["unknown words mapped to <unk>: zorblax (in: "
                      "the zorblax will ship a fine app soon .)"]
  path, _ = generate.run(trained, "interpolate", inputs=inputs, num=4)
  assert len(path) == 4
  # The path's ends are the two reconstructions (greedy from the posterior means).
  assert path[0] == recon[0] and path[-1] == recon[1]
  beam, _ = generate.run(trained, "interpolate", inputs=inputs, num=4, strategy="beam",
                         beam_size=3)
  assert len(beam) == 4
  # Without --inputs, validation sentences.
  assert len(generate.run(trained, "reconstruct", num=3)[0]) == 3


def test_cli_prints_results_and_reports_unknown_words(trained):
  env = dict(os.environ, PYTHONPATH=REPO, JAX_PLATFORMS="cpu")
  proc = subprocess.run(
      [sys.executable, "-m", "textvae.generate", f"--workdir={trained.workdir}",
       "--mode=reconstruct", "--strategy=top_k", "--top_k=3", "--seed=4",
       "--inputs=the chef baked a great cake happily yesterday .|the zorblax will ship a fine app soon ."],
      capture_output=True, text=True, cwd=REPO, env=env, timeout=120)
  assert proc.returncode == 0, proc.stderr[-2000:]
  out = proc.stdout.splitlines()
  assert len(out) == 2
  assert "unknown words mapped to <unk>: zorblax" in proc.stderr
  expected, _ = generate.run(trained, "reconstruct", seed=4, strategy="top_k", top_k=3,
                             inputs=["the chef baked a great cake happily yesterday .",
                                     "the zorblax will ship a fine app soon ."])
  assert out == expected


def test_reconstruction_metrics_agree_with_a_direct_computation(trained):
  from textvae.data import sources
  corpus = sources.load_splits(trained.config.data, splits=("valid",))["valid"]
  split = pipeline.encode("valid", corpus.sentences[:60], trained.vocab,
                          trained.config.data.max_length)
  m = reconstruction.reconstruction_metrics(trained.model, trained.variables, split,
                                            trained.vocab, batch_size=32)
  assert m["num_sentences"] == 60 and m["num_tokens"] == int(split.lengths.sum())
  # Direct: decode each sentence's posterior mean one batch at a time.
  tokens = decoding.pad_batch(split.tokens)
  mu = decoding.posterior_mean(trained.model, trained.variables, tokens)
  out = np.asarray(decoding.generate(trained.model, trained.variables, mu,
                                     max_length=int(split.lengths.max()) + 10))
  correct = sum(int(np.sum(reconstruction.strip(o)[:len(r)] == r[:len(reconstruction.strip(o))]))
                for o, r in zip(out, split.tokens))
  assert m["token_accuracy"] == pytest.approx(correct / split.num_tokens)
  # A 60-step model (measured 0.125) gets some tokens right, far from all.
  assert 0.05 < m["token_accuracy"] < 0.95
  assert 0.0 < m["bleu"] < 100.0
