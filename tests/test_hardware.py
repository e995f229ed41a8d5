"""textvae.hardware: what a run trained on, as the results tables print it."""

import json
import os

from textvae import hardware

XEON = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz
flags\t\t: fpu sse2 avx avx2 avx512f avx512bw
processor\t: 1
model name\t: Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz
flags\t\t: fpu sse2 avx avx2 avx512f avx512bw
"""
EPYC = "processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu sse2 avx fma avx2 sha_ni\n"
ARM = "processor\t: 0\nBogoMIPS\t: 50.00\nFeatures\t: fp asimd evtstrm aes\n"


def _host(cpuinfo_text, tmp_path, **fields):
  path = tmp_path / "cpuinfo"
  path.write_text(cpuinfo_text)
  host = {"machine": "x86_64", **hardware.cpu_info(str(path)), "cpu_count": 2,
          "cores": [0, 1], "accelerators": [], "process_count": 1}
  host.update(fields)
  return host


def test_cpu_model_and_widest_vector_extension_from_cpuinfo(tmp_path):
  assert _host(XEON, tmp_path)["cpu_model"] == "Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz"
  assert _host(XEON, tmp_path)["cpu_isa"] == "AVX-512"
  assert (_host(EPYC, tmp_path)["cpu_model"], _host(EPYC, tmp_path)["cpu_isa"]) == (
      "AMD EPYC", "AVX2")
  assert _host(ARM, tmp_path)["cpu_isa"] == "NEON"
  assert hardware.cpu_info(str(tmp_path / "missing"))["cpu_isa"] == ""


def test_describe_names_the_cores_a_pinned_process_may_use(tmp_path):
  assert hardware.describe(_host(EPYC, tmp_path, cores=[1])) == (
      "1 core (taskset -c 1) of a 2-core x86_64 CPU (AMD EPYC, AVX2); no GPU")
  assert hardware.describe(_host(EPYC, tmp_path)) == "2-core x86_64 CPU (AMD EPYC, AVX2); no GPU"
  assert hardware.describe(_host(EPYC, tmp_path, cpu_count=8, cores=[0, 1, 2, 5])) == (
      "4 cores (taskset -c 0-2,5) of a 8-core x86_64 CPU (AMD EPYC, AVX2); no GPU")
  assert hardware.describe(_host(EPYC, tmp_path, accelerators=["NVIDIA H100"] * 2)) == (
      "2 x NVIDIA H100")
  assert hardware.describe(_host(EPYC, tmp_path, accelerators=["TPU v4"] * 4,
                                 process_count=2)) == "2 hosts of 4 x TPU v4"


def test_history_gives_each_machine_its_steps(tmp_path):
  xeon1 = _host(XEON, tmp_path, cores=[1])
  epyc0 = _host(EPYC, tmp_path, cores=[0])
  one_core = "1 core (taskset -c {}) of a 2-core x86_64 CPU ({}); no GPU"
  xeon_text = one_core.format(1, "Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz, AVX-512")
  epyc_text = one_core.format(0, "AMD EPYC, AVX2")
  # Resumed twice on the same core: one text; moved: each with its steps.
  assert hardware.describe_history(
      [dict(xeon1, step=0), dict(xeon1, step=500), dict(xeon1, step=900)]) == xeon_text
  assert hardware.describe_history(
      [dict(xeon1, step=0), dict(epyc0, step=500), dict(epyc0, step=900),
       dict(xeon1, step=1200)]) == (
           f"{xeon_text}, to step 500; {epyc_text}, steps 500 to 1,200; "
           f"{xeon_text}, from step 1,200")
  # A run whose first processes did not record their host (older code) says so.
  assert hardware.describe_history([dict(epyc0, step=18396)]) == (
      f"{epyc_text} from step 18,396 (not recorded before)")
  assert hardware.describe_history(
      [dict(epyc0, step=100), dict(xeon1, step=300)]) == (
          f"not recorded before step 100; {epyc_text}, steps 100 to 300; "
          f"{xeon_text}, from step 300")
  assert hardware.describe_history([]) is None


def test_record_appends_this_process_host(tmp_path):
  hardware.record(str(tmp_path), 0)
  hardware.record(str(tmp_path), 40, {"machine": "m", "cpu_count": 1})
  rows = [json.loads(line) for line in open(hardware.path(str(tmp_path)), encoding="utf-8")]
  assert [r["step"] for r in rows] == [0, 40]
  assert rows[0]["cores"] == sorted(os.sched_getaffinity(0))
  assert rows[0]["cpu_count"] == os.cpu_count() and rows[0]["accelerators"] == []
  assert rows[1]["machine"] == "m" and rows[1]["time"] >= rows[0]["time"]
