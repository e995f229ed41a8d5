"""Control measurements side by side: a conditional VAE and the latent-direction
method on an unconditional VAE, judged by the same classifier
(textvae/control.py), with fluency under a language-model workdir.

  python tools/measure_control.py --name=synthetic --conditional=WC \
      --unconditional=WU --lm=WL [--split=test] [--samples=500] [--sources=1000] \
      [--direction_scales=1,2] [--guidance=0,0.2] [--checkpoint=auto|best|latest]
      [--conditional_step=S] [--unconditional_step=S] [--commands=commands.txt]

writes results/control/NAME.json (every figure and example) and NAME.md (the
tables; `--render` rewrites it from the JSON); --outputs=PATH also writes every
generated sentence there. The workdirs are trained beforehand; --commands names
a text file with the commands that trained them, copied into both outputs.
Each value of --guidance gives one row per method (textvae/control.py: the
transfers' guidance away from the source's own code; 0 unguided). Choose the
guidance and the checkpoints on --split=valid, then measure them on test.

On `synthetic` with the sentiment label, two more figures put the BLEU in
scale, since a transfer must change the sentiment words and BLEU counts them:
`content_bleu`, the BLEU of the transfers to their sources with every sentiment
word (the grammar's adjectives and adverbs) replaced by one placeholder in
both (100: everything else kept), and the oracle BLEU of the test sentences
with each sentiment word swapped for a random one of the other sentiment and
everything else kept (the best BLEU to source a perfect transfer can expect).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

from textvae import control
from textvae import evaluate
from textvae import reconstruction
from textvae import restore
from textvae.data.builders import synthetic

RESULTS = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "results", "control"))

NOTES = {"synthetic": """## Reading

- The conditional VAE meets every goal: each prior sample and each transfer is
  judged to have the asked-for label, and the transfers keep the rest of the
  sentence (content BLEU 99.4; the BLEU to source, 51.2, is the oracle's 51.3:
  a transfer must change the sentiment words, and BLEU counts them).
- The latent direction trades label accuracy for content with its scale: x1
  misses the goals on accuracy (prior samples 89.0%; transfers to negative
  89.7%), and its BLEU above the oracle's is the sentences it left unchanged;
  x2 reaches 99.2% / 100% but moves other words too (content BLEU 94.1, BLEU
  48.1). The conditional VAE needs no scale and keeps more content at full
  accuracy.
- Fluency: the generated sentences' PPL under the language model (3.3-3.8) is
  that of the test sentences themselves (3.31).
- The judge is trivial on this corpus (100% held out): synthetic sentiment is
  carried by a fixed set of adjectives and adverbs.
