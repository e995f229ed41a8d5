"""Model selection on the validation split: the best checkpoint and early stopping.

Every validation updates a `Tracker` with the monitored metric
(`config.train.early_stopping.metric`, default the IW-NLL, lower is better).
When the metric improves, the training loop saves the state to `workdir/best`
as well (a second Orbax manager keeping one checkpoint), so the model that the
results table evaluates is the one selected on validation data, as in every
paper the PTB variants follow. With `patience > 0`, training stops once
`patience` validations in a row have not improved it; validations before
`min_step` (e.g. the autoencoder phase of `pretrain_fb`) are neither candidates
nor counted.

The tracker's state is saved in every checkpoint's metadata, so a resumed run
takes the same decisions as an uninterrupted one. A run started without it
(an older workdir) is rebuilt from the workdir's `metrics.jsonl`.
"""

from __future__ import annotations

import dataclasses
import math

from textvae import fileio

# Metrics that can be monitored, and whether lower is better.
LOWER_IS_BETTER = {"iw_nll": True, "ppl": True, "recon": True, "elbo": False}


@dataclasses.dataclass
class Tracker:
  metric: str = "iw_nll"
  patience: int = 0
  min_step: int = 0
  best_step: int | None = None
  best_value: float | None = None
  evals_since_best: int = 0
  stopped: bool = False

  def __post_init__(self):
    if self.metric not in LOWER_IS_BETTER:
      raise ValueError(f"config.train.early_stopping.metric={self.metric!r}: expected one "
                       f"of {sorted(LOWER_IS_BETTER)}")
    if self.patience < 0:
      raise ValueError(f"config.train.early_stopping.patience={self.patience}: expected >= 0 "
                       "(0 = never stop early)")

  @classmethod
  def from_config(cls, config) -> "Tracker":
    es = config.train.get("early_stopping", None)
    if es is None:
      return cls()
    return cls(metric=es.get("metric", "iw_nll"), patience=int(es.get("patience", 0)),
               min_step=int(es.get("min_step", 0)))

  def _better(self, value: float) -> bool:
    if self.best_value is None:
      return True
    return value < self.best_value if LOWER_IS_BETTER[self.metric] else value > self.best_value

  def update(self, step: int, valid: dict) -> bool:
    """Records a validation at `step`; returns True when it is the new best."""
    if step < self.min_step:
      return False
    value = float(valid[self.metric])
    if math.isfinite(value) and self._better(value):
      self.best_step, self.best_value, self.evals_since_best = int(step), value, 0
      return True
    self.evals_since_best += 1
    if self.patience and self.evals_since_best >= self.patience:
      self.stopped = True
    return False

  def to_meta(self) -> dict:
    return dataclasses.asdict(self)

  def restore(self, meta: dict) -> None:
    """Takes the decisions saved in a checkpoint's metadata (the config's metric,
    patience and min_step stay those of this run)."""
    for k in ("best_step", "best_value", "evals_since_best", "stopped"):
      setattr(self, k, meta[k])
    # A larger patience given on resume lets a stopped run go on.
    self.stopped = bool(self.patience) and self.evals_since_best >= self.patience

  def replay(self, metrics_path: str, up_to_step: int) -> None:
    """Rebuilds the state from the validation lines of a metrics.jsonl (steps up to
    `up_to_step`), for a workdir whose checkpoints predate the tracker."""
    key = f"valid/{self.metric}"
    rows = {}
    for row in fileio.read_jsonl(metrics_path):
      if key in row and row["step"] <= up_to_step:
        rows[row["step"]] = row[key]  # a re-run step's line replaces the older one
    for step in sorted(rows):
      self.update(step, {self.metric: rows[step]})
