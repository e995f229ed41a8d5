"""The linear latent probe: on features that determine the labels linearly, on
pure noise (chance), and on a tiny trained workdir."""

import numpy as np
import pytest

from textvae import probe


def test_probe_reads_linear_factors_and_noise_gives_chance():
  rng = np.random.default_rng(0)
  n, d = 3000, 6
  x = rng.standard_normal((n, d)).astype(np.float32)
  w = rng.standard_normal((d, 4))
  factors = {"linear": np.argmax(x @ w, 1), "noise": rng.integers(0, 3, n),
             "skewed": (rng.random(n) < 0.8).astype(np.int64)}
  out = probe.probe_factors(x[:2000], {k: v[:2000] for k, v in factors.items()},
                            x[2000:], {k: v[2000:] for k, v in factors.items()})
  assert out["linear"]["accuracy"] > 0.95 and out["linear"]["num_classes"] == 4
  assert abs(out["noise"]["accuracy"] - out["noise"]["chance"]) < 0.05
  # Chance is the most frequent training class's rate on test, not 1/C.
  assert out["skewed"]["chance"] == pytest.approx(np.mean(factors["skewed"][2000:] == 1))
  assert out["skewed"]["chance"] > 0.75
  assert abs(out["skewed"]["accuracy"] - out["skewed"]["chance"]) < 0.03
  # Deterministic.
  again = probe.probe_factors(x[:2000], {k: v[:2000] for k, v in factors.items()},
                              x[2000:], {k: v[2000:] for k, v in factors.items()})
  assert again == out


def test_chance_accuracy():
  assert probe.chance_accuracy([0, 1, 1, 2], [1, 1, 0, 2, 2]) == pytest.approx(0.4)


def test_probe_workdir(tmp_path_factory):
  from tests.helpers import tiny_workdir  # pylint: disable=g-import-not-at-top
  out = probe.probe_workdir(tiny_workdir(tmp_path_factory), train_split="valid",
                            test_split="test", num_steps=200)
  assert out["num_train"] == 1000 and out["num_test"] == 1000
  for features in ("mean", "sample"):
    assert set(out[features]) == {"topic", "sentiment", "tense", "length"}
    for r in out[features].values():
      assert 0.0 <= r["accuracy"] <= 1.0
  # The synthetic factors are uniform: chance is about 1 / classes.
  assert out["mean"]["topic"]["chance"] == pytest.approx(0.25, abs=0.05)
  assert out["mean"]["tense"]["chance"] == pytest.approx(1 / 3, abs=0.05)
