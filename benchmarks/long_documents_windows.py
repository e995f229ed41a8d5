"""Tokens/s of benchmarks/long_documents.py's runs over the same wall-clock
periods: the dev machine's other jobs change the share of the pinned core a run
gets by up to ~5x within minutes, so a like-for-like comparison of two runs takes
the windows each logged during the same period.

  python -m benchmarks.long_documents_windows --log=docs=DOCS.log --log=ptb=PTB.log \\
      --json=docs=DOCS.json --json=ptb=PTB.json

Each run's windows are read from its log (the train/tokens_per_s lines; a
line's time stamp ends its window), their real tokens and whether a batch of a
new length (a compilation) was in them from the batch plan replayed
(`long_documents.plan_steps`; the corpus is read through the JSON's config).
Prints, for every pair of runs, each one's tokens/s over its compile-free windows
that ended while the other's compile-free windows were being logged.
"""

import datetime
import json
import re

from absl import app
from absl import flags

from benchmarks import long_documents as ld

_LOGS = flags.DEFINE_multi_string("log", [], "NAME=training log of a run.")
_JSONS = flags.DEFINE_multi_string("json", [], "NAME=the run's long_documents JSON.")
_LINE = re.compile(r"I(\d\d)(\d\d) (\d\d:\d\d:\d\d\.\d+) .*\] \[(\d+)\] train/.*"
                   r"tokens_per_s=([0-9.e+-]+)")


def log_rows(path, year):
  rows = []
  for line in open(path, encoding="utf-8"):
    m = _LINE.match(line)
    if m:
      t = datetime.datetime.strptime(f"{year}-{m.group(1)}-{m.group(2)} {m.group(3)}",
                                     "%Y-%m-%d %H:%M:%S.%f")
      rows.append({"step": int(m.group(4)), "train/tokens_per_s": float(m.group(5)),
                   "time": t.replace(tzinfo=datetime.timezone.utc).timestamp()})
  return rows


def steady_windows(json_path, log_path):
  result = json.load(open(json_path, encoding="utf-8"))
  run = result["docs"] if "docs" in result else result["ptb"]
  config = ld.ml_collections.ConfigDict(run["config"])
  train = ld.sources.load_splits(config.data, splits=("train",))["train"]
  vocab = ld.vocab_lib.Vocabulary.build(train.sentences, max_size=config.data.vocab_size,
                                        min_count=config.data.min_count)
  split = ld.pipeline.encode("train", train.sentences, vocab, config.data.max_length)
  buckets = ld.pipeline.batch_buckets(config.data, split.lengths)
  _, real, first_seen = ld.plan_steps(config, split, buckets, config.train.num_steps)
  year = datetime.datetime.utcfromtimestamp(result["compile_events"][0]["time"]).year
  rows = log_rows(log_path, year)
  windows = ld.logged_windows(rows, real, first_seen)
  return [dict(w, time=r["time"]) for w, r in zip(windows, rows) if not w["new_lengths"]]


def main(argv):
  del argv
  logs = dict(a.split("=", 1) for a in _LOGS.value)
  jsons = dict(a.split("=", 1) for a in _JSONS.value)
  runs = {n: steady_windows(jsons[n], logs[n]) for n in logs}
  out = {}
  for a in runs:
    for b in runs:
      if a == b:
        continue
      lo, hi = min(w["time"] for w in runs[b]), max(w["time"] for w in runs[b])
      ws = [w for w in runs[a] if lo <= w["time"] <= hi]
      out[f"{a} during {b}"] = {
          "windows": len(ws), "steps": sum(w["steps"] for w in ws),
          "tokens_per_s": (sum(w["tokens"] for w in ws) / sum(w["seconds"] for w in ws)
                           if ws else None),
          "period_utc": [datetime.datetime.utcfromtimestamp(t).strftime("%H:%M:%S")
                         for t in (lo, hi)]}
    ws = runs[a]
    out[f"{a} all"] = {"windows": len(ws), "steps": sum(w["steps"] for w in ws),
                       "tokens_per_s": sum(w["tokens"] for w in ws) / sum(w["seconds"] for w in ws)}
  print(json.dumps(out, indent=1))


if __name__ == "__main__":
  app.run(main)
