"""Entry point: python -m textvae.main --config=configs/ptb.py --workdir=DIR.

Hyperparameters live in the config file; override them on the command line,
e.g. --config.model.latent_dim=32 --config.train.num_steps=1000.
"""

import difflib
import logging as pylogging
import sys

from absl import app
from absl import flags
from absl import logging
import jax
from ml_collections import config_flags

from textvae import allocator
from textvae import errors
from textvae import parallel
from textvae import train
from textvae import workdir as workdir_lib

FLAGS = flags.FLAGS
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints, metrics, "
                               "vocabulary and samples; a rerun resumes from it.")
_DISTRIBUTED = flags.DEFINE_bool(
    "distributed", None, "Call jax.distributed.initialize() (multi-host). Default: "
    "from the environment (TEXTVAE_DISTRIBUTED=1 or JAX_COORDINATOR_ADDRESS).")
config_flags.DEFINE_config_file("config", None, "Training configuration file.",
                                lock_config=True)
_KEEP_FREED_MEMORY = flags.DEFINE_bool(
    "keep_freed_memory", True, "glibc malloc keeps freed memory for reuse instead of "
    "unmapping it (textvae.allocator: ~15% faster steps on CPU; no value changes).")
flags.mark_flags_as_required(["config", "workdir"])


def config_keys(config) -> list[str]:
  """Every overridable key of a ConfigDict, sections included: 'train',
  'train.kl_schedule', 'train.kl_schedule.name', ..."""
  return list(workdir_lib.flatten(config, sections=True))


def unknown_override_errors(argv, flag_name: str = "config") -> list[str]:
  """One line per --config.KEY in `argv` that the config file does not have,
  naming the closest valid keys. [] when every key exists or when the config
  file itself cannot be loaded (absl then reports that)."""
  prefix = f"--{flag_name}."
  path = None
  for i, arg in enumerate(argv[1:], start=1):
    for dashes in ("--", "-"):
      if arg.startswith(f"{dashes}{flag_name}="):
        path = arg.split("=", 1)[1]
      elif arg == f"{dashes}{flag_name}" and i + 1 < len(argv):
        path = argv[i + 1]
  overrides = [a[len(prefix):].split("=", 1)[0] for a in argv[1:] if a.startswith(prefix)]
  if path is None or not overrides:
    return []
  try:
    config = config_flags.config_flags.ConfigFileFlagParser(name=flag_name).parse(path)
  except Exception:  # pylint: disable=broad-except
    return []
  keys = config_keys(config)
  errors = []
  for key in overrides:
    if key in keys:
      continue
    section, _, leaf = key.rpartition(".")
    siblings = [k for k in keys if k.rpartition(".")[0] == section]
    if siblings:  # the section exists: compare the last name with its keys
      by_leaf = {k.rpartition(".")[2]: k for k in siblings}
      close = [by_leaf[m] for m in difflib.get_close_matches(leaf, list(by_leaf), n=3,
                                                              cutoff=0.6)]
    else:  # e.g. a misspelt section: compare whole paths
      close = difflib.get_close_matches(key, keys, n=3, cutoff=0.6)
    if close:
      hint = "did you mean: " + ", ".join(f"--{flag_name}.{k}" for k in close)
    else:
      listed = siblings or [k for k in keys if "." not in k]
      hint = (f"valid keys in --{flag_name}{'.' + section if siblings and section else ''}: "
              + ", ".join(k.rpartition(".")[2] for k in listed))
    errors.append(f"error: unknown config key --{flag_name}.{key} (not in {path}); {hint}")
  return errors


def parse_flags(argv):
  """absl's flag parsing, but a misspelt --config.KEY is one clear line on
  stderr and exit status 2, not a traceback."""
  errors = unknown_override_errors(argv)
  if errors:
    sys.stderr.write("\n".join(errors) + "\n")
    sys.exit(2)
  return app.parse_flags_with_usage(argv)


class _QuietLibraries(pylogging.Filter):
  """Drops INFO records of Orbax and TFDS (one line per file written); keeps
  their warnings and errors."""

  def filter(self, record):
    noisy = ("/orbax/" in record.pathname or "/tensorflow_datasets/" in record.pathname)
    return not (noisy and record.levelno < pylogging.WARNING)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  logging.get_absl_handler().addFilter(_QuietLibraries())
  if _KEEP_FREED_MEMORY.value:
    allocator.keep_freed_memory()
  parallel.maybe_initialize_distributed(_DISTRIBUTED.value)
  logging.info("JAX process %d/%d, local devices: %s", jax.process_index(),
               jax.process_count(), jax.local_devices())
  train.train_and_evaluate(FLAGS.config, _WORKDIR.value)


if __name__ == "__main__":
  app.run(errors.cli_main(main), flags_parser=parse_flags)
