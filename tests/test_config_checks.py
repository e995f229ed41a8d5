"""Settings are refused before anything is written, each with one line naming the
field and its allowed values; every CLI ends a user mistake with that line on
stderr and a non-zero exit status, while a genuine bug keeps its traceback."""

import os
import subprocess
import sys

import pytest

from configs import default
from configs import ptb
from configs import ptb_lstm
from configs import override
from tests.helpers import REPO
from textvae import config_checks
from textvae import errors
from textvae import train


def test_every_shipped_config_passes():
  configs = [default.get_config()] + [ptb.get_config(v) for v in ptb.VARIANTS]
  configs += [ptb_lstm.get_config(v) for v in ptb_lstm.VARIANTS]
  for config in configs:
    config_checks.check_config(config)


BAD = [
    ("train.batch_size", 0, "an integer >= 1"),
    ("train.batch_size", -1, "an integer >= 1"),
    ("model.latent_dim", 0, "an integer >= 1 for model.kind='vae'"),
    ("train.eval_every_steps", 0, "an integer >= 1"),
    ("train.num_steps", -5, "an integer >= 1"),
    ("train.checkpoint_every_steps", 0, "an integer >= 1"),
    ("train.eval_importance_samples", 0, "an integer >= 1"),
    ("train.learning_rate", -1e-3, "a number >= 0"),
    ("train.adam_b2", 1.0, "a number in [0, 1)"),
    ("model.word_dropout", 1.0, "a number in [0, 1)"),
    ("model.embed_dropout", -0.1, "a number in [0, 1)"),
    ("model.output_dropout", 1.5, "a number in [0, 1)"),
    ("model.encoder_embed_dropout", 1.0, "a number in [0, 1)"),
    ("model.hidden_dim", 0, "an integer >= 1"),
    ("model.cell", "rnn", "one of 'gru', 'lstm'"),
    ("model.kind", "gan", "one of 'vae', 'lm'"),
    ("model.param_init", "zeros", "one of 'default', 'uniform'"),
    ("train.optimizer", "rmsprop", "one of 'adam', 'sgd'"),
    ("train.lr_schedule.name", "cosine", "one of 'constant', 'plateau'"),
    ("train.lr_schedule.factor", 1.0, "a number in (0, 1)"),
    ("train.lr_schedule.patience", 0, "an integer >= 1"),
    ("train.kl_schedule.name", "sigmoid", "one of 'constant', 'linear', 'logistic'"),
    ("train.kl_schedule.ratio", 0.0, "a number in (0, 1]"),
    ("train.kl_schedule.cycle_steps", 0, "an integer >= 1"),
    ("train.kl_schedule.warmup_steps", -1, "an integer >= 0"),
    ("train.free_bits.kind", "all", "one of 'none', 'per_dim', 'per_sentence_dim', 'batch'"),
    ("train.early_stopping.metric", "kl", "one of 'elbo', 'iw_nll', 'ppl', 'recon'"),
    ("data.max_length", 1, "an integer >= 2"),
    ("data.name", "imdb", "one of 'synthetic', 'ptb', 'text_files'"),
    ("data.vocab_size", 3, "0 (every training word) or an integer >= 5"),
    ("train.grad_clip", float("nan"), "a finite number"),
]


@pytest.mark.parametrize("key,value,allowed", BAD, ids=[f"{k}={v}" for k, v, _ in BAD])
def test_bad_setting_is_one_line_naming_field_and_range(key, value, allowed):
  config = default.get_config()
  override(config, {key: value})
  with pytest.raises(errors.ConfigError) as e:
    config_checks.check_config(config)
  message = str(e.value)
  assert message.startswith(f"config.{key}={value!r}: must be "), message
  assert allowed in message and "\n" not in message, message


def test_lm_takes_latent_dim_zero_and_text_files_needs_source_dir():
  config = default.get_config()
  config.model.kind, config.model.latent_dim = "lm", 0
  config_checks.check_config(config)
  config.data.name = "text_files"
  with pytest.raises(errors.ConfigError, match="config.data.source_dir=''"):
    config_checks.check_config(config)


