"""Transfer accuracy and BLEU to source over a grid of checkpoints, guidance
weights and (an unconditional VAE) latent-direction scales, on one split: the
model selection of controlled generation, made on validation data before the
chosen setting is measured on test with tools/measure_control.py.

  python tools/sweep_transfer.py --workdir=W --steps=4000,8000 --guidance=0,0.2,0.4 \
      [--direction_scales=1,2 --label_feature=F] [--split=valid] [--sources=1000] \
      [--source_dir=D] --out=results/control/NAME

writes NAME.json and NAME.md. The judge, the key per target label and the
greedy decoding are those of `textvae.evaluate --control` (textvae/control.py),
so a grid point measured on test reproduces that command's transfer figures
(--strategy=beam --beam_size=K: beam search instead of greedy).
Prior samples do not depend on the guidance and are not swept.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import jax
import numpy as np

from textvae import control
from textvae import reconstruction
from textvae import restore


def _floats(text):
  return [float(v) for v in text.split(",")]


def sweep(workdir, steps, guidance, scales, *, split="valid", num_sources=1000,
          label_feature=None, source_dir=None, seed=0, batch_size=256, **generate_kwargs):
  """One row per (step, scale, guidance): transfer accuracy and BLEU over all
  labels and per target label."""
  first = restore.load(workdir, steps[0])
  config = first.config
  if source_dir is not None:
    config.data.source_dir = source_dir
  data = control.control_data(first, label_feature, split, num_sources)
  labels, clf, src, src_y = data.labels, data.classifier, data.sources, data.source_labels
  conditional = control.method_of(first.model) == "conditional"
  rows = []
  for step in steps:
    trained = first if step == steps[0] else restore.load(workdir, step)
    directions = [None]
    if not conditional:
      base = control.latent_direction(trained.model, trained.variables, data.train,
                                      data.train_y, len(labels), buckets=data.buckets)
      directions = [control.LatentDirection(base.label_means, base.mean, base.counts, s)
                    for s in scales]
    for direction in directions:
      for g in guidance:
        t0 = time.time()
        per_label, hyps, refs, hits = {}, [], [], []
        for k, name in enumerate(labels.names):
          key = jax.random.fold_in(jax.random.fold_in(jax.random.key(seed), k), 1)
          _, hyp, ref = control.transfer_split(
              trained.model, trained.variables, trained.vocab, src, src_y, k, key,
              max_length=config.data.max_length, batch_size=batch_size, direction=direction,
              buckets=data.buckets, guidance=g, **generate_kwargs)
          ok = clf.predict(hyp) == k
          per_label[name] = {"transfer_accuracy": float(np.mean(ok)),
                             "transfer_bleu": reconstruction.corpus_bleu(hyp, ref)["bleu"]}
          hyps += hyp
          refs += ref
          hits += list(ok)
        rows.append({"step": trained.step, "guidance": g,
                     "direction_scale": None if direction is None else direction.scale,
                     "transfer_accuracy": float(np.mean(hits)),
                     "transfer_bleu": reconstruction.corpus_bleu(hyps, refs)["bleu"],
                     "per_label": per_label, "seconds": time.time() - t0})
  return {"workdir": os.path.relpath(first.workdir), "method": control.method_of(first.model),
          "feature": labels.feature, "split": split, "num_sources": len(src_y),
          "decoding": {"strategy": "greedy", **generate_kwargs},
          "classifier": {"name": clf.name, "held_out_accuracy": data.held_out_accuracy},
          "rows": rows}


def markdown(result, command) -> str:
  lines = [f"# Transfer sweep of `{result['workdir']}` ({result['method']}, "
           f"{result['split']} split)", "",
           f"Label `{result['feature']}`; the first {result['num_sources']} {result['split']} "
           f"sentences, each transferred to every label it does not have, decoding "
           f"{control.describe_decoding(result.get('decoding', {}))}; "
           f"judge: {result['classifier']['name']} "
           f"({100 * result['classifier']['held_out_accuracy']:.1f}% on this split).", "",
           "| step | direction scale | guidance | transfer acc. | BLEU to source |",
           "|---|---|---|---|---|"]
  for r in result["rows"]:
    scale = "-" if r["direction_scale"] is None else f"{r['direction_scale']:g}"
    lines.append(f"| {r['step']} | {scale} | {r['guidance']:g} | "
                 f"{100 * r['transfer_accuracy']:.1f}% | {r['transfer_bleu']:.1f} |")
  lines += ["", "Command:", "", "```", command, "```", ""]
  return "\n".join(lines)


def main():
  ap = argparse.ArgumentParser()
  ap.add_argument("--workdir", required=True)
  ap.add_argument("--steps", required=True, help="comma-separated kept checkpoints")
  ap.add_argument("--guidance", default="0")
  ap.add_argument("--direction_scales", default="1")
  ap.add_argument("--label_feature", default=None)
  ap.add_argument("--split", default="valid")
  ap.add_argument("--sources", type=int, default=1000)
  ap.add_argument("--source_dir", default=None)
  ap.add_argument("--strategy", default="greedy", choices=("greedy", "beam"))
  ap.add_argument("--beam_size", type=int, default=4)
  ap.add_argument("--out", required=True, help="path without extension")
  args = ap.parse_args()
  command = " ".join(["python", "tools/sweep_transfer.py"] + sys.argv[1:])
  result = sweep(args.workdir, [int(s) for s in args.steps.split(",")],
                 _floats(args.guidance), _floats(args.direction_scales), split=args.split,
                 num_sources=args.sources, label_feature=args.label_feature,
                 source_dir=args.source_dir,
                 **({"strategy": "beam", "beam_size": args.beam_size}
                    if args.strategy == "beam" else {}))
  result["command"] = command
  with open(args.out + ".json", "w", encoding="utf-8") as f:
    json.dump(result, f, indent=1)
  with open(args.out + ".md", "w", encoding="utf-8") as f:
    f.write(markdown(result, command))
  print(markdown(result, command))


if __name__ == "__main__":
  main()
