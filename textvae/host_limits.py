"""The host limit that long XLA:CPU runs meet: Linux's vm.max_map_count.

XLA:CPU maps the code, read-only data and data of every module it compiles, or
loads from the compilation cache, as separate memory mappings, and a run keeps
one executable per batch shape and function: on PTB, 82 batch lengths times the
train step(s) and the validation's functions. Measured on a 2-core Xeon with
jax 0.10: a plain LSTM row holds about 54,000 mappings after its first
validation, and the aggressive row (three train functions) 57,000 after its
first when it loads them from the compilation cache; compiling them, it reached
the kernel's default limit, 65,530, at that validation, where LLVM failed with
'Cannot allocate memory' (with 15 GiB free) and the process died with a
segmentation fault, losing the work since its last checkpoint. Nothing in the
process can recover from that, so the run says so when it starts; the remedy is
the host's."""

from __future__ import annotations

RECOMMENDED = 262_144
LIMIT_PATH = "/proc/sys/vm/max_map_count"


def read_limit(path: str = LIMIT_PATH) -> int | None:
  """The host's vm.max_map_count; None where there is no such file (not Linux)."""
  try:
    with open(path, encoding="ascii") as f:
      return int(f.read().strip())
  except (OSError, ValueError):
    return None


def low_limit_message(platform: str, limit: int | None) -> str | None:
  """The warning for a CPU run on a host whose limit is below RECOMMENDED,
  naming the fix; None where there is nothing to say."""
  if platform != "cpu" or limit is None or limit >= RECOMMENDED:
    return None
  return (f"vm.max_map_count is {limit} on this host ({LIMIT_PATH}). XLA:CPU maps every "
          "compiled module separately, and a long run with many batch lengths can pass that "
          "limit (measured: the PTB aggressive row at its first validation, a plain row at "
          "54,000 mappings); the process then dies with 'LLVM compilation error: Cannot "
          "allocate memory' and a segmentation fault. Raise it before long runs: "
          f"sudo sysctl -w vm.max_map_count={RECOMMENDED}")
