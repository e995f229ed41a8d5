"""notebooks/analysis.ipynb runs headless (nbclient) on a tiny trained workdir
and produces its figures."""

import os

import nbclient
import nbformat

from tests.helpers import REPO, tiny_workdir


def test_analysis_notebook_runs_and_draws_its_figures(tmp_path_factory, tmp_path):
  workdir = tiny_workdir(tmp_path_factory)
  nb = nbformat.read(os.path.join(REPO, "notebooks", "analysis.ipynb"), as_version=4)
  params = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
  assert len(params) == 1
  fig_dir = tmp_path / "figures"
  params[0].source = (f"WORKDIR = {workdir!r}\nFIG_DIR = {str(fig_dir)!r}\n"
                      "NUM_SENTENCES = 200\nNUM_SAMPLES = 3\nNUM_STEPS = 4\nSEED = 0\n"
                      "LABEL_FEATURE = 'sentiment'\nNUM_TRANSFERS = 2\n")
  env_path = os.environ.get("PYTHONPATH", "")
  os.environ["PYTHONPATH"] = REPO + (os.pathsep + env_path if env_path else "")
  try:
    nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
  finally:
    os.environ["PYTHONPATH"] = env_path
  images = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs
            if "image/png" in o.get("data", {})]
  assert len(images) == 3  # training curves, KL per dimension, PCA
  for name in ("training_curves.png", "kl_per_dim.png", "pca_posterior_means.png"):
    assert (fig_dir / name).stat().st_size > 5000, name
  interpolation = (fig_dir / "interpolation.md").read_text().splitlines()
  assert len(interpolation) == 2 + 4 + 2  # header, 4 points, 2 inputs
  samples = (fig_dir / "prior_samples.md").read_text().splitlines()
  assert len(samples) == 2 + 3
  # Controlled generation along the latent direction of sentiment: 2 transfers to
  # each of the 2 labels, 2 prior samples per label.
  transfers = (fig_dir / "transfers.md").read_text()
  assert "latent direction of an unconditional VAE" in transfers
  assert transfers.count("| negative |") == 2 + 2 and transfers.count("| positive |") == 2 + 2
  errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs
            if o.output_type == "error"]
  assert not errors
