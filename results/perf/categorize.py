import sys, re, json, glob, gzip, collections, os
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from step_setup import *
state, m = p(state, sb, tk); jax.block_until_ready(m)  # compiled before tracing
import jax
box = [state]
def run():
    box[0], m = p(box[0], sb, tk); return m
txt = p.lower(box[0], sb, tk).compile().as_text()
meta = {}
for l in txt.splitlines():
    mm = re.match(r"\s+(?:ROOT )?%([\w.\-]+) = .*?op_name=\"([^\"]*)\"", l)
    if mm: meta[mm.group(1)] = mm.group(2)
def cat(name):
    op = meta.get(name, "")
    bwd = "transpose(" in op
    for key, c in [("weighted_token_nll", "output layer"), ("gru.run", "GRU recurrence"), ("gru.project", "GRU input projection"),
                   ("embed", "embedding lookup"), ("latent_proj", "z projections"), ("init_state", "z projections"), ("posterior", "posterior head"),
                   ("encoder", "encoder other"), ("decoder", "decoder other")]:
        if key in op: return c + (" (backward)" if bwd else " (forward)")
    if op: return "optimizer/clip/other: " + op.split("/")[-1]
    return "unattributed: " + re.sub(r"\.\d+$", "", name)
for _ in range(3): run()
jax.block_until_ready(box[0])
d = "/tmp/perf/trc"; os.system(f"rm -rf {d}")
N = 20
import time
with jax.profiler.trace(d, create_perfetto_trace=True):
    t0 = time.time()
    for _ in range(N): m = run()
    jax.block_until_ready((box[0], m)); wall = (time.time() - t0) / N * 1e3
fn = glob.glob(f"{d}/**/*perfetto_trace.json.gz", recursive=True)[0]
tr = json.load(gzip.open(fn)); ev = tr["traceEvents"] if isinstance(tr, dict) else tr
agg = collections.Counter()
skip = ("Execute", "$", "Await", "end:", "PjitFunction", "Handle", "Allocate", "CreateOutputs", "ParseArguments", "PythonRefManager", "while")
for e in ev:
    if e.get("ph") == "X" and not any(s in e["name"] for s in skip):
        agg[cat(e["name"])] += e["dur"]
tot = sum(agg.values())
print(f"wall {wall:.1f} ms/step (traced); op time {tot/N/1000:.1f} ms/step")
for k, v in agg.most_common(40):
    print(f"{v/N/1000:7.2f} ms  {k}")
