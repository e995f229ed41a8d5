"""textvae.allocator: freed large buffers are reused instead of being unmapped
and faulted in again (the page faults of a fresh buffer per XLA:CPU step)."""

import json
import os
import platform
import subprocess
import sys

import pytest

from textvae import allocator

# A child process allocates, fills and frees a 64 MiB buffer 20 times, as a
# compiled step does with its temporaries, and reports the minor page faults of
# all but the first round.
_CHILD = r"""
import ctypes, ctypes.util, json, resource, sys
from textvae import allocator
ok = allocator.keep_freed_memory() if sys.argv[1] == "keep" else None
libc = ctypes.CDLL(ctypes.util.find_library("c"))
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = (ctypes.c_size_t,)
libc.free.argtypes = (ctypes.c_void_p,)
SIZE = 64 << 20
def round_trip():
  p = libc.malloc(SIZE)
  ctypes.memset(p, 1, SIZE)
  libc.free(p)
round_trip()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
  round_trip()
print(json.dumps({"ok": ok, "faults": resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before}))
"""


def _faults(mode):
  env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  env.pop("MALLOC_MMAP_MAX_", None)
  env.pop("MALLOC_TRIM_THRESHOLD_", None)
  out = subprocess.run([sys.executable, "-c", _CHILD, mode], check=True, env=env,
                       stdout=subprocess.PIPE, text=True).stdout
  return json.loads(out)


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's mallopt")
def test_freed_buffers_are_reused_without_page_faults():
  kept, default = _faults("keep"), _faults("default")
  assert kept["ok"] is True
  # 20 rounds of 64 MiB: 327,680 faults of 4 KiB pages (640 of 2 MiB pages where
  # transparent huge pages are always on) when each buffer is a new mapping.
  assert default["faults"] >= 600, default
  assert kept["faults"] <= 64, kept


def test_not_glibc_changes_nothing_and_says_so(monkeypatch, caplog):
  monkeypatch.setattr(platform, "libc_ver", lambda: ("", ""))
  assert allocator.keep_freed_memory() is False
  assert "not a glibc system, malloc left as it is" in caplog.text
