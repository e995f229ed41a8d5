"""Test set-up: four host CPU devices (for the multi-device tests) and the
suite's compile flags (tests/helpers.py), set before JAX is imported anywhere."""

import os
import shutil
import tempfile

from tests.helpers import xla_flags

os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + xla_flags(4)).strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")

# One persistent compilation cache for the whole run, its subprocesses (the
# CLI tests) and its xdist workers: the suite compiles the same small programs
# in many processes, and reading one back takes a tenth of compiling it.
# Compiled programs are the same either way, so numbers do not change.
# The first process to load this file (pytest itself, or xdist's controller)
# makes the folder; workers and subprocesses inherit it through the environment.
_OWN_CACHE = "TEXTVAE_TEST_JAX_CACHE" not in os.environ
if _OWN_CACHE:
  os.environ["TEXTVAE_TEST_JAX_CACHE"] = tempfile.mkdtemp(prefix="textvae-test-jax-cache-")
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", os.environ["TEXTVAE_TEST_JAX_CACHE"])
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")


import gc

import pytest


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs():
  """Drop every compiled program after each test module. One pytest process
  compiles thousands of XLA executables over the suite; each holds its own
  memory mappings, and past vm.max_map_count (65,530 on many Linux hosts) LLVM
  cannot map code any more and the process dies (a segfault or 'Unable to
  allocate section memory')."""
  yield
  import jax  # imported here: XLA_FLAGS above must be set first
  jax.clear_caches()
  gc.collect()


def pytest_unconfigure(config):
  if _OWN_CACHE:  # pytest itself or xdist's controller, after every worker
    shutil.rmtree(os.environ.pop("TEXTVAE_TEST_JAX_CACHE"), ignore_errors=True)


# The longest modules (pytest --durations on the 2-core machine), longest
# first; every other module keeps its place after them. `--dist loadfile`
# gives each module to one worker in this order (pytest.ini turns off xdist's
# own reordering by test count), so no long module starts last while the
# other worker has nothing left to do.
LONGEST_MODULES = (
    "test_multiprocess.py", "test_workdir_integrity.py", "test_control.py",
    "test_reliability.py", "test_collapse.py", "test_evaluation.py",
    "test_early_stopping.py", "test_remedy_resume.py", "test_steps.py", "test_train.py",
    "test_conditional.py", "test_buckets.py", "test_schedule_resume.py",
)


def pytest_collection_modifyitems(config, items):
  rank = {name: i for i, name in enumerate(LONGEST_MODULES)}
  items.sort(key=lambda item: rank.get(item.path.name, len(rank)))
