"""tools/make_ptb_table.py: the table is built only from collected runs, and says
how each run ended."""

import importlib.util
import json
import os

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.fixture(name="table")
def fixture_table(tmp_path, monkeypatch):
  spec = importlib.util.spec_from_file_location(
      "make_ptb_table", os.path.join(HERE, "..", "tools", "make_ptb_table.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  monkeypatch.setattr(module, "RUNS", str(tmp_path / "results_ptb"))
  monkeypatch.setattr(module, "LSTM_RUNS", str(tmp_path / "results_ptb_lstm"))
  return module


def _workdir(path, *, final, lr_schedule=None):
  os.makedirs(path / "checkpoints" / "2628")
  (path / "vocab.json").write_text("{}")
  (path / "config.json").write_text(json.dumps({"model": {"kind": "vae"}}))
  with open(path / "metrics.jsonl", "w", encoding="utf-8") as f:
    for step, nll in [(1314, 120.0), (2628, 118.5)]:
      f.write(json.dumps({"step": step, "valid/iw_nll": nll, "valid/kl": 6.0}) + "\n")
      f.write(json.dumps({"step": step, "train/tokens_per_s": 3000.0}) + "\n")
  (path / "eval_test.json").write_text(json.dumps(
      {"iw_nll": 117.25, "ppl": 130.5, "elbo": -121.0, "kl": 6.5, "mi": 4.25, "au": 32,
       "step": 2628, "checkpoint": "best", "num_importance_samples": 500, "model": "vae"}))
  if final:
    (path / "final_metrics.json").write_text(json.dumps(
        {"step": 6570, "best_step": 2628, "early_stopping": {
            "metric": "iw_nll", "stopped": lr_schedule is None, "evals_since_best": 3},
         "lr_schedule": lr_schedule}))


def test_table_rows_come_from_collected_runs(table, tmp_path):
  _workdir(tmp_path / "bn", final=True)
  _workdir(tmp_path / "lmrun", final=False)
  table.collect("bnvae", str(tmp_path / "bn"), "test CPU")
  table.collect("lm", str(tmp_path / "lmrun"), None)
  text = table.build()
  gru = text[text.index("## GRU"):]
  rows = {line.split(" | ")[0].strip("| "): line for line in gru.splitlines()
          if line.startswith("| ")}
  assert "| 117.25 | 500 | 130.50 | -121.00 | 6.50 | 4.25 | 32 | 2628 (2) |" in rows["bnvae"]
  assert "early stop at step 6570 (3 validations without a better iw_nll)" in rows["bnvae"]
  assert "test CPU" in rows["bnvae"]
  assert "interrupted at step 2628: not converged" in rows["lm"]
  assert "not run yet" in rows["vae"] and "not run yet" not in rows["bnvae"]
  assert "The IW-NLL with other importance samples" not in text
  (tmp_path / "results_ptb" / "bnvae" / "eval_test_seed1.json").write_text(json.dumps(
      {"iw_nll": 117.3125, "seed": 1, "num_importance_samples": 500, "step": 2628}))
  assert "| bnvae | 1 | 500 | 117.312 | 2628 | `eval_test_seed1.json` |" in table.build()
  summary = json.load(open(tmp_path / "results_ptb" / "bnvae" / "train_summary.json"))
  assert summary["median_train_tokens_per_s"] == 3000.0
  assert summary["last_valid"]["iw_nll"] == 118.5


def test_collect_refuses_a_run_without_test_evaluation(table, tmp_path):
  _workdir(tmp_path / "bn", final=True)
  os.remove(tmp_path / "bn" / "eval_test.json")
  with pytest.raises(SystemExit, match="eval_test.json not found"):
    table.collect("bnvae", str(tmp_path / "bn"), None)
  with pytest.raises(SystemExit, match="unknown variant 'bn'"):
    table.collect("bn", str(tmp_path / "bn"), None)


def test_collect_refuses_a_run_not_started_before_copying_any_row(table, tmp_path):
  """A row whose prerequisite still trains has no workdir yet: the error names the
  missing file and the prerequisite, and nothing the command names is written."""
  _workdir(tmp_path / "sent", final=False)
  table.not_run("pretrain_fb_sent", "not started", "lstm")
  table.not_run("pretrain_fb_ae", "its ae trains", "lstm")
  out = tmp_path / "ptb.md"
  with pytest.raises(SystemExit, match=r"--collect pretrain_fb_ae=.*ae/config.json not found"
                     r": the run of pretrain_fb_ae has not started in .*prerequisite run 'ae'"):
    table.main(["--table=lstm", "--progress", f"--output={out}", "--not_run", "vae=later",
                "--collect",
                f"pretrain_fb_sent={tmp_path / 'sent'}", f"pretrain_fb_ae={tmp_path / 'ae'}"])
  lstm = tmp_path / "results_ptb_lstm"
  assert sorted(os.listdir(lstm / "pretrain_fb_sent")) == ["not_run.json"]
  assert sorted(os.listdir(lstm / "pretrain_fb_ae")) == ["not_run.json"]
  assert not (lstm / "vae").exists()
  assert not out.exists()


def test_literature_table_and_published_rows(table, tmp_path):
  _workdir(tmp_path / "lm", final=True,
           lr_schedule={"finished": True, "decays": 5, "learning_rate": 0.03125})
  table.collect("lm", str(tmp_path / "lm"), "test CPU", table="lstm")
  assert os.path.exists(tmp_path / "results_ptb_lstm" / "lm" / "eval_test.json")
  assert not os.path.exists(tmp_path / "results_ptb" / "lm")
  text = table.build()
  lstm = text[text.index("## The literature setting"):text.index("## GRU")]
  lm_row = [l for l in lstm.splitlines() if l.startswith("| lm |")][0]
  assert "stopped after 5 learning-rate halvings at step 6570 (epoch 5)" in lm_row
  assert "configs/ptb_lstm.py:lm" in lm_row and "--table=lstm" in lm_row
  # The published NLL derived from a PPL: log(96.86) * 82430 / 3761 = 100.23.
  assert "| 100.23 (from PPL) | 96.86 | 6.54 | 5.31 | 32 |" in lstm
  assert "| 101.04 | 100.47 |" in lstm


def test_a_run_in_progress_is_listed_with_its_best_validation(table, tmp_path):
  _workdir(tmp_path / "fb", final=False)
  os.remove(tmp_path / "fb" / "eval_test.json")
  table.collect("pretrain_fb", str(tmp_path / "fb"), "test CPU", table="lstm", progress=True)
  assert not os.path.exists(tmp_path / "results_ptb_lstm" / "pretrain_fb" / "eval_test.json")
  row = [l for l in table.build().splitlines() if l.startswith("| pretrain_fb |")][0]
  assert "training (best valid 118.50 at epoch 2)" in row
  assert "| still training at step 2628 |" in row and "interrupted" not in row
  # With a plateau schedule: the halvings so far (the rate as logged, resumes repeat it).
  with open(tmp_path / "fb" / "metrics.jsonl", "a", encoding="utf-8") as f:
    for step, rate in [(1314, 1.0), (2628, 1.0), (2628, 0.5), (2628, 0.5), (3942, 0.25)]:
      f.write(json.dumps({"step": step, "train/learning_rate": rate}) + "\n")
  assert table.summarise_log(str(tmp_path / "fb"), running=True)["ended"] == (
      "still training at step 3942 after 2 learning-rate halvings (rate 0.25)")
  # The same log, no longer training and collected as it stands: stopped by hand.
  assert table.summarise_log(str(tmp_path / "fb"))["ended"] == (
      "interrupted at step 3942 after 2 learning-rate halvings (rate 0.25): not converged")


def test_the_best_validation_is_the_runs_own_selection(table, tmp_path):
  """Validations before early_stopping.min_step (pretrain_fb's autoencoder phase)
  are not candidates, however low, and a step validated again after a resume
  counts with its later line, as the run's own tracker takes them."""
  w = tmp_path / "fb"
  _workdir(w, final=False)
  with open(w / "metrics.jsonl", "a", encoding="utf-8") as f:
    f.write(json.dumps({"step": 3942, "valid/iw_nll": 119.0}) + "\n")
  def config(**early_stopping):
    (w / "config.json").write_text(json.dumps(
        {"model": {"kind": "vae"}, "train": {"early_stopping": early_stopping}}))
  config(metric="iw_nll", min_step=3000)  # 1314 and 2628 are autoencoder validations
  assert table.summarise_log(str(w))["best_valid"] == {"step": 3942, "value": 119.0}
  config(metric="iw_nll")
  assert table.summarise_log(str(w))["best_valid"] == {"step": 2628, "value": 118.5}
  with open(w / "metrics.jsonl", "a", encoding="utf-8") as f:
    f.write(json.dumps({"step": 2628, "valid/iw_nll": 118.75}) + "\n")  # 2628 run again
  assert table.summarise_log(str(w))["best_valid"] == {"step": 2628, "value": 118.75}

def test_an_interim_test_evaluation_is_listed_until_the_final_one_is_collected(table, tmp_path):
  _workdir(tmp_path / "lm", final=False)
  os.rename(tmp_path / "lm" / "eval_test.json", tmp_path / "lm" / "eval_test_interim.json")
  table.collect("lm", str(tmp_path / "lm"), "test CPU", table="lstm", progress=True)
  row = [l for l in table.build().splitlines() if l.startswith("| lm |")][0]
  assert ("| interim: 117.25, training (best valid 118.50 at epoch 2) | 500 | 130.50 | "
          "-121.00 | 6.50 | 4.25 | 32 | 2628 (2) | still training at step 2628 |") in row
  assert "interim" in table.build().split("## The literature")[0]  # the header says what it is
  # The run's final evaluation replaces it.
  _workdir(tmp_path / "lm2", final=True, lr_schedule={"finished": True, "decays": 5})
  table.collect("lm", str(tmp_path / "lm2"), "test CPU", table="lstm")
  assert not os.path.exists(tmp_path / "results_ptb_lstm" / "lm" / "eval_test_interim.json")
  row = [l for l in table.build().splitlines() if l.startswith("| lm |")][0]
  assert "interim" not in row and "| 117.25 | 500 | 130.50 |" in row


def test_a_row_not_run_says_why_until_it_is_collected(table, tmp_path):
  table.not_run("vae", "no time on this machine", "lstm")
  lstm = table.build().split("## GRU")[0]
  rows = {line.split(" | ")[0].strip("| "): line for line in lstm.splitlines()
          if line.startswith("| ")}
  assert "not run (the reason is below)" in rows["vae"]
  assert "not run yet" in rows["bowman"]
  assert "- **vae**: no time on this machine" in lstm
  with pytest.raises(SystemExit, match="give the reason"):
    table.not_run("bowman", " ", "lstm")
  with pytest.raises(SystemExit, match="unknown variant"):
    table.not_run("vea", "typo", "lstm")
  _workdir(tmp_path / "v", final=True, lr_schedule={"decays": 5, "stopped": True})
  table.collect("vae", str(tmp_path / "v"), "test CPU", "lstm")
  lstm = table.build().split("## GRU")[0]
  assert "no time on this machine" not in lstm and "| 117.25 | 500 |" in lstm
  with pytest.raises(SystemExit, match="was run"):
    table.not_run("vae", "again", "lstm")


def test_a_run_in_progress_then_stopped_is_listed_as_not_run(table, tmp_path):
  _workdir(tmp_path / "fb", final=False)
  os.rename(tmp_path / "fb" / "eval_test.json", tmp_path / "fb" / "eval_test_interim.json")
  table.collect("pretrain_fb", str(tmp_path / "fb"), "test CPU", table="lstm", progress=True)
  table.not_run("pretrain_fb", "stopped at epoch 2 for another row", "lstm")
  assert sorted(os.listdir(tmp_path / "results_ptb_lstm" / "pretrain_fb")) == ["not_run.json"]
  lstm = table.build().split("## GRU")[0]
  row = [l for l in lstm.splitlines() if l.startswith("| pretrain_fb |")][0]
  assert "not run (the reason is below)" in row and "best valid" not in row
  assert "- **pretrain_fb**: stopped at epoch 2 for another row" in lstm


def test_a_bad_not_run_item_leaves_the_items_before_it_unwritten(table, tmp_path):
  out = tmp_path / "ptb.md"
  with pytest.raises(SystemExit, match="--not_run bowman=: give the reason"):
    table.main(["--table=lstm", f"--output={out}", "--not_run", "vae=later", "bowman= "])
  assert not (tmp_path / "results_ptb_lstm" / "vae").exists()
  assert not out.exists()


def test_a_row_with_a_prerequisite_lists_that_run_first_in_its_command(table):
  from configs import ptb_lstm  # pylint: disable=g-import-not-at-top
  assert table.PREREQUISITES["lstm"] == ptb_lstm.PREREQUISITES  # the tool's copy is the config's
  t = table.TABLES["lstm"]
  assert table.row_command("pretrain_fb_ae", t, "lstm") == (
      "python -m textvae.main --config=configs/ptb_lstm.py:ae "
      "--config.data.source_dir=../shared/data/ptb --workdir=runs/ptb_lstm/ae && "
      + table.COMMAND.format(v="pretrain_fb_ae", config="configs/ptb_lstm.py",
                             runs="runs/ptb_lstm", table="lstm"))
  assert table.row_command("bnvae", t, "lstm").startswith(
      "python -m textvae.main --config=configs/ptb_lstm.py:bnvae ")


def test_wall_time_counts_the_training_processes_not_the_pauses_between_them(table, tmp_path):
  """A row resumed 5 h after it was stopped (queued behind another row) trained
  1.0 h + 0.5 h: its wall time is the two processes' spans from their events
  files (start time in the name, last write as mtime), not the 6.5 h from its
  first file to its last."""
  _workdir(tmp_path / "cyc", final=True, lr_schedule={"finished": True, "decays": 5})
  t0 = 1_800_000_000
  os.utime(tmp_path / "cyc" / "vocab.json", (t0, t0))
  os.utime(tmp_path / "cyc" / "final_metrics.json", (t0 + 6.5 * 3600,) * 2)
  for start, hours in ((t0, 1.0), (t0 + 6 * 3600, 0.5)):
    events = tmp_path / "cyc" / f"events.out.tfevents.{start}.host"
    events.write_bytes(b"")
    os.utime(events, (start + hours * 3600,) * 2)
  assert table.summarise_log(str(tmp_path / "cyc"))["wall_seconds"] == pytest.approx(1.5 * 3600)
  table.collect("cyclical", str(tmp_path / "cyc"), "test CPU", "lstm")
  row = [l for l in table.build().splitlines() if l.startswith("| cyclical |")][0]
  assert "| 1.5 h | test CPU |" in row
  # Without events files: first file to last, as before.
  for e in tmp_path.glob("cyc/events.out.tfevents.*"):
    e.unlink()
  assert table.summarise_log(str(tmp_path / "cyc"))["wall_seconds"] == pytest.approx(6.5 * 3600)


def test_a_row_with_a_prerequisite_counts_that_runs_time_and_end(table, tmp_path):
  """pretrain_fb_ae's cost is ae's training and its own: both wall times (from the
  files' times, set here) and how each run ended are in its row."""
  _workdir(tmp_path / "ae", final=True, lr_schedule={"finished": True, "decays": 5})
  _workdir(tmp_path / "fbae", final=True, lr_schedule={"finished": True, "decays": 5})
  (tmp_path / "fbae" / "config.json").write_text(json.dumps(
      {"model": {"kind": "vae"}, "train": {"init_from": {"workdir": str(tmp_path / "ae")}}}))
  for run, hours in (("ae", 7.2), ("fbae", 1.5)):
    os.utime(tmp_path / run / "vocab.json", (1e9, 1e9))
    os.utime(tmp_path / run / "final_metrics.json", (1e9 + hours * 3600,) * 2)
  table.collect("pretrain_fb_ae", str(tmp_path / "fbae"), "test CPU", "lstm")
  row = [l for l in table.build().splitlines() if l.startswith("| pretrain_fb_ae |")][0]
  assert ("| stopped after 5 learning-rate halvings at step 6570 (epoch 5); its prerequisite "
          "ae: stopped after 5 learning-rate halvings at step 6570 (epoch 5) | 1.5 h + 7.2 h "
          "(ae) | test CPU |") in row
  # Found beside the row's workdir when init_from names a path that is not there.
  (tmp_path / "fbae" / "config.json").write_text(json.dumps({"model": {"kind": "vae"}}))
  assert table.prerequisite_summary("pretrain_fb_ae", str(tmp_path / "fbae"), "lstm")[
      "wall_seconds"] == pytest.approx(7.2 * 3600)
  os.rename(tmp_path / "ae", tmp_path / "ae_gone")
  table.collect("pretrain_fb_ae", str(tmp_path / "fbae"), "test CPU", "lstm")
  row = [l for l in table.build().splitlines() if l.startswith("| pretrain_fb_ae |")][0]
  assert "ae: its workdir was not found | 1.5 h + ae: — |" in row
  assert table.prerequisite_summary("bnvae", str(tmp_path / "fbae"), "lstm") is None


def test_hardware_defaults_to_what_the_runs_processes_recorded(table, tmp_path):
  _workdir(tmp_path / "fb", final=True)
  host = {"machine": "x86_64", "cpu_model": "AMD EPYC", "cpu_isa": "AVX2", "cpu_count": 2,
          "accelerators": [], "process_count": 1}
  with open(tmp_path / "fb" / "hardware.jsonl", "w", encoding="utf-8") as f:
    for step, cores in [(0, [1]), (1314, [1]), (2000, [0])]:
      f.write(json.dumps({"step": step, "time": 0.0, "cores": cores, **host}) + "\n")
  table.collect("freebits", str(tmp_path / "fb"), None, "lstm")
  summary = json.load(open(tmp_path / "results_ptb_lstm" / "freebits" / "train_summary.json"))
  chip = "of a 2-core x86_64 CPU (AMD EPYC, AVX2); no GPU"
  assert summary["hardware"] == (f"1 core (taskset -c 1) {chip}, to step 2,000; "
                                 f"1 core (taskset -c 0) {chip}, from step 2,000")
  table.collect("freebits", str(tmp_path / "fb"), "given by hand", "lstm")
  summary = json.load(open(tmp_path / "results_ptb_lstm" / "freebits" / "train_summary.json"))
  assert summary["hardware"] == "given by hand"


def test_hardware_without_a_record_describes_the_collecting_host(table, tmp_path, monkeypatch):
  _workdir(tmp_path / "fb", final=True)
  host = {"machine": "x86_64", "cpu_model": "Intel Xeon", "cpu_isa": "AVX-512", "cpu_count": 8,
          "cores": [0, 1, 2, 3, 4, 5, 6, 7], "accelerators": ["NVIDIA H100", "NVIDIA H100"],
          "process_count": 1}
  monkeypatch.setattr(table.hardware_lib, "current", lambda: host)
  table.collect("freebits", str(tmp_path / "fb"), None, "lstm")
  summary = json.load(open(tmp_path / "results_ptb_lstm" / "freebits" / "train_summary.json"))
  assert summary["hardware"] == "2 x NVIDIA H100"
  monkeypatch.setattr(table.hardware_lib, "current", lambda: {**host, "accelerators": []})
  table.collect("freebits", str(tmp_path / "fb"), None, "lstm")
  summary = json.load(open(tmp_path / "results_ptb_lstm" / "freebits" / "train_summary.json"))
  assert summary["hardware"] == "8-core x86_64 CPU (Intel Xeon, AVX-512); no GPU"


def test_a_run_in_progress_before_its_first_validation_says_so(table, tmp_path):
  _workdir(tmp_path / "agg", final=False)
  os.remove(tmp_path / "agg" / "eval_test.json")
  with open(tmp_path / "agg" / "metrics.jsonl", "w", encoding="utf-8") as f:
    f.write(json.dumps({"step": 219, "train/tokens_per_s": 50.0}) + "\n")
  table.collect("aggressive", str(tmp_path / "agg"), "test CPU", table="lstm", progress=True)
  row = [l for l in table.build().splitlines() if l.startswith("| aggressive |")][0]
  assert "| training (step 219, no validation yet) |" in row
  # Collected while it still compiles its first steps: nothing logged yet.
  open(tmp_path / "agg" / "metrics.jsonl", "w", encoding="utf-8").close()
  table.collect("aggressive", str(tmp_path / "agg"), "test CPU", table="lstm", progress=True)
  row = [l for l in table.build().splitlines() if l.startswith("| aggressive |")][0]
  assert "| training (step 0, no validation yet) |" in row
