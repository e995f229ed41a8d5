"""Fingerprints of short training runs of every loop variant, to prove that a
refactor changes no number: run it on the tree before and after, compare.

  PYTHONPATH=. python tools/loop_fingerprint.py --out=/tmp/before.json
  (change the code)
  PYTHONPATH=. python tools/loop_fingerprint.py --out=/tmp/after.json --compare=/tmp/before.json

Each variant trains 30 steps of a small configs/default.py (metrics every step,
validation every 10, checkpoints every 15) in its own workdir under
--workdir_root. The fingerprint is the SHA-256 of the final parameters, of
every metrics.jsonl row and of final_metrics.json (timing fields left out),
and of samples.txt. --compare prints EQUAL / DIFF per variant and part and
exits 1 on any difference.

With --resume each variant then runs a second time, resumed: its checkpoints
after step 15 and its final metrics are deleted and training restarts from
step 15 (the path a killed run takes). That run must give the same
fingerprint (recorded as `<variant>@resumed`; any difference exits 1). Unlike
a killed run's, its `best/` has lost the step-15 run's best model (a later one
had replaced it): the resumed run warns so, and saves the next improvement.
"""

import hashlib
import json
import os
import shutil
import sys

from absl import app
from absl import flags
from absl import logging
import jax
import numpy as np

import configs
from configs import default
from textvae import fileio
from textvae import restore
from textvae import train

_OUT = flags.DEFINE_string("out", None, "Where to write the fingerprints (JSON).", required=True)
_COMPARE = flags.DEFINE_string("compare", None, "Fingerprints of the other tree to compare with.")
_ROOT = flags.DEFINE_string("workdir_root", "/tmp/loop_fingerprint", "Parent of the workdirs.")
_VARIANTS = flags.DEFINE_list("variants", None, "Variants to run (default: all).")
_RESUME = flags.DEFINE_bool("resume", False, "Also resume each variant from step 15.")

TIMING = ("tokens_per_s", "steps_per_sec", "uptime", "seconds")

# Each variant switches on what one part of the loop does.
VARIANTS = {
    "vae": {},
    "lm": {"model.kind": "lm"},
    "aggressive": {"train.aggressive.enabled": True, "train.aggressive.window": 2,
                   "train.aggressive.max_inner_steps": 4},
    "pretrain_fb": {"train.pretrain_steps": 12, "train.free_bits.kind": "per_dim",
                    "train.free_bits.target": 2.0},
    "bnvae": {"model.bn_gamma": 0.6},
    "plateau": {"model.cell": "lstm", "model.param_init": "uniform",
                "model.embed_dropout": 0.3, "model.output_dropout": 0.3,
                "train.optimizer": "sgd", "train.learning_rate": 1.0,
                "train.lr_schedule.name": "plateau", "train.lr_schedule.patience": 1,
                "train.lr_schedule.max_decays": 3, "train.eval_every_steps": 4,
                "train.lr_schedule.factor": 0.5},
    "cyclical_cond": {"train.kl_schedule.name": "cyclical", "train.kl_schedule.cycle_steps": 10,
                      "model.condition": "sentiment", "model.word_dropout": 0.2},
}


def config_for(name):
  c = default.get_config()
  c.data.synthetic_num_train = 1500
  c.model.embed_dim, c.model.hidden_dim, c.model.latent_dim = 16, 32, 8
  c.train.num_steps = 30
  c.train.log_every_steps = 1
  c.train.eval_every_steps = 10
  c.train.checkpoint_every_steps = 15
  c.train.num_samples = 2
  c.train.kl_schedule.warmup_steps = 20
  return configs.override(c, VARIANTS[name])


def _clean(x):
  if isinstance(x, dict):
    return {k: _clean(v) for k, v in x.items() if not k.endswith(TIMING)}
  if isinstance(x, list):
    return [_clean(v) for v in x]
  return x


def _sha(data: bytes) -> str:
  return hashlib.sha256(data).hexdigest()[:16]


RESUME_STEP = 15


def _rewind(workdir: str) -> None:
  """The workdir as a run killed just after checkpoint RESUME_STEP leaves it."""
  for sub in ("checkpoints", "best"):
    folder = os.path.join(workdir, sub)
    for step in os.listdir(folder) if os.path.isdir(folder) else ():
      if step.isdigit() and int(step) > RESUME_STEP:
        shutil.rmtree(os.path.join(folder, step))
  os.remove(os.path.join(workdir, "final_metrics.json"))


def fingerprint(name: str, resumed: bool = False) -> dict:
  workdir = os.path.join(_ROOT.value, name)
  if resumed:
    _rewind(workdir)
  else:
    shutil.rmtree(workdir, ignore_errors=True)
  train.train_and_evaluate(config_for(name), workdir)
  rows = [r for r in map(_clean, fileio.read_jsonl(os.path.join(workdir, "metrics.jsonl")))
          if len(r) > 1]
  with open(os.path.join(workdir, "final_metrics.json"), encoding="utf-8") as f:
    final = _clean(json.load(f))
  with open(os.path.join(workdir, "samples.txt"), "rb") as f:
    samples = f.read()
  leaves = jax.tree_util.tree_leaves(restore.load(workdir, checkpoint="latest").variables)
  return {"params": _sha(b"".join(np.asarray(l).tobytes() for l in leaves)),
          "metrics_rows": _sha(json.dumps(rows, sort_keys=True).encode()),
          "num_rows": len(rows),
          "final_metrics": _sha(json.dumps(final, sort_keys=True).encode()),
          "samples": _sha(samples)}


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  out = {}
  same = True
  for name in _VARIANTS.value or list(VARIANTS):
    out[name] = fingerprint(name)
    fileio.write_json(_OUT.value, out, indent=1)
    jax.clear_caches()
    if _RESUME.value:
      out[f"{name}@resumed"] = fingerprint(name, resumed=True)
      fileio.write_json(_OUT.value, out, indent=1)
      jax.clear_caches()
      if out[f"{name}@resumed"] != out[name]:
        same = False
        sys.stdout.write(f"{name}: the resumed run differs from the straight one\n")
  if _COMPARE.value:
    with open(_COMPARE.value, encoding="utf-8") as f:
      other = json.load(f)
    for name, parts in out.items():
      verdict = {k: "EQUAL" if other.get(name, {}).get(k) == v else "DIFF"
                 for k, v in parts.items()}
      same &= all(v == "EQUAL" for v in verdict.values())
      sys.stdout.write(f"{name:14s} " + " ".join(f"{k} {v}" for k, v in verdict.items()) + "\n")
  sys.exit(0 if same else 1)


if __name__ == "__main__":
  app.run(main)
