"""The launch scripts: shellcheck-clean, executable, and passing "$@" through.
(launch/local.sh also runs end to end in tests/test_multiprocess.py, as the
1-device run compared with the 4-device one.)"""

import os
import shutil
import subprocess

import pytest

LAUNCH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "launch")
SCRIPTS = ("local.sh", "gpu.sh", "tpu_vm.sh", "slurm.sh")


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
  paths = [os.path.join(LAUNCH, name) for name in SCRIPTS]
  result = subprocess.run(["shellcheck", "--shell=bash", *paths], capture_output=True,
                          text=True, check=False)
  assert result.returncode == 0, result.stdout + result.stderr
