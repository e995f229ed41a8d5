"""The launch scripts: shellcheck-clean, executable, and passing "$@" through.
(launch/local.sh also runs end to end in tests/test_multiprocess.py, as the
1-device run compared with the 4-device one.)"""

import os
import shutil
import subprocess
import sys

import pytest

LAUNCH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "launch")
SCRIPTS = ("local.sh", "gpu.sh", "tpu_vm.sh", "slurm.sh", "ptb_table.sh")


def test_launch_scripts_exist_and_are_executable():
  for name in SCRIPTS:
    path = os.path.join(LAUNCH, name)
    assert os.access(path, os.X_OK), f"{path} is missing or not executable"
    text = open(path, encoding="utf-8").read()
    assert text.startswith("#!/usr/bin/env bash\n") and "set -euo pipefail" in text, name
    assert '"$@"' in text or "printf '%q ' \"$@\"" in text, f"{name} does not pass its arguments"


@pytest.mark.skipif(shutil.which("shellcheck") is None,
                    reason="shellcheck not installed (apt-get install -y shellcheck; .ci/run does)")
def test_launch_scripts_pass_shellcheck():
  paths = [os.path.join(LAUNCH, name) for name in SCRIPTS + ("venv.sh",)]
  result = subprocess.run(["shellcheck", "--shell=bash", *paths], capture_output=True,
                          text=True, check=False)
  assert result.returncode == 0, result.stdout + result.stderr


def _ptb_table(tmp_path, **env):
  full = dict(os.environ, RUNS=str(tmp_path / "runs"), TEXTVAE_PYTHON=sys.executable, **env)
  return subprocess.run([os.path.join(LAUNCH, "ptb_table.sh")], capture_output=True,
                        text=True, check=True, env=full, cwd=tmp_path)


def test_ptb_table_runs_every_row_with_its_documented_command(tmp_path):
  from configs import ptb_lstm  # pylint: disable=g-import-not-at-top
  out = _ptb_table(tmp_path, DRY_RUN="1").stdout.splitlines()
  assert len(out) == len(ptb_lstm.TABLE_ROWS) == len(ptb_lstm.VARIANTS) - 1  # not `ae`
  for row, line in zip(ptb_lstm.TABLE_ROWS, out):
    assert f"--config=configs/ptb_lstm.py:{row}" in line
    assert f"--workdir={tmp_path}/runs/{row}" in line
    assert "--num_importance_samples=500" in line and f"--collect {row}=" in line
  # The autoencoder run trains first, and the row starts from its workdir.
  line = out[ptb_lstm.TABLE_ROWS.index("pretrain_fb_ae")]
  ae = line.index(f"--config=configs/ptb_lstm.py:ae --config.data.source_dir=../shared/data/ptb "
                  f"--workdir={tmp_path}/runs/ae && ")
  assert ae < line.index(f"--config.train.init_from.workdir={tmp_path}/runs/ae "
                         f"--workdir={tmp_path}/runs/pretrain_fb_ae")
  assert "--hardware" not in " ".join(out)  # the tool's own default then


def test_ptb_table_passes_hardware_to_every_collect(tmp_path):
  out = _ptb_table(tmp_path, DRY_RUN="1", HARDWARE="1 core (taskset -c 0); no GPU").stdout
  lines = out.splitlines()
  assert lines and all(
      line.rstrip().endswith(r"--hardware=1\ core\ \(taskset\ -c\ 0\)\;\ no\ GPU")
      for line in lines), out


def test_ptb_table_gives_each_row_a_core_no_running_row_holds(tmp_path):
  """A row starts on a core whose row has ended, not on the next core in turn,
  and CORES confines the rows to the cores given (a row added beside another)."""
  bin_dir = tmp_path / "bin"
  bin_dir.mkdir()
  log = tmp_path / "pins.log"
  (bin_dir / "taskset").write_text(  # logs the core and the row, then runs the row
      '#!/usr/bin/env bash\nrow="${5#*ptb_lstm.py:}"; echo "$2 ${row%% *}" >> "$PIN_LOG"\n'
      'shift 2; exec "$@"\n')
  # Training stands in: `vae` takes 3 s, every other command returns at once.
  (bin_dir / "python").write_text(
      f'#!/usr/bin/env bash\nif [ "$1" = -c ]; then exec {sys.executable} "$@"; fi\n'
      'case "$*" in *ptb_lstm.py:vae\\ *) sleep 3 ;; esac\n')
  for f in ("taskset", "python"):
    (bin_dir / f).chmod(0o755)
  env = dict(PIN_LOG=str(log), PATH=f"{bin_dir}:{os.environ['PATH']}",
             JAX_PLATFORMS="cpu")
  def run(*rows, **more):
    log.write_text("")
    full = dict(os.environ, RUNS=str(tmp_path / "runs"), TEXTVAE_PYTHON=str(bin_dir / "python"),
                **env, **more)
    subprocess.run([os.path.join(LAUNCH, "ptb_table.sh"), *rows], capture_output=True,
                   text=True, check=True, env=full, cwd=tmp_path)
    return log.read_text().splitlines()
  # vae holds core 0 while bowman ends on core 1: cyclical goes to core 1, not 0.
  # (Rows started together may log in either order.)
  pins = run("vae", "bowman", "cyclical", CORES="0 1")
  assert sorted(pins[:2]) == ["0 vae", "1 bowman"] and pins[2:] == ["1 cyclical"]
  assert run("bowman", CORES="1") == ["1 bowman"]
  assert sorted(run("bowman", "lm", CORES="3,2")) == ["2 lm", "3 bowman"]


def test_ptb_table_submits_one_slurm_job_per_row(tmp_path):
  bin_dir = tmp_path / "bin"
  bin_dir.mkdir()
  fake = bin_dir / "sbatch"
  fake.write_text('#!/usr/bin/env bash\nprintf "%s\\n" "$*" >> "$SBATCH_LOG"\n')
  fake.chmod(0o755)
  log = tmp_path / "sbatch.log"
  _ptb_table(tmp_path, SLURM="1", SBATCH_LOG=str(log), TABLE="gru",
             PATH=f"{bin_dir}:{os.environ['PATH']}")
  jobs = log.read_text().splitlines()
  from configs import ptb  # pylint: disable=g-import-not-at-top
  rows = [v for v in ptb.VARIANTS if v != "svae"]
  assert len(jobs) == len(rows)
  for row, job in zip(rows, jobs):
    assert f"--job-name=ptb-gru-{row}" in job and f"configs/ptb.py:{row}" in job
