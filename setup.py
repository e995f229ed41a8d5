"""textvae: latent-variable text models (sentence VAEs) in JAX/Flax."""

import setuptools

setuptools.setup(
    name="textvae",
    version="0.1.0",
    description="Sentence VAEs in JAX/Flax: training, evaluation, posterior-collapse remedies",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    packages=setuptools.find_packages(include=["textvae", "textvae.*"]),
    python_requires=">=3.10",
    install_requires=[
        "jax>=0.10",
        "flax>=0.12",
        "optax>=0.2.8",
        "orbax-checkpoint>=0.12",
        "tensorflow-datasets>=4.9.9",
        "importlib_resources",
        "grain>=0.2.12",
        "array_record",
        "absl-py",
        "ml-collections",
        "tensorboardX",  # TensorBoard event files without TensorFlow (see metric_writers.py)
        "numpy",
        "sacrebleu>=2",  # reconstruction BLEU (textvae/reconstruction.py)
    ],
    extras_require={
        "test": ["pytest>=8", "pytest-xdist",
                 # notebooks/analysis.ipynb, run headless by tests/test_notebook.py
                 "nbclient", "nbformat", "ipykernel", "matplotlib"],
        # benchmarks/torch_reference.py only (the CPU build on the registry here)
        "bench": ["torch==2.13.0"],
    },
)