def test_fields_a_config_lacks_are_skipped():
  """A workdir's config.json from before a field existed lacks it."""
  config = default.get_config()
  del config.train["aggressive"]
  del config.model["encoder_embed_dropout"]
  config_checks.check_config(config)


@pytest.mark.parametrize("key,value", [("train.batch_size", 0), ("model.latent_dim", 0),
                                       ("train.eval_every_steps", 0), ("train.num_steps", -5)])
def test_training_refuses_before_writing_anything(tmp_path, key, value):
  config = default.get_config()
  config.data.tfds_data_dir = str(tmp_path / "tfds")
  override(config, {key: value})
  workdir = tmp_path / "run"
  with pytest.raises(errors.ConfigError, match=f"config.{key}="):
    train.train_and_evaluate(config, str(workdir))
  assert not workdir.exists()
  assert not (tmp_path / "tfds").exists()  # refused before the corpus was prepared


def test_cli_main_prints_user_errors_and_keeps_bugs():
  def user_mistake(argv):
    raise errors.MissingFileError("W/config.json not found")

  def bug(argv):
    raise ValueError("a bug, not the user's")

  with pytest.raises(SystemExit) as e:
    errors.cli_main(user_mistake)([])
  assert e.value.code == errors.EXIT_STATUS != 0
  with pytest.raises(ValueError, match="a bug"):  # not caught: its traceback shows
    errors.cli_main(bug)([])


def test_cli_main_error_line_is_not_joined_to_another_threads_half_written_line():
  # After a failed save, Orbax's threads print tracebacks a piece at a time; one of
  # their lines can still lack its newline when the final error is written.
  script = ("import sys, threading\n"
            "from textvae import errors\n"
            "def library_thread():  # its newline is not written yet\n"
            "  sys.stderr.write('RuntimeError: Event loop is closed')\n"
            "def main(argv):\n"
            "  t = threading.Thread(target=library_thread)\n"
            "  t.start()\n"
            "  t.join()\n"
            "  raise errors.MissingFileError('W/config.json not found')\n"
            "errors.cli_main(main)([])\n")
  proc = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True,
                        text=True, timeout=60, env=dict(os.environ, JAX_PLATFORMS="cpu"))
  assert proc.returncode == errors.EXIT_STATUS
  assert "error: W/config.json not found" in proc.stderr.splitlines(), proc.stderr
  assert "RuntimeError: Event loop is closed" in proc.stderr.splitlines()  # kept, whole


def _cli(module, *args):
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  return subprocess.Popen([sys.executable, "-m", module, *args], cwd=REPO, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_every_cli_ends_a_user_mistake_in_one_line(tmp_path):
  missing = str(tmp_path / "no_workdir")
  runs = {  # started together: each is mostly the import of JAX
      "main": (_cli("textvae.main", "--config=configs/default.py", f"--workdir={missing}",
                    "--config.train.batch_size=0"),
               "error: config.train.batch_size=0: must be an integer >= 1"),
      "evaluate": (_cli("textvae.evaluate", f"--workdir={missing}",
                        "--num_importance_samples=0"),
                   "error: --num_importance_samples=0: must be an integer >= 1"),
      "generate": (_cli("textvae.generate", f"--workdir={missing}"),
                   f"error: {missing}/config.json not found: is {missing} a textvae workdir?"),
      "probe": (_cli("textvae.probe", f"--workdir={missing}"),
                f"error: {missing}/config.json not found: is {missing} a textvae workdir?"),
  }
  for name, (proc, expected) in runs.items():
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == errors.EXIT_STATUS, (name, proc.returncode, err[-2000:])
    assert "Traceback" not in err, (name, err[-2000:])
    assert err.strip().splitlines()[-1] == expected, (name, err[-2000:])
    assert out == "", (name, out)
  assert not os.path.exists(missing)
