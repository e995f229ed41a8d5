"""What a run trained on, recorded by each training process when it starts.

A row of a results table needs its hardware, and a long run can move: resumed
on another machine, another core, or a GPU. Each training process appends one
line to `W/hardware.jsonl` (the step it starts from, the time, the CPU model
and its vector extensions, the cores it may run on, the accelerators), and
`describe_history` turns those lines into the table's text, one segment per
change. Process 0 writes it, describing its own host; the hosts of a
multi-process run are taken to be alike (the line counts the processes).
"""

from __future__ import annotations

import json
import os
import platform
import time

import jax

FILENAME = "hardware.jsonl"
# Vector extensions that decide CPU matmul speed, widest first.
_ISA = (("avx512f", "AVX-512"), ("avx2", "AVX2"), ("avx", "AVX"), ("asimd", "NEON"))


def path(workdir: str) -> str:
  return os.path.join(workdir, FILENAME)


def cpu_info(cpuinfo: str = "/proc/cpuinfo") -> dict:
  """The CPU's model name and widest vector extension, from `cpuinfo` (Linux;
  elsewhere the model is `platform.processor()` and the extension unknown)."""
  model, flags = "", set()
  try:
    with open(cpuinfo, encoding="utf-8", errors="replace") as f:
      for line in f:
        key, _, value = line.partition(":")
        key = key.strip()
        if key in ("model name", "Model") and not model:
          model = value.strip()
        elif key in ("flags", "Features") and not flags:
          flags = set(value.split())
  except OSError:
    pass
  isa = next((name for flag, name in _ISA if flag in flags), "")
  return {"cpu_model": model or platform.processor() or "unknown", "cpu_isa": isa}


def usable_cores() -> list[int] | None:
  """The cores this process may run on (its affinity, e.g. set by taskset);
  None where the platform does not say."""
  try:
    return sorted(os.sched_getaffinity(0))
  except AttributeError:
    return None


def current(cpuinfo: str = "/proc/cpuinfo") -> dict:
  """This process's host: machine, CPU, usable cores, local accelerators."""
  accelerators = [d.device_kind for d in jax.local_devices() if d.platform != "cpu"]
  return {"machine": platform.machine(), **cpu_info(cpuinfo), "cpu_count": os.cpu_count(),
          "cores": usable_cores(), "accelerators": accelerators,
          "process_count": jax.process_count()}


def record(workdir: str, step: int, host: dict | None = None) -> dict:
  """Appends this process's host, starting at `step`, to W/hardware.jsonl."""
  row = {"step": int(step), "time": time.time(), **(host if host is not None else current())}
  with open(path(workdir), "a", encoding="utf-8") as f:
    f.write(json.dumps(row) + "\n")
  return row


def describe(host: dict) -> str:
  """One host as a table's hardware text, e.g. '1 core (taskset -c 1) of a
  2-core x86_64 CPU (AMD EPYC, AVX2); no GPU' or '1 x NVIDIA H100'."""
  n = host.get("process_count", 1)
  hosts = f"{n} hosts of " if n > 1 else ""
  if host.get("accelerators"):
    kinds = host["accelerators"]
    return hosts + ", ".join(f"{kinds.count(k)} x {k}" for k in dict.fromkeys(kinds))
  cpu = ", ".join(x for x in (host.get("cpu_model"), host.get("cpu_isa")) if x)
  total, cores = host.get("cpu_count"), host.get("cores")
  chip = f"{total}-core {host.get('machine', '')} CPU ({cpu})"
  if cores is None or len(cores) == total:
    return f"{hosts}{chip}; no GPU"
  used = f"{len(cores)} core{'s' if len(cores) > 1 else ''} (taskset -c {_ranges(cores)})"
  return f"{hosts}{used} of a {chip}; no GPU"


def describe_history(rows: list[dict]) -> str | None:
  """The hardware of a run from its hardware.jsonl rows, in the order its
  processes started: one text where it never changed, else each text with the
  steps it trained ('A to step s; B from step s'). A run whose first recorded
  process did not start at step 0 says so. None without rows."""
  segments = []  # [text, first step]
  for row in rows:
    text = describe(row)
    if not segments or segments[-1][0] != text:
      segments.append([text, int(row["step"])])
  if not segments:
    return None
  if len(segments) == 1:
    text, start = segments[0]
    return text if start == 0 else f"{text} from step {start:,} (not recorded before)"
  parts = []
  for i, (text, start) in enumerate(segments):
    end = segments[i + 1][1] if i + 1 < len(segments) else None
    span = (f"from step {start:,}" if end is None else
            f"to step {end:,}" if start == 0 else f"steps {start:,} to {end:,}")
    parts.append(f"{text}, {span}")
  prefix = "" if segments[0][1] == 0 else f"not recorded before step {segments[0][1]:,}; "
  return prefix + "; ".join(parts)


def _ranges(cores: list[int]) -> str:
  """[0, 1, 2, 5] -> '0-2,5' (taskset's notation)."""
  out, start = [], None
  for i, c in enumerate(cores):
    if start is None:
      start = c
    if i + 1 == len(cores) or cores[i + 1] != c + 1:
      out.append(str(start) if start == c else f"{start}-{c}")
      start = None
  return ",".join(out)
