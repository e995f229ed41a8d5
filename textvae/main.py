"""Entry point: python -m textvae.main --config=configs/ptb.py --workdir=DIR.

Hyperparameters live in the config file; override them on the command line,
e.g. --config.model.latent_dim=32 --config.train.num_steps=1000.
"""

import logging as pylogging

from absl import app
from absl import flags
from absl import logging
import jax
from ml_collections import config_flags

from textvae import parallel
from textvae import train

FLAGS = flags.FLAGS
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints, metrics, "
                               "vocabulary and samples; a rerun resumes from it.")
_DISTRIBUTED = flags.DEFINE_bool(
    "distributed", None, "Call jax.distributed.initialize() (multi-host). Default: "
    "from the environment (TEXTVAE_DISTRIBUTED=1 or JAX_COORDINATOR_ADDRESS).")
config_flags.DEFINE_config_file("config", None, "Training configuration file.",
                                lock_config=True)
flags.mark_flags_as_required(["config", "workdir"])


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
  parallel.maybe_initialize_distributed(_DISTRIBUTED.value)
  logging.info("JAX process %d/%d, local devices: %s", jax.process_index(),
               jax.process_count(), jax.local_devices())
  train.train_and_evaluate(FLAGS.config, _WORKDIR.value)


if __name__ == "__main__":
  app.run(main)
