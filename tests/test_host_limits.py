"""The warning about vm.max_map_count: a CPU run on a host at the kernel's
default limit (65,530) is told the fix before it starts; a raised limit, a GPU
run, or a host without the file (not Linux) hear nothing."""

from absl import logging as absl_logging

from textvae import host_limits
from textvae import train
from tests.helpers import tiny_config


def _limit_file(tmp_path, text):
  path = tmp_path / "max_map_count"
  path.write_text(text)
  return str(path)


def test_reads_the_limit(tmp_path):
  assert host_limits.read_limit(_limit_file(tmp_path, "65530\n")) == 65530
  assert host_limits.read_limit(_limit_file(tmp_path, "not a number")) is None
  assert host_limits.read_limit(str(tmp_path / "absent")) is None


def test_a_cpu_host_at_the_kernel_default_is_told_the_fix():
  message = host_limits.low_limit_message("cpu", 65530)
  assert "65530" in message and "sudo sysctl -w vm.max_map_count=262144" in message
  assert host_limits.low_limit_message("cpu", 262144) is None
  assert host_limits.low_limit_message("cpu", None) is None
  assert host_limits.low_limit_message("gpu", 65530) is None


def test_training_warns_at_start_on_a_low_limit(tmp_path, monkeypatch):
  warnings = []
  monkeypatch.setattr(host_limits, "read_limit", lambda path=None: 65530)
  monkeypatch.setattr(absl_logging, "warning", lambda fmt, *a: warnings.append(fmt % a))
  train.train_and_evaluate(tiny_config(tmp_path, num_steps=2), str(tmp_path / "w"))
  assert any("vm.max_map_count is 65530" in w for w in warnings)