"""}

GOALS = {"synthetic": {"sample_accuracy": 0.95, "transfer_accuracy": 0.90, "transfer_bleu": 50},
         "yelp_sentiment": {"sample_accuracy": 0.90, "transfer_accuracy": 0.80,
                            "transfer_bleu": 20}}


def _likelihood(workdir, split, step=None):
  """The split's likelihood figures of checkpoint `step`: from W/eval_<split>.json
  when it is of that step (textvae.evaluate --step), else final_metrics.json's
  (the training run's final evaluation, of its best checkpoint), with its step."""
  path = os.path.join(workdir, f"eval_{split}.json")
  m = {}
  if step is not None and os.path.exists(path):
    with open(path, encoding="utf-8") as f:
      m = json.load(f)
    if m.get("step") != step:
      m = {}
  if not m:
    path = os.path.join(workdir, "final_metrics.json")
    if not os.path.exists(path):
      return {}
    with open(path, encoding="utf-8") as f:
      final = json.load(f)
    m = dict(final.get(split, {}), step=final.get("best_step", final.get("step")))
  return {k: m[k] for k in ("iw_nll", "elbo", "kl", "ppl", "mi", "au", "step") if k in m}


SENTIMENT_WORDS = {w: s for s in ("negative", "positive")
                   for w in synthetic.ADJECTIVES[s] + synthetic.ADVERBS[s]}


def _mask(sentence):
  return " ".join("<sentiment>" if w in SENTIMENT_WORDS else w for w in sentence.split())


def synthetic_content(run) -> dict:
  """Per target label and over all: BLEU to source with sentiment words masked."""
  out, hyps, refs = {}, [], []
  for label, o in run["outputs"].items():
    h, r = [_mask(x) for x in o["transfers"]], [_mask(x) for x in o["sources"]]
    out[label] = reconstruction.corpus_bleu(h, r)["bleu"] if h else float("nan")
    hyps += h
    refs += r
  out["all"] = reconstruction.corpus_bleu(hyps, refs)["bleu"]
  return out


def oracle_bleu(sentences, seed=0) -> float:
  """BLEU to source of the sentences with each sentiment word swapped for a
  random word of the same kind (adjective, adverb) and the other sentiment."""
  rng = np.random.default_rng(seed)
  other = {"negative": "positive", "positive": "negative"}
  adjectives = {w for ws in synthetic.ADJECTIVES.values() for w in ws}
  swapped = []
  for sentence in sentences:
    words = []
    for w in sentence.split():
      if w in SENTIMENT_WORDS:
        kind = synthetic.ADJECTIVES if w in adjectives else synthetic.ADVERBS
        w = str(rng.choice(kind[other[SENTIMENT_WORDS[w]]]))
      words.append(w)
    swapped.append(" ".join(words))
  return reconstruction.corpus_bleu(swapped, list(sentences))["bleu"]


def _fmt(v, pct=False):
  if v is None or v != v:
    return "-"
  return f"{100 * v:.1f}%" if pct else f"{v:.1f}"


def markdown(name, runs, commands, split, goals, lm_likelihood=None) -> str:
  first = runs[0][1]
  lines = [f"# Controlled generation on `{name}` ({split} split)", "",
           f"Label feature `{first['feature']}` ({', '.join(first['labels'])}); judge: "
           f"{first['classifier']['name']}, trained on the training split "
           f"({first['classifier']['num_train']} sentences, {first['classifier']['num_words']} "
           f"words), held-out accuracy on the {split} split "
           f"**{100 * first['classifier']['held_out_accuracy']:.1f}%**.",
           f"Decoding: {control.describe_decoding(first.get('decoding', {}))}; "
           f"{first['per_label'][first['labels'][0]]['num_samples']} prior "
           f"samples per label; transfers of the first {first['num_sources']} {split} sentences "
           "to every label they do not have. BLEU: sacrebleu corpus BLEU of the transfers "
           f"against their sources ({first['bleu_signature']}). PPL: per-token perplexity "
           "(</s> counted) of the generated sentences under the language model "
           f"`{(first.get('fluency_lm') or {}).get('workdir', '-')}`.", ""]
  if goals:
    lines += [f"Goals: prior-sample accuracy >= {100 * goals['sample_accuracy']:.0f}%, transfer "
              f"accuracy >= {100 * goals['transfer_accuracy']:.0f}% with BLEU >= "
              f"{goals['transfer_bleu']}.", ""]
  if "step" in first:
    lines += ["Checkpoints: " + "; ".join(
        f"{title}: step {r['step']} ({r['checkpoint']})" for title, r in runs) + ".", ""]
  content = "content_bleu" in first
  head = ("| method | label | sample acc. | transfer acc. | BLEU to source | "
          + ("content BLEU | " if content else "") + "sample PPL | transfer PPL |")
  lines += [head, "|---|---|---|---|---|---|---|" + ("---|" if content else "")]
  for title, r in runs:
    rows = list(r["per_label"].items()) + [("all", r["overall"])]
    for label, row in rows:
      extra = f"{_fmt(r['content_bleu'][label])} | " if content else ""
      lines.append(f"| {title} | {label} | {_fmt(row['sample_accuracy'], True)} | "
                   f"{_fmt(row['transfer_accuracy'], True)} | {_fmt(row['transfer_bleu'])} | "
                   f"{extra}{_fmt(row.get('sample_ppl'))} | {_fmt(row.get('transfer_ppl'))} |")
  lines += ["", "'all': sample accuracy is the mean over labels; transfer accuracy, BLEU and "
            "PPL are over every transfer together."]
  if content:
    lines += [f"Content BLEU: BLEU to source with the sentiment words masked in both (100 = "
              f"everything else kept). Oracle: a perfect transfer (each sentiment word swapped, "
              f"the rest kept) has BLEU to source **{first['oracle_bleu']:.1f}** on these "
              f"sources."]
  lines.append("")
  lines += ["## Likelihood of the models (test split)", "",
            "IW-NLL with K = 5 (nats per sentence) of the checkpoint named (the training "
            "run's final evaluation, or `textvae.evaluate --step`); the language model's is "
            "exact. The VAEs' small KL weight buys exact reconstructions with likelihood.", "",
            "| model | step | IW-NLL | ELBO | KL | PPL | MI | AU |",
            "|---|---|---|---|---|---|---|---|"]
  models = {}
  for title, r in runs:
    title = title.split(", guidance")[0]
    models.setdefault(r["method"], (title.split(" x")[0] if r["method"] == "latent_direction"
                                    else title, r.get("likelihood", {})))
  rows = list(models.values())
  if lm_likelihood:
    rows.append(("language model (fluency judge)", lm_likelihood))
  for title, m in rows:
    title = title.replace("latent direction", "unconditional VAE (latent direction)")
    lines.append(f"| {title} | {m.get('step', '-')} | "
                 + " | ".join(_fmt(m.get(k)) if k != "au" else str(m.get(k, "-"))
                              for k in ("iw_nll", "elbo", "kl", "ppl", "mi", "au")) + " |")
  lines += ["", "## Examples", ""]
  for title, r in runs:
    lines += [f"**{title}**", "", "| source | target | output |", "|---|---|---|"]
    for ex in r["examples"]:
      if "transfer" in ex:
        lines.append(f"| [{ex['source_label']}] {ex['source']} | {ex['target_label']} | "
                     f"{ex['transfer']} |")
      else:
        lines.append(f"| (prior sample) | {ex['sample_label']} | {ex['sample']} |")
    lines.append("")
  if name in NOTES:
    lines += [NOTES[name]]
  lines += ["## Commands", "", "```", commands.strip(), "```", ""]
  return "\n".join(lines)


def main():
  ap = argparse.ArgumentParser()
  ap.add_argument("--name", required=True)
  ap.add_argument("--conditional", required=True)
  ap.add_argument("--unconditional", required=True)
  ap.add_argument("--lm", default=None)
  ap.add_argument("--feature", default=None, help="for the unconditional VAE "
                  "(default: the conditional VAE's)")
  ap.add_argument("--split", default="test")
  ap.add_argument("--samples", type=int, default=500)
  ap.add_argument("--sources", type=int, default=1000)
  ap.add_argument("--direction_scales", default="1")
  ap.add_argument("--source_dir", default=None)
  ap.add_argument("--checkpoint", default="auto", choices=restore.CHOICES,
                  help="the VAEs' checkpoint (auto: the best validation one when kept)")
  ap.add_argument("--conditional_step", type=int, default=None,
                  help="this kept checkpoint of the conditional VAE instead of --checkpoint")
  ap.add_argument("--unconditional_step", type=int, default=None)
  ap.add_argument("--guidance", default="0", help="comma-separated transfer guidance weights")
  ap.add_argument("--strategy", default="greedy", choices=("greedy", "beam"))
  ap.add_argument("--beam_size", type=int, default=4)
  ap.add_argument("--commands", default=None)
  ap.add_argument("--render", action="store_true", help="only rewrite NAME.md from NAME.json")
  ap.add_argument("--outputs", default=None, help="write every generated sentence here")
  ap.add_argument("--out_name", default=None, help="results/control/OUT_NAME.{json,md} "
                  "(default: NAME)")
  args = ap.parse_args()
  out = os.path.join(RESULTS, args.out_name or args.name)
  if args.render:
    with open(out + ".json", encoding="utf-8") as f:
      saved = json.load(f)
    runs = [(r.pop("method_title", r["method"]), r) for r in saved["runs"]]
    with open(out + ".md", "w", encoding="utf-8") as f:
      f.write(markdown(args.name, runs, saved["commands"], runs[0][1]["split"],
                       GOALS.get(args.name), saved.get("lm_likelihood")))
    return
  commands = open(args.commands, encoding="utf-8").read() if args.commands else ""
  commands += "\n" + " ".join(["python", "tools/measure_control.py"] + sys.argv[1:])
  common = dict(split=args.split, seed=0, fluency_lm_workdir=args.lm, keep_outputs=True,
                checkpoint=args.checkpoint, strategy=args.strategy, beam_size=args.beam_size,
                num_samples=args.samples, num_sources=args.sources, source_dir=args.source_dir)
  runs = []
  for g in [float(s) for s in args.guidance.split(",")]:
    guided = f", guidance {g:g}" if g else ""
    cond = evaluate.control_workdir(args.conditional, step=args.conditional_step, guidance=g,
                                    **common)
    cond["likelihood"] = _likelihood(args.conditional, "test", cond["step"])
    runs.append((f"conditional VAE ({cond['feature']}){guided}", cond))
    feature = args.feature or cond["feature"]
    for scale in [float(s) for s in args.direction_scales.split(",")]:
      r = evaluate.control_workdir(args.unconditional, step=args.unconditional_step,
                                   label_feature=feature, direction_scale=scale, guidance=g,
                                   **common)
      r["likelihood"] = _likelihood(args.unconditional, "test", r["step"])
      runs.append((f"latent direction x{scale:g} (unconditional VAE){guided}", r))
  if args.name == "synthetic" and feature == "sentiment":
    for _, r in runs:
      r["content_bleu"] = synthetic_content(r)
      sources = sorted({s for o in r["outputs"].values() for s in o["sources"]})
      r["oracle_bleu"] = oracle_bleu(sources)
  outputs = {t: r.pop("outputs") for t, r in runs}
  lm_likelihood = _likelihood(args.lm, "test") if args.lm else None
  if args.outputs:
    with open(args.outputs, "w", encoding="utf-8") as f:
      json.dump(outputs, f, indent=0)
  with open(out + ".json", "w", encoding="utf-8") as f:
    json.dump({"runs": [{"method_title": t, **r} for t, r in runs], "commands": commands,
               "lm_likelihood": lm_likelihood}, f, indent=1)
  with open(out + ".md", "w", encoding="utf-8") as f:
    f.write(markdown(args.name, runs, commands, args.split, GOALS.get(args.name),
                     lm_likelihood))
  print(open(out + ".md", encoding="utf-8").read())


if __name__ == "__main__":
  main()
