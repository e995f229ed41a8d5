"""Builds results/ptb.md from the committed runs: the literature setting
(configs/ptb_lstm.py, results/ptb_lstm/<variant>/) first, with the published
numbers beside it, then the GRU/Adam table (configs/ptb.py, results/ptb/<variant>/).

Each variant's folder holds what its documented command produced:
  eval_test.json      `python -m textvae.evaluate --workdir=W --split=test
                      --num_importance_samples=500` (IW-NLL with K=500, ELBO, KL, MI, AU, PPL)
  config.json         the run's config (W/config.json)
  train_summary.json  a summary of W/metrics.jsonl: steps, training wall time,
                      hardware (--hardware, else W/hardware.jsonl, written by
                      --collect below); for a row that
                      starts from another run (pretrain_fb_ae from ae), that
                      run's wall time and end too

  python tools/make_ptb_table.py --table=lstm --collect NAME=W [NAME=W ...]  # copy runs in
  python tools/make_ptb_table.py                                  # write results/ptb.md

A variant without eval_test.json is listed as "not run yet": the table is only
ever filled from those files, never by hand. A row that will not be run where
the table was built says why:

  python tools/make_ptb_table.py --table=lstm --not_run NAME="REASON"   # not_run.json

and collecting the row later removes that file. A run still training can be
collected with --progress (its log summary: best validation so far); if its
workdir has an interim test evaluation of its best checkpoint so far
(`python -m textvae.evaluate --workdir=W --interim ...`, W/eval_test_interim.json),
that is copied too and its figures are listed, marked interim, until the run's
final evaluation is collected. A run collected in progress and then stopped for
good is given a reason with --not_run, which removes its summary files.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys

from textvae import early_stopping
from textvae import fileio
from textvae import hardware as hardware_lib
from textvae import workdir as workdir_lib

RESULTS = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "results"))
RUNS = os.path.join(RESULTS, "ptb")             # the GRU/Adam table
LSTM_RUNS = os.path.join(RESULTS, "ptb_lstm")   # the literature setting
OUT = os.path.join(RESULTS, "ptb.md")
NOT_RUN = "not_run.json"
INTERIM = "eval_test_interim.json"  # textvae.evaluate --interim
EPOCH = 1314  # steps per PTB epoch at batch 32 (configs/ptb.py)

# (variant, remedy) in table order; the command is the same for every variant.
VARIANTS = [
    ("lm", "RNN language model (no z)"),
    ("vae", "VAE, linear KL warm-up (10 epochs)"),
    ("bowman", "Bowman et al. 2016: logistic annealing + word dropout 0.25"),
    ("cyclical", "Fu et al. 2019: cyclical annealing, M=4, R=0.5"),
    ("freebits", "Free bits per dimension, target 8 nats (lambda 0.25)"),
    ("pretrain_fb", "Li et al. 2019: AE pretraining, decoder reset, free bits 8"),
    ("aggressive", "He et al. 2019: aggressive inference-network training"),
    ("bnvae", "Zhu et al. 2020: BN-VAE, gamma 0.6"),
    ("bnvae_const", "BN-VAE, gamma 0.6, KL weight 1 throughout (no warm-up)"),
]

LSTM_VARIANTS = [
    ("lm", "LSTM language model (no z)"),
    ("vae", "VAE, linear KL warm-up (10 epochs)"),
    ("bowman", "Bowman et al. 2016: logistic annealing + word dropout 0.25"),
    ("cyclical", "Fu et al. 2019: cyclical annealing, M=4 cycles of 10 epochs, R=0.5"),
    ("freebits", "Free bits per dimension, target 8 nats (lambda 0.25)"),
    ("pretrain_fb", "Li et al. 2019: AE pretraining, decoder reset, free bits 8"),
    ("pretrain_fb_sent", "pretrain_fb with the authors' free bits: per sentence and dimension"),
    ("pretrain_fb_ae", "Li et al. 2019's two runs: the encoder of an autoencoder trained to "
                       "its stopping rule (ae), a fresh decoder, free bits 8 per "
                       "dimension"),
    ("aggressive", "He et al. 2019: aggressive inference-network training"),
    ("bnvae", "Zhu et al. 2020: BN-VAE, gamma 0.6"),
]

COMMAND = ("python -m textvae.main --config={config}:{v} "
           "--config.data.source_dir=../shared/data/ptb --workdir={runs}/{v} && "
           "python -m textvae.evaluate --workdir={runs}/{v} --split=test "
           "--num_importance_samples=500 && "
           "python tools/make_ptb_table.py --table={table} --collect {v}={runs}/{v}")

# A row that starts from another run's model (configs/ptb_lstm.py PREREQUISITES):
# that run's training comes first in the row's command.
PREREQUISITES = {"lstm": {"pretrain_fb_ae": "ae"}}
PRE_COMMAND = ("python -m textvae.main --config={config}:{pre} "
               "--config.data.source_dir=../shared/data/ptb --workdir={runs}/{pre} && ")


def row_command(v: str, t: dict, table: str) -> str:
  cmd = COMMAND.format(v=v, config=t["config"], runs=t["workdirs"], table=table)
  pre = PREREQUISITES.get(table, {}).get(v)
  return cmd if pre is None else PRE_COMMAND.format(pre=pre, config=t["config"],
                                                    runs=t["workdirs"]) + cmd


TABLES = {
    "lstm": dict(runs="LSTM_RUNS", variants=LSTM_VARIANTS, config="configs/ptb_lstm.py",
                 workdirs="runs/ptb_lstm",
                 title="The literature setting: LSTM 256/256/32, dropout 0.5, SGD 1.0 "
                       "with halving on validation plateaus",
                 setting="All rows: LSTM encoder/decoder, 256-d embeddings and hidden "
                         "state, 32-d latent, batch 32, dropout 0.5 on the decoder's input "
                         "embeddings and output states, SGD (learning rate 1.0, gradient "
                         "norm clipped at 5), halved after a plateau of validations, "
                         "training stopped after the 5th halving (at most 100 epochs); "
                         "configs/ptb_lstm.py gives each setting's source in the authors' "
                         "code and where ours differs."),
    "gru": dict(runs="RUNS", variants=VARIANTS, config="configs/ptb.py", workdirs="runs/ptb",
                title="GRU, Adam, no dropout (the first table)",
                setting="All rows: GRU encoder/decoder, 256-d embeddings and hidden state, "
                        "32-d latent, batch 32, Adam 1e-3, no dropout, early stopping after "
                        "3 epochs without a better validation IW-NLL (configs/ptb.py "
                        "documents each variant's hyperparameters and its paper's)."),
}

# Published PTB test numbers (the same 256/256/32 LSTM setting), each with its
# exact source. NLL per sentence and PPL with </s> counted, from the
# importance-weighted bound, as ours.
PUBLISHED: list[dict] = [
    {"model": "LSTM-LM (Li et al. 2019)", "nll": 101.04, "ppl": 100.47,
     "source": "Li et al. 2019 (EMNLP), *A Surprisingly Effective Fix for Deep Latent "
               "Variable Modeling of Text*, as quoted in Li et al. 2020, *Optimus*, "
               "arXiv:2004.04092, appendix Table 8"},
    {"model": "VAE, AE pretraining + free bits (Li et al. 2019), the best published row "
              "we know", "nll": None, "nll_from_ppl": True, "ppl": 96.86, "kl": 6.54,
     "mi": 5.31, "au": 32,
     "source": "Li et al. 2019 (EMNLP), as quoted in Li et al. 2020, *Optimus*, "
               "arXiv:2004.04092, appendix Table 8"},
]
TEST_TOKENS, TEST_SENTENCES = 82430, 3761  # PTB test split, </s> counted


def process_seconds(workdir: str) -> float | None:
  """The summed running time of a run's training processes: each process that
  trains writes one TensorBoard events file named by its start time
  (events.out.tfevents.<unix seconds>.<host>) and last written at its last
  metric. Pauses between resumed processes (a row queued behind another, the
  gap between sessions) are not counted; None without events files."""
  total, found = 0.0, False
  for name in os.listdir(workdir):
    parts = name.split(".")
    if name.startswith("events.out.tfevents.") and len(parts) > 3 and parts[3].isdigit():
      total += max(0.0, os.path.getmtime(os.path.join(workdir, name)) - int(parts[3]))
      found = True
  return total if found else None


def wall_seconds(workdir: str) -> float | None:
  """A run's training wall time (validation and checkpoints included). From its
  events files (process_seconds) where it has them; else metrics.jsonl has no
  timestamps, so from vocab.json (written at the first start) to
  final_metrics.json (written when training ends), or to the last checkpoint of
  a run still training or interrupted."""
  wall = process_seconds(workdir)
  start, end = (os.path.join(workdir, n) for n in ("vocab.json", "final_metrics.json"))
  if wall is not None or not os.path.exists(start):
    return wall
  if os.path.exists(end):
    return os.path.getmtime(end) - os.path.getmtime(start)
  ckdir = os.path.join(workdir, "checkpoints")
  done = [os.path.join(ckdir, d) for d in os.listdir(ckdir) if d.isdigit()]
  return max(os.path.getmtime(d) for d in done) - os.path.getmtime(start) if done else None


def summarise_log(workdir: str, running: bool = False) -> dict:
  """Steps, wall time and throughput from a run's metrics.jsonl; `running`: the
  run is still training (collected in progress)."""
  rows = fileio.read_jsonl(os.path.join(workdir, "metrics.jsonl"))
  steps = [r["step"] for r in rows if isinstance(r.get("step"), int)]
  out = {"last_step": max(steps) if steps else None, "wall_seconds": wall_seconds(workdir)}
  tps = [r["train/tokens_per_s"] for r in rows if "train/tokens_per_s" in r]
  if tps:
    out["median_train_tokens_per_s"] = sorted(tps)[len(tps) // 2]
  valid = [r for r in rows if "valid/iw_nll" in r]
  if valid:
    # The run's own model selection: validations before its min_step (the
    # autoencoder phase of pretrain_fb) are not candidates.
    config = workdir_lib.load_config(workdir)
    tracker = (early_stopping.Tracker.from_config(config) if "train" in config
               else early_stopping.Tracker())
    tracker.replay(workdir_lib.metrics_path(workdir), max(steps))
    if tracker.best_step is not None:
      out["best_valid"] = {"step": tracker.best_step, "value": tracker.best_value}
    last = valid[-1]
    out["last_valid"] = {k.split("/", 1)[1]: last[k] for k in last
                         if k.startswith("valid/") and isinstance(last[k], (int, float))}
  out["ended"] = _how_it_ended(workdir, out["last_step"], _halvings(rows), running)
  agg = [r for r in rows if "train/aggressive" in r]
  if agg:
    on = [r["step"] for r in agg if r["train/aggressive"] > 0]
    out["aggressive_until_step"] = max(on) if on else 0
  return out


def _halvings(rows) -> tuple:
  """(learning-rate reductions so far, the last rate) from the logged
  train/learning_rate, or None for a run without a schedule."""
  rates = [r["train/learning_rate"] for r in rows if "train/learning_rate" in r]
  if not rates:
    return None
  return sum(b < a for a, b in zip(rates, rates[1:])), rates[-1]


def _how_it_ended(workdir: str, last_step, halvings=None, running: bool = False) -> str:
  """'early stop' (patience ran out: converged on validation), 'num_steps' (the
  configured length), 'interrupted' (stopped by hand: not converged; with a
  plateau schedule, how many halvings it had had), or, for a run collected in
  progress (`running`), 'still training' with the same counts."""
  path = os.path.join(workdir, "final_metrics.json")
  if not os.path.exists(path):
    so_far = ""
    if halvings is not None:
      n, rate = halvings
      so_far = f" after {n} learning-rate halving{'s' * (n != 1)} (rate {rate:g})"
    if running:
      return f"still training at step {last_step}{so_far}"
    return f"interrupted at step {last_step}{so_far}: not converged"
  with open(path, encoding="utf-8") as f:
    final = json.load(f)
  lr = final.get("lr_schedule") or {}
  if lr.get("finished"):
    return (f"stopped after {lr['decays']} learning-rate halvings at step {final['step']} "
            f"(epoch {final['step'] / EPOCH:.0f})")
  if (final.get("early_stopping") or {}).get("stopped"):
    es = final["early_stopping"]
    return (f"early stop at step {final['step']} ({es['evals_since_best']} validations "
            f"without a better {es['metric']})")
  return f"num_steps reached (step {final['step']})"


def run_hardware(workdir: str) -> str:
  """--hardware's default: what the run's training processes recorded
  (W/hardware.jsonl, textvae.hardware), else this host, described the same way."""
  recorded = hardware_lib.describe_history(fileio.read_jsonl(hardware_lib.path(workdir)))
  return recorded or hardware_lib.describe(hardware_lib.current())


def _runs(table: str) -> str:
  return globals()[TABLES[table]["runs"]]


def _check_variant(name: str, table: str) -> None:
  variants = TABLES[table]["variants"]
  if name not in dict(variants):
    raise SystemExit(f"unknown variant {name!r}; expected one of {[v for v, _ in variants]}")


def check_collectable(name: str, workdir: str, table: str, progress: bool) -> None:
  """Refuses, before anything is copied, a row whose workdir cannot be collected."""
  _check_variant(name, table)
  config = os.path.join(workdir, "config.json")
  if not os.path.exists(config):
    pre = PREREQUISITES.get(table, {}).get(name)
    after = f" (it starts once its prerequisite run {pre!r} has finished)" if pre else ""
    raise SystemExit(f"--collect {name}={workdir}: {config} not found: the run of {name} "
                     f"has not started in {workdir}{after}")
  src = os.path.join(workdir, "eval_test.json")
  if not progress and not os.path.exists(src):
    raise SystemExit(f"{src} not found: run textvae.evaluate on {workdir} first")


def collect(name: str, workdir: str, hardware: str | None, table: str = "gru",
            progress: bool = False) -> None:
  """Copies a run's test evaluation, config and log summary into the table's
  folder; `progress`: a run still training (its summary only, listed as in
  progress with its best validation so far)."""
  check_collectable(name, workdir, table, progress)
  src = os.path.join(workdir, "eval_test.json")
  dst = os.path.join(_runs(table), name)
  os.makedirs(dst, exist_ok=True)
  if not progress:
    shutil.copyfile(src, os.path.join(dst, "eval_test.json"))
  if progress and os.path.exists(os.path.join(workdir, INTERIM)):
    shutil.copyfile(os.path.join(workdir, INTERIM), os.path.join(dst, INTERIM))
  elif os.path.exists(os.path.join(dst, INTERIM)):  # superseded, or of an earlier run
    os.remove(os.path.join(dst, INTERIM))
  shutil.copyfile(os.path.join(workdir, "config.json"), os.path.join(dst, "config.json"))
  summary = summarise_log(workdir, running=progress)
  summary["hardware"] = hardware or run_hardware(workdir)
  summary["workdir"] = workdir
  pre = prerequisite_summary(name, workdir, table)
  if pre is not None:
    summary["prerequisite"] = pre
  fileio.write_json(os.path.join(dst, "train_summary.json"), summary, indent=2)
  if os.path.exists(os.path.join(dst, NOT_RUN)):
    os.remove(os.path.join(dst, NOT_RUN))


def prerequisite_summary(name: str, workdir: str, table: str) -> dict | None:
  """The log summary of the run a row started from (its training is part of the
  row's cost): the workdir its config.train.init_from names, else the row's
  sibling named after the prerequisite; None for a row without one."""
  pre = PREREQUISITES.get(table, {}).get(name)
  if pre is None:
    return None
  config = workdir_lib.load_config(workdir)
  path = config.get("train", {}).get("init_from", {}).get("workdir") or ""
  if not os.path.exists(os.path.join(path, "metrics.jsonl")):
    path = os.path.join(os.path.dirname(os.path.normpath(workdir)), pre)
  if not os.path.exists(os.path.join(path, "metrics.jsonl")):
    return {"name": pre, "workdir": None}
  summary = summarise_log(path)
  return {"name": pre, "workdir": path,
          **{k: summary[k] for k in ("last_step", "wall_seconds", "ended", "best_valid")
             if k in summary}}


def _cost(summ: dict) -> tuple[str, str]:
  """The 'training ended' and 'train wall time' cells, with the prerequisite
  run's own after the row's."""
  ended, hours = summ.get("ended", "—"), _hours(summ.get("wall_seconds"))
  pre = summ.get("prerequisite")
  if pre:
    if pre.get("workdir") is None:
      return f"{ended}; {pre['name']}: its workdir was not found", f"{hours} + {pre['name']}: —"
    ended = f"{ended}; its prerequisite {pre['name']}: {pre.get('ended', '—')}"
    hours = f"{hours} + {_hours(pre.get('wall_seconds'))} ({pre['name']})"
  return ended, hours


def check_not_run(name: str, reason: str, table: str) -> None:
  """Refuses, before anything is written, a reason that cannot be recorded."""
  _check_variant(name, table)
  if not reason.strip():
    raise SystemExit(f"--not_run {name}=: give the reason")
  dst = os.path.join(_runs(table), name)
  if os.path.exists(os.path.join(dst, "eval_test.json")):
    raise SystemExit(f"{dst}/eval_test.json exists: {name} was run")


def not_run(name: str, reason: str, table: str) -> None:
  """Records why a row was not run (listed under its table). A run collected in
  progress and then stopped is no longer training: its summary files go (the
  reason says what it reached), as `collect` removes a reason."""
  check_not_run(name, reason, table)
  dst = os.path.join(_runs(table), name)
  os.makedirs(dst, exist_ok=True)
  fileio.write_json(os.path.join(dst, NOT_RUN), {"reason": reason.strip()}, indent=2)
  for stale in ("train_summary.json", "config.json", INTERIM):
    if os.path.exists(os.path.join(dst, stale)):
      os.remove(os.path.join(dst, stale))


def _fmt(x, digits=2):
  return "—" if x is None else (f"{x:.{digits}f}" if isinstance(x, float) else str(x))


def _k(ev):
  """Importance samples of the IW-NLL: 'exact' for the LM (no latent)."""
  k = ev.get("num_importance_samples")
  return "exact" if k == 0 or ev.get("model") == "lm" else _fmt(k)


def _epoch(step):
  return "—" if step is None else f"{step / EPOCH:.0f}"


def _figures(ev):
  """The cells after the IW-NLL of an evaluation: K to the selected step."""
  return (f"{_k(ev)} | {_fmt(ev.get('ppl'))} | {_fmt(ev.get('elbo'))} | {_fmt(ev.get('kl'))} | "
          f"{_fmt(ev.get('mi'))} | {_fmt(ev.get('au'))} | "
          f"{_fmt(ev.get('step'))} ({_epoch(ev.get('step'))})")


def _hours(s):
  return "—" if s is None else f"{s / 3600:.1f} h"


def _published_nll(p):
  if p.get("nll") is not None:
    return _fmt(p["nll"])
  if p.get("nll_from_ppl") and p.get("ppl"):
    import math  # pylint: disable=g-import-not-at-top
    return f"{math.log(p['ppl']) * TEST_TOKENS / TEST_SENTENCES:.2f} (from PPL)"
  return "—"


def _table(table: str) -> list[str]:
  t = TABLES[table]
  runs = _runs(table)
  lines = [f"## {t['title']}", "", t["setting"], "",
           "| variant | remedy | IW-NLL | K | PPL | ELBO | KL | MI | AU | selected step (epoch) | "
           "training ended | train wall time | hardware | command |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
  reasons = []
  for v, remedy in t["variants"]:
    cmd = "`" + row_command(v, t, table) + "`"
    path = os.path.join(runs, v, "eval_test.json")
    spath = os.path.join(runs, v, "train_summary.json")
    if not os.path.exists(path) and os.path.exists(spath):
      with open(spath, encoding="utf-8") as f:
        summ = json.load(f)
      best = summ.get("best_valid") or {}
      training = (f"training (best valid {_fmt(best.get('value'))} at epoch "
                  f"{_epoch(best.get('step'))})" if best.get("value") is not None else
                  f"training (step {summ.get('last_step') or 0:,}, no validation yet)")
      ipath = os.path.join(runs, v, INTERIM)
      if os.path.exists(ipath):
        with open(ipath, encoding="utf-8") as f:
          ev = json.load(f)
        figures = f"interim: {_fmt(ev.get('iw_nll'))}, {training} | {_figures(ev)}"
      else:
        figures = f"{training} | | | | | | | "
      ended, hours = _cost(summ)
      lines.append(f"| {v} | {remedy} | {figures} | {ended} | {hours} | "
                   f"{summ.get('hardware', '—')} | {cmd} |")
      continue
    if not os.path.exists(path):
      reason_path = os.path.join(runs, v, NOT_RUN)
      if os.path.exists(reason_path):
        with open(reason_path, encoding="utf-8") as f:
          reasons.append(f"- **{v}**: {json.load(f)['reason']}")
        lines.append(f"| {v} | {remedy} | not run (the reason is below) | | | | | | | | | | | "
                     f"{cmd} |")
      else:
        lines.append(f"| {v} | {remedy} | not run yet | | | | | | | | | | | {cmd} |")
      continue
    with open(path, encoding="utf-8") as f:
      ev = json.load(f)
    summ = {}
    spath = os.path.join(runs, v, "train_summary.json")
    if os.path.exists(spath):
      with open(spath, encoding="utf-8") as f:
        summ = json.load(f)
    ended, hours = _cost(summ)
    lines.append(
        f"| {v} | {remedy} | {_fmt(ev.get('iw_nll'))} | {_figures(ev)} | {ended} | {hours} | "
        f"{summ.get('hardware', '—')} | {cmd} |")
  if reasons:
    lines += ["", "Rows not run, and why:", ""] + reasons
  repeats = []
  for v, _ in t["variants"]:
    folder = os.path.join(runs, v)
    for name in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
      if name.startswith("eval_test_seed") and name.endswith(".json"):
        with open(os.path.join(folder, name), encoding="utf-8") as f:
          ev = json.load(f)
        repeats.append(f"| {v} | {ev.get('seed')} | {_fmt(ev.get('num_importance_samples'))} | "
                       f"{ev.get('iw_nll'):.3f} | {ev.get('step')} | `{name}` |")
  if repeats:
    lines += ["", "### The IW-NLL with other importance samples", "",
              "The same checkpoint evaluated again with another `--seed` of the importance "
              "samples (`python -m textvae.evaluate ... --seed=S`): how much of a row's "
              "IW-NLL is Monte Carlo noise.", "",
              "| variant | seed | K | IW-NLL | step | file |", "|---|---|---|---|---|---|"]
    lines += repeats
  return lines + [""]


def build() -> str:
  lines = ["# Penn Treebank: language models and posterior-collapse remedies (test split)", "",
           "Generated by `python tools/make_ptb_table.py` from `results/ptb_lstm/<variant>/` "
           "and `results/ptb/<variant>/` (`eval_test.json`, `config.json`, "
           "`train_summary.json`); do not edit by hand. `launch/ptb_table.sh` trains, "
           "evaluates and collects every row.", "",
           "IW-NLL: importance-weighted NLL per sentence with K samples (K=500 in the "
           "documented command; exact for the LM, which has no latent); PPL = exp(IW-NLL "
           "total / tokens incl. </s>); ELBO per sentence; KL per sentence; MI over the whole "
           "test split; AU: dimensions with Cov(E_q[z]) > 0.01; train wall time: the "
           "training processes' running time (validation and checkpoints included, pauses "
           "between a row's resumed processes not; the test evaluation not).", "",
           "Each row is the run's best checkpoint on validation IW-NLL (K=5, once per epoch "
           "of 1,314 steps); 'selected step' is that checkpoint, 'training ended' says "
           "whether the run reached its stopping rule, was interrupted or is still "
           "training. A row marked 'interim' is still training: its figures are those of "
           "its best checkpoint so far (`textvae.evaluate --interim`), not of the run at "
           "its stopping rule.", ""]
  lines += _table("lstm")
  lines += ["### Published PTB numbers at the same setting", "",
            "| model | NLL | PPL | KL | MI | AU | source |", "|---|---|---|---|---|---|---|"]
  for p in PUBLISHED:
    lines.append(f"| {p['model']} | {_published_nll(p)} | {_fmt(p.get('ppl'))} | "
                 f"{_fmt(p.get('kl'))} | {_fmt(p.get('mi'))} | {_fmt(p.get('au'))} | "
                 f"{p['source']} |")
  lines += ["", "The NLL marked 'from PPL' is log(PPL) x 82,430 tokens / 3,761 sentences of "
            "the test split; the other published rows of those tables could not be read "
            "in full from the sources available here, and are not copied from memory.", ""]
  lines += _table("gru")
  return "\n".join(lines)


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--collect", nargs="*", default=[], metavar="NAME=WORKDIR",
                      help="copy a finished run's eval_test.json, config.json and log "
                           "summary into results/ptb/NAME/ first")
  parser.add_argument("--hardware", default=None,
                      help="hardware description for collected runs (default: what each run's "
                           "processes recorded in W/hardware.jsonl, else this platform)")
  parser.add_argument("--progress", action="store_true",
                      help="--collect runs still training (their log summary only)")
  parser.add_argument("--table", choices=sorted(TABLES), default="gru",
                      help="which table --collect copies into (lstm: configs/ptb_lstm.py)")
  parser.add_argument("--not_run", nargs="*", default=[], metavar="NAME=REASON",
                      help="record why a row was not run (results/<table>/NAME/not_run.json)")
  parser.add_argument("--output", default=OUT)
  args = parser.parse_args(argv)
  collects = [item.partition("=")[::2] for item in args.collect]
  reasons = [item.partition("=")[::2] for item in args.not_run]
  # All checked first: a bad item leaves nothing written.
  for name, workdir in collects:
    check_collectable(name, workdir, args.table, args.progress)
  for name, reason in reasons:
    check_not_run(name, reason, args.table)
  for name, reason in reasons:
    not_run(name, reason, args.table)
  for name, workdir in collects:
    collect(name, workdir, args.hardware, args.table, args.progress)
  text = build()
  with open(args.output, "w", encoding="utf-8") as f:
    f.write(text)
  sys.stdout.write(f"wrote {args.output}\n")


if __name__ == "__main__":
  main()
